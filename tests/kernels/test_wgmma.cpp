// cuda/wgmma.cuh through the emulator: one warpgroup stores its operands in the 128-byte-swizzled
// slabs the header describes, points descriptors at them k-step by k-step, and its accumulators
// (read back through the header's register layout) must hold A B against a plain matmul in
// double: A from shared memory with B K-major (S = Q K^T) and A from registers with B MN-major
// (O = P V), at N 64 and 128; and the emulation is asynchronous as the GPU's products are: the
// accumulators are NaN until the wait, and changing what a product in flight reads, or exiting
// without the wait, stops the kernel. (On a GPU the instructions are the PTX itself; the wgmma
// attention tests check them there.)
#ifdef RKV_EMU
#include "kernel_check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/wgmma.cuh"

using namespace kcheck;
namespace wg = rkv::cuda::wgmma;

namespace {

constexpr int kM = 64;  // rows of one warpgroup's product

// slab (rows, 64) swizzled <- m (rows, ld) columns col0 .. col0 + 63, one 16-byte chunk a copy.
__device__ void store_slab(unsigned char* slab, const bf16* m, int rows, int ld, int col0) {
    for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
        const int r = i / 8, c = i % 8;
        rkv::cuda::mma::cp_async_16(slab + wg::swizzle128(r, c), m + size_t(r) * ld + col0 + 8 * c, true);
    }
}

// Accumulator entry e of this thread -> its (row, column) in the 64 x N product.
__device__ int acc_row(int e) { return 16 * (threadIdx.x / 32) + threadIdx.x % 32 / 4 + 8 * (e / 2 % 2); }
__device__ int acc_col(int e) { return 8 * (e / 4) + 2 * (threadIdx.x % 4) + e % 2; }

// d (64, N) = a (64, K) b^T, b stored (N, K): shared A and K-major B, K / 16 k-steps of 32 bytes
// into each slab. d starts poisoned in registers: the first step must not accumulate.
template <int N, int K>
__global__ void ss_kernel(float* d, const bf16* a, const bf16* b) {
    unsigned char* smem = rkv::dynamic_smem<unsigned char>();
    unsigned char* as = smem;                      // (K / 64) slabs (64, 64)
    unsigned char* bs = smem + K / 64 * kM * 128;  // (K / 64) slabs (N, 64)
    for (int h = 0; h < K / 64; h++) {
        store_slab(as + h * kM * 128, a, kM, K, 64 * h);
        store_slab(bs + h * N * 128, b, N, K, 64 * h);
    }
    rkv::cuda::mma::cp_async_commit();
    rkv::cuda::mma::cp_async_wait<0>();
    wg::fence_proxy_async();
    __syncthreads();
    float acc[N / 2];
    for (float& x : acc) x = __int_as_float(0x7fc00000);
    wg::fence();
    for (int s = 0; s < K / 16; s++) {
        const uint32_t step = 32 * (s % 4);
        const uint64_t ad = wg::descriptor(wg::smem_address(as + s / 4 * kM * 128) + step, 16, 1024);
        const uint64_t bd = wg::descriptor(wg::smem_address(bs + s / 4 * N * 128) + step, 16, 1024);
        wg::mma_ss<N, wg::Major::K>(acc, ad, bd, s > 0);
    }
    wg::commit();
    wg::wait<0>();
    for (int e = 0; e < N / 2; e++) d[acc_row(e) * N + acc_col(e)] = acc[e];
}

// d (64, N) = c + a (64, K) b, b stored (K, N) row-major: A in registers (built from the layout
// formulas), MN-major B as N / 64 slabs (K, 64), a k-step 16 rows (2048 bytes) down.
template <int N, int K>
__global__ void rs_kernel(float* d, const float* c, const bf16* a, const bf16* b) {
    unsigned char* bs = rkv::dynamic_smem<unsigned char>();  // (N / 64) slabs (K, 64)
    for (int h = 0; h < N / 64; h++) store_slab(bs + h * K * 128, b, K, N, 64 * h);
    rkv::cuda::mma::cp_async_commit();
    rkv::cuda::mma::cp_async_wait<0>();
    wg::fence_proxy_async();
    __syncthreads();
    float acc[N / 2];
    for (int e = 0; e < N / 2; e++) acc[e] = c[acc_row(e) * N + acc_col(e)];
    const int lane = threadIdx.x % 32, r = 16 * (threadIdx.x / 32) + lane / 4, t = lane % 4;
    auto pair = [&](int row, int k) {
        return rkv::cuda::mma::pack_bf16(__bfloat162float(a[row * K + k]), __bfloat162float(a[row * K + k + 1]));
    };
    uint32_t frag[K / 16][4];  // each k-step's A registers, untouched until the wait
    wg::fence();
    for (int s = 0; s < K / 16; s++) {
        const int k = 16 * s + 2 * t;
        const uint32_t step[4] = {pair(r, k), pair(r + 8, k), pair(r, k + 8), pair(r + 8, k + 8)};
        std::copy(step, step + 4, frag[s]);
        const uint64_t bd = wg::descriptor(wg::smem_address(bs) + 2048 * s, K * 128, 1024);
        wg::mma_rs<N, wg::Major::MN>(acc, frag[s], bd, true);
    }
    wg::commit();
    wg::wait<0>();
    for (int e = 0; e < N / 2; e++) d[acc_row(e) * N + acc_col(e)] = acc[e];
}

