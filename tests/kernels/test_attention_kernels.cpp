// The table of attention kernels (layers/attention_kernels.cuh) as CudaOps, --attention and
// bench/attention_bench.cu read it: every row that runs here matches ref/attention.h (through
// attention_check.h) at each storage type and head dim it claims, refuses head dims it does not
// claim and heads in uneven groups, and the choice CudaOps makes (auto, a name, the fallback) follows the table. A new
// row is checked here without a new test; its own test file adds its shapes and bounds.
#include "attention_check.h"

#include <stdexcept>

using namespace kcheck;
using namespace kcheck::attn;
using rkv::cuda::AttentionKernel;

TEMPLATE_TEST_CASE("every attention kernel of the table matches ref at each head dim it takes",
                   "[attention][attention_kernels]", float, bf16) {
    for (const AttentionKernel& row : rkv::cuda::attention_kernels()) {
        INFO(row.name);
        if (!row.runs_here()) {
            WARN(row.name << " does not run here (it needs " << row.needs << "): not checked");
            continue;
        }
        for (const int HS : {8, 24, 64, 128}) {
            if (!row.runs<TestType>(HS)) continue;
            const Kernel<TestType> kernel{.row = row, .qk = 1.5f, .lse_bound = fp32_bound, .one_key_bound = 1e-2};
            check_layer(kernel, Shape{1, 37, 4, 2, HS});
        }
    }
}

TEST_CASE("attention kernels refuse the head dims the table says they do not take, and uneven groups",
          "[attention][attention_kernels]") {
    Device<bf16> x(4 * 256);
    Device<float> lse(4);
    // One query position; every tensor points at x, lse at lse: only the heads differ.
    const auto args = [&](int NH, int NKV, int HS) {
        return rkv::AttentionArgs<bf16, float>{.B = 1,
                                               .T = 1,
                                               .NH = NH,
                                               .NKV = NKV,
                                               .HS = HS,
                                               .q = x.get(),
                                               .k_all = x.get(),
                                               .v_all = x.get(),
                                               .out = x.get(),
                                               .lse = lse.get(),
                                               .dout = x.get(),
                                               .dq = x.get(),
                                               .dk_all = x.get(),
                                               .dv_all = x.get()};
    };
    for (const AttentionKernel& row : rkv::cuda::attention_kernels()) {
        if (!row.runs_here() || !row.forward_bf16) continue;
        for (const int HS : {0, 96, 129, 256}) {
            if (row.takes_head_dim(HS)) continue;
            INFO(row.name << " at head dim " << HS);
            const auto a = args(2, 1, HS);
            CHECK_THROWS_AS(row.forward(a, nullptr), std::invalid_argument);
            CHECK_THROWS_AS(row.backward(a, nullptr), std::invalid_argument);
        }
        // Heads that do not fall into even groups, at a head dim the kernel takes.
        INFO(row.name << " with NH 3, NKV 2");
        const auto uneven = args(3, 2, row.hs_min);
        CHECK_THROWS_AS(row.forward(uneven, nullptr), std::invalid_argument);
        CHECK_THROWS_AS(row.backward(uneven, nullptr), std::invalid_argument);
    }
}

TEST_CASE("the kernel CudaOps runs follows the table", "[attention][attention_kernels]") {
    using rkv::cuda::attention_kernel;
    using rkv::cuda::attention_kernel_for;
    const auto kernels = rkv::cuda::attention_kernels();
    const AttentionKernel& fallback = kernels.back();
    CHECK(std::string(fallback.name) == "plain");
    // auto: the first row that runs here and takes the storage and head dim.
    for (const int HS : {32, 64, 128})
        for (const AttentionKernel& row : kernels)
            if (row.runs<bf16>(HS)) {
                CHECK(&attention_kernel_for<bf16>(nullptr, HS) == &row);
                break;
            }
    // A named kernel where it takes the storage and head dim, else the fallback.
    const AttentionKernel& mma = attention_kernel("mma");
    CHECK(&attention_kernel_for<bf16>(&mma, 64) == &mma);
    CHECK(&attention_kernel_for<bf16>(&mma, 32) == &fallback);
    CHECK(&attention_kernel_for<float>(&mma, 64) == &fallback);
    CHECK(&attention_kernel_for<float>(nullptr, 128) == &fallback);
    // No row takes head dim 256; an unknown name is refused.
    CHECK_THROWS_AS(attention_kernel_for<bf16>(nullptr, 256), std::invalid_argument);
    CHECK_THROWS_AS(attention_kernel("flash"), std::invalid_argument);
}
