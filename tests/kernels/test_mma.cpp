// cuda/mma.cuh through the emulator: ldmatrix puts in every lane and register what the PTX
// ISA's fragment layouts say, and mma_m16n8k16 computes A B + C on those layouts, against a
// plain matmul in double. (On a GPU the primitives are the PTX instructions themselves; the
// tensor-core attention tests check them there.)
#ifdef RKV_EMU
#include "kernel_check.h"

#include <bit>
#include <cstdint>

#include "cuda/mma.cuh"

using namespace kcheck;

namespace {

// m (16, 16) row-major in global memory -> shared; lane l gives ldmatrix the row address of
// matrix l / 8 (rows 8 (i % 2) .., columns 8 (i / 2) ..) row l % 8. regs (32, 4): each lane's
// registers, plain then transposed (regs + 128).
__global__ void ldmatrix_kernel(uint32_t* regs, const bf16* m) {
    alignas(16) __shared__ bf16 tile[16 * 16];
    const int lane = threadIdx.x;
    for (int i = lane; i < 16 * 16 / 8; i += 32) rkv::cuda::mma::cp_async_16(tile + 8 * i, m + 8 * i, true);
    rkv::cuda::mma::cp_async_commit();
    rkv::cuda::mma::cp_async_wait<0>();
    __syncwarp();
    const int matrix = lane / 8, row = 8 * (matrix % 2) + lane % 8, col = 8 * (matrix / 2);
    uint32_t r[4], rt[4];
    rkv::cuda::mma::ldmatrix_x4(r, tile + row * 16 + col);
    rkv::cuda::mma::ldmatrix_x4_trans(rt, tile + row * 16 + col);
    for (int i = 0; i < 4; i++) regs[lane * 4 + i] = r[i], regs[128 + lane * 4 + i] = rt[i];
}

// d (16, 8) = a (16, 16) b (16, 8) + c (16, 8), all row-major in global memory, one warp; the
// fragments are built from the layout formulas of cuda/mma.cuh.
__global__ void mma_kernel(float* d, const bf16* a, const bf16* b, const float* c) {
    const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    auto pair = [](bf16 lo, bf16 hi) { return rkv::cuda::mma::pack_bf16(__bfloat162float(lo), __bfloat162float(hi)); };
    const uint32_t af[4] = {pair(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
                            pair(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
                            pair(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
                            pair(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
    const uint32_t b0 = pair(b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]);
    const uint32_t b1 = pair(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g]);
    float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
    rkv::cuda::mma::mma_m16n8k16(acc, af, b0, b1);
    d[g * 8 + 2 * t] = acc[0], d[g * 8 + 2 * t + 1] = acc[1];
    d[(g + 8) * 8 + 2 * t] = acc[2], d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

uint32_t bits(float lo, float hi) {
    return uint32_t(std::bit_cast<uint16_t>(__float2bfloat16(hi))) << 16 |
           std::bit_cast<uint16_t>(__float2bfloat16(lo));
}

}  // namespace

TEST_CASE("ldmatrix x4 and x4.trans give each lane the PTX fragment", "[mma]") {
    std::vector<float> m(16 * 16);
    for (int i = 0; i < 256; i++) m[i] = float(i);  // every value exact in bf16
    Device<bf16> md(to_bf16(m));
    Device<uint32_t> regs(256);
    for (const auto order : orders()) {
        InOrder in_order(order);
        regs.poison();
        rkv::launch_kernel(ldmatrix_kernel, 1, 32, 0, nullptr, regs.get(), md.get());
        const auto got = regs.download();
        for (int lane = 0; lane < 32; lane++)
            for (int i = 0; i < 4; i++) {
                const int r0 = 8 * (i % 2), c0 = 8 * (i / 2), g = lane / 4, t = lane % 4;
                INFO("lane " << lane << " register " << i);
                CHECK(got[lane * 4 + i] == bits(m[(r0 + g) * 16 + c0 + 2 * t], m[(r0 + g) * 16 + c0 + 2 * t + 1]));
                CHECK(got[128 + lane * 4 + i] ==
                      bits(m[(r0 + 2 * t) * 16 + c0 + g], m[(r0 + 2 * t + 1) * 16 + c0 + g]));
            }
    }
}

TEST_CASE("mma_m16n8k16 computes A B + C on the PTX fragments", "[mma]") {
    const auto a = as_stored<bf16>(random_floats(16 * 16)), b = as_stored<bf16>(random_floats(16 * 8));
    const auto c = random_floats(16 * 8);
    std::vector<double> want(16 * 8);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double x = c[i * 8 + j];
            for (int k = 0; k < 16; k++) x += double(a[i * 16 + k]) * b[k * 8 + j];
            want[i * 8 + j] = x;
        }
    Device<bf16> ad(to_bf16(a)), bd(to_bf16(b));
    Device<float> cd(c), d(16 * 8);
    for (const auto order : orders()) {
        InOrder in_order(order);
        d.poison();
        rkv::launch_kernel(mma_kernel, 1, 32, 0, nullptr, d.get(), ad.get(), bd.get(), cd.get());
        check_close("d", d.download(), want, 1e-6);
    }
}
#endif
