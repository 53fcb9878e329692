// Throughput of the CUDA emulator: emulated GPU threads per second for a
// kernel without barriers, with barriers, and with warp shuffles; plus the
// cost of one fiber switch (Boost.Context fcontext), the unit of all waits.
//   emu_bench [threads=2^20]   (EMU_THREADS=n spreads blocks over n OS threads)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "cuda/compat.cuh"
#include "cuda/emu/fiber.h"

namespace {

__global__ void saxpy(float a, const float* x, float* y, int n) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = a * x[i] + y[i];
}

// A tree reduction over shared memory: 1 + log2(256) = 9 barriers per thread.
__global__ void block_sum(const float* x, float* out) {
    __shared__ float s[256];
    const unsigned t = threadIdx.x;
    s[t] = x[blockIdx.x * 256 + t];
    __syncthreads();
    for (unsigned stride = 128; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// Five butterfly shuffles per thread.
__global__ void warp_sum(const float* x, float* out) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = x[i];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

// The best of five runs, after a warm-up (stacks are mapped on first use):
// the least disturbed by whatever else the machine is doing.
template <class F>
double seconds(F f) {
    f();
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

void report(const char* what, double threads, double s, const char* extra = "") {
    std::printf("%-34s %8.1f M threads/s  (%6.1f ns/thread)%s\n", what, threads / s / 1e6, s / threads * 1e9, extra);
}

// Two fibers handing control back and forth.
void switch_cost() {
    emu::StackPool pool;
    emu::Stack st = pool.take();
    static constexpr int kSwitches = 2'000'000;
    const auto partner = [](emu::Transfer t) {
        emu::on_fiber_start();
        emu::on_resumed_by_scheduler();
        for (;;) t = emu::jump(t.fctx, nullptr, nullptr);
    };
    emu::Context c = emu::make_context(st, partner);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kSwitches / 2; ++i) c = emu::jump(c, &st, nullptr).fctx;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-34s %8.1f ns/switch\n", "fiber switch (fcontext)", s / kSwitches * 1e9);
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 1 << 20;
    float *x, *y, *out;
    rkv::cuda_check(cudaMalloc(&x, n * sizeof(float)));
    rkv::cuda_check(cudaMalloc(&y, n * sizeof(float)));
    rkv::cuda_check(cudaMalloc(&out, n / 32 * sizeof(float)));
    rkv::cuda_check(cudaMemset(x, 0, n * sizeof(float)));
    rkv::cuda_check(cudaMemset(y, 0, n * sizeof(float)));

    std::printf("emulated threads: %d (blocks of 256)\n", n);
    switch_cost();
    report("no barriers (saxpy)", n,
           seconds([&] { rkv::launch_kernel(saxpy, n / 256, 256, 0, nullptr, 2.0f, x, y, n); }));
    report("9 __syncthreads per thread", n,
           seconds([&] { rkv::launch_kernel(block_sum, n / 256, 256, 0, nullptr, x, out); }));
    report("5 __shfl_xor_sync per thread", n,
           seconds([&] { rkv::launch_kernel(warp_sum, n / 256, 256, 0, nullptr, x, out); }));
    cudaFree(x);
    cudaFree(y);
    cudaFree(out);
}