// want (M, N) = c + a (M, K) b, with b(k, n) = b_at(k, n).
template <class B>
std::vector<double> matmul(const std::vector<float>& a, B b_at, const std::vector<float>& c, int M, int N, int K) {
    std::vector<double> want(size_t(M) * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double x = c.empty() ? 0.0 : c[i * N + j];
            for (int k = 0; k < K; k++) x += double(a[i * K + k]) * b_at(k, j);
            want[i * N + j] = x;
        }
    return want;
}

template <int N, int K>
void check_ss() {
    const auto a = as_stored<bf16>(random_floats(kM * K)), b = as_stored<bf16>(random_floats(N * K));
    const auto want = matmul(
        a, [&](int k, int n) { return b[n * K + k]; }, {}, kM, N, K);
    Device<bf16> ad(to_bf16(a)), bd(to_bf16(b));
    Device<float> d(kM * N);
    for (const auto order : orders()) {
        InOrder in_order(order);
        d.poison();
        rkv::launch_kernel(ss_kernel<N, K>, 1, 128, (kM + N) * K * 2, nullptr, d.get(), ad.get(), bd.get());
        check_close("d", d.download(), want, 1e-6);
    }
}

template <int N, int K>
void check_rs() {
    const auto a = as_stored<bf16>(random_floats(kM * K)), b = as_stored<bf16>(random_floats(K * N));
    const auto c = random_floats(kM * N);
    const auto want = matmul(
        a, [&](int k, int n) { return b[k * N + n]; }, c, kM, N, K);
    Device<bf16> ad(to_bf16(a)), bd(to_bf16(b));
    Device<float> cd(c), d(kM * N);
    for (const auto order : orders()) {
        InOrder in_order(order);
        d.poison();
        rkv::launch_kernel(rs_kernel<N, K>, 1, 128, K * N * 2, nullptr, d.get(), cd.get(), ad.get(), bd.get());
        check_close("d", d.download(), want, 1e-6);
    }
}

// What a kernel may not do while a product is in flight (between its issue and the wait that
// completes it), one misuse a launch: 0 none, 1 write shared memory it reads, 2 change its A
// registers, 3 exit without the wait. out (128): the accumulator entry 0 each thread read right
// after the issue, and then after the wait.
__global__ void misuse_kernel(float* out, int misuse) {
    unsigned char* smem = rkv::dynamic_smem<unsigned char>();  // (64, 64) bf16, zeros
    for (int i = threadIdx.x; i < 64 * 128; i += blockDim.x) smem[i] = 0;
    __syncthreads();
    float acc[32];
    uint32_t a[4] = {};
    wg::fence();
    wg::mma_rs<64, wg::Major::MN>(acc, a, wg::descriptor(wg::smem_address(smem), 64 * 128, 1024), false);
    wg::commit();
    out[threadIdx.x] = acc[0];
    if (misuse == 1 && threadIdx.x == 0) smem[2] = 1;
    if (misuse == 2) a[1] = 1;
    if (misuse == 3) return;
    wg::wait<0>();
    out[128 + threadIdx.x] = acc[0];
}

}  // namespace

TEST_CASE("swizzle128 puts chunk c of row r at chunk c ^ (r % 8) of the row", "[wgmma]") {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 8; c++) CHECK(rkv::cuda::wgmma::swizzle128(r, c) == uint32_t(128 * r + 16 * (c ^ (r % 8))));
}

TEST_CASE("wgmma descriptors pack start, leading and stride offsets >> 4 and the 128B swizzle", "[wgmma]") {
    const uint64_t d = wg::descriptor(0x12340, 0x4000, 0x400);
    CHECK((d & 0x3fff) == 0x1234);
    CHECK((d >> 16 & 0x3fff) == 0x400);
    CHECK((d >> 32 & 0x3fff) == 0x40);
    CHECK((d >> 62) == 1);
}

TEST_CASE("wgmma mma_ss: A and K-major B from swizzled shared memory, k-steps within and across slabs", "[wgmma]") {
    check_ss<128, 128>();
    check_ss<64, 64>();
}

TEST_CASE("wgmma mma_rs: A from registers, MN-major B in slabs of 64 columns, accumulating", "[wgmma]") {
    check_rs<64, 32>();
    check_rs<128, 128>();
}
TEST_CASE("the emulated wgmma is asynchronous: NaN until the wait, and misuse in flight is reported", "[wgmma]") {
    Device<float> out(256);
    rkv::launch_kernel(misuse_kernel, 1, 128, 64 * 128, nullptr, out.get(), 0);
    const auto got = out.download();
    CHECK(std::all_of(got.begin(), got.begin() + 128, [](float x) { return std::isnan(x); }));
    CHECK(std::all_of(got.begin() + 128, got.end(), [](float x) { return x == 0.0f; }));
    for (const int misuse : {1, 2, 3}) {
        INFO("misuse " << misuse);
        CHECK_THROWS_AS(rkv::launch_kernel(misuse_kernel, 1, 128, 64 * 128, nullptr, out.get(), misuse),
                        emu::kernel_error);
    }
}
#endif
