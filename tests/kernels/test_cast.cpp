// layers/cast.cu: float -> bf16 rounds to nearest even (the host's __float2bfloat16, and
// the ties by hand); bf16 -> float and float -> float are exact. (The stochastic cast is
// AdamW's rounding: tests/kernels/test_adamw.cpp.)
#include "kernel_check.h"

#include <cstring>

#include "layers/cast.cuh"

using namespace kcheck;

namespace {

// Random values over many binades, with ties and specials appended.
std::vector<float> test_values(size_t n) {
    auto v = random_floats(n);
    const auto e = random_ints(n, -30, 30);
    for (size_t i = 0; i < n; i++) v[i] = std::ldexp(v[i], e[i]);
    const float inf = std::numeric_limits<float>::infinity();
    for (const float x : {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 0.0f, -0.0f, inf, -inf, 0x1p-130f})
        v.push_back(x);
    return v;
}

}  // namespace

TEST_CASE("cast float to bf16 rounds to nearest even", "[cast]") {
    const auto order = GENERATE(from_range(orders()));
    const InOrder in_order(order);
    const auto in = test_values(1037);
    const size_t n = in.size();
    Device<float> d_in(in);
    Device<bf16> d_out(n);
    rkv::cuda::cast(d_out.get(), d_in.get(), n, nullptr);
    const auto out = d_out.download();
    CHECK(std::memcmp(out.data(), to_bf16(in).data(), n * sizeof(bf16)) == 0);
    // The ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (odd), 1 + 3 2^-8 between 1 + 2^-7
    // and 1 + 2^-6 (even).
    const auto got = to_floats(out);
    CHECK(got[n - 8] == 1.0f);
    CHECK(got[n - 7] == 1.0f + 0x1p-6f);
    CHECK(got[n - 6] == -1.0f);
    check_close("cast float -> bf16", std::vector<float>(got.begin(), got.begin() + 1037),
                to_double(std::vector<float>(in.begin(), in.begin() + 1037)), bf16_bound);
}

TEST_CASE("cast bf16 to float and float to float are exact", "[cast]") {
    const auto order = GENERATE(from_range(orders()));
    const InOrder in_order(order);
    const auto in = test_values(1037);
    const size_t n = in.size();
    const auto in_bf16 = to_bf16(in);
    Device<bf16> d_bf16(in_bf16);
    Device<float> d_in(in), d_out(n);
    rkv::cuda::cast(d_out.get(), d_bf16.get(), n, nullptr);
    CHECK(d_out.download() == to_floats(in_bf16));
    d_out.poison();
    rkv::cuda::cast(d_out.get(), d_in.get(), n, nullptr);
    CHECK(d_out.download() == in);
}
