// Causal attention speed on the GPU: every kernel of layers/attention_kernels.cuh's table that
// takes bf16 at the head dim and runs on this build and GPU (wgmma needs an sm_90a build on a
// compute capability 9.0 GPU), timed with CUDA events after a warm-up (the median of several
// runs). B T = 16384 tokens, NH HS = 2048 (MHA), HS 64 and 128, T 1024 .. 8192. FLOPs counted
// as FlashAttention does for causal: forward 4 B NH T^2 HS / 2, backward 2.5 x forward. The
// last column is the relative error of a kernel's forward out against the table's fallback
// (plain) on the same inputs (fp32 math in all; only bf16 rounding and summation order differ),
// a check that the timed kernel computes the right thing.
//   attention_bench            (built with -DRKV_GPU=ON: target attention_bench)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

#include "cuda/compat.cuh"
#include "layers/attention_kernels.cuh"
#include "tests/rel_error.h"

namespace {

using bf16 = __nv_bfloat16;
constexpr size_t kTokens = 16384, kWidth = 2048;  // B T, NH HS

// x[i] uniform in [lo, hi) from a hash of (i, seed): fresh, non-zero data without host copies.
__global__ void fill_uniform(bf16* x, size_t n, uint32_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        uint32_t h = uint32_t(i) * 0x9e3779b9u ^ seed * 0x85ebca6bu ^ uint32_t(i >> 32);
        h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
        x[i] = __float2bfloat16(lo + (hi - lo) * (h >> 8) * (1.0f / 16777216.0f));
    }
}

struct Buffer {
    bf16* p = nullptr;
    explicit Buffer(size_t n) { rkv::cuda_check(cudaMalloc(&p, n * sizeof(bf16))); }
    ~Buffer() { cudaFree(p); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

void fill(bf16* x, size_t n, uint32_t seed, float lo, float hi) {
    rkv::launch_kernel(fill_uniform, 1024, 256, 0, nullptr, x, n, seed, lo, hi);
}

// Median milliseconds of f over enough runs for about 0.3 s (3 to 50), after two warm-up runs.
double time_ms(const std::function<void()>& f) {
    cudaEvent_t start, stop;
    rkv::cuda_check(cudaEventCreate(&start));
    rkv::cuda_check(cudaEventCreate(&stop));
    auto once = [&] {
        rkv::cuda_check(cudaEventRecord(start));
        f();
        rkv::cuda_check(cudaEventRecord(stop));
        rkv::cuda_check(cudaEventSynchronize(stop));
        float ms = 0;
        rkv::cuda_check(cudaEventElapsedTime(&ms, start, stop));
        return double(ms);
    };
    once();
    const double first = once();
    const int runs = std::clamp(int(300.0 / std::max(first, 1e-3)), 3, 50);
    std::vector<double> ms(runs);
    for (double& x : ms) x = once();
    std::sort(ms.begin(), ms.end());
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ms[runs / 2];
}

std::vector<float> download(const bf16* p, size_t n) {
    std::vector<bf16> h(n);
    rkv::cuda_check(cudaMemcpy(h.data(), p, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    std::vector<float> f(n);
    for (size_t i = 0; i < n; i++) f[i] = __bfloat162float(h[i]);
    return f;
}

}  // namespace

int main() {
    cudaDeviceProp prop;
    rkv::cuda_check(cudaGetDeviceProperties(&prop, 0));
    std::printf("attention_bench on %s: causal MHA, B T = %zu tokens, NH HS = %zu, bf16 storage\n", prop.name, kTokens,
                kWidth);
    const size_t n = kTokens * kWidth;
    Buffer q(n), k(n), v(n), dout(n), out(n), out_plain(n), dq(n), dk(n), dv(n);
    float* lse = nullptr;
    rkv::cuda_check(cudaMalloc(&lse, kTokens * (kWidth / 64) * sizeof(float)));

    std::printf("%4s %5s %3s %3s  %-6s %9s %11s %9s %11s %12s\n", "HS", "T", "B", "NH", "kernel", "fwd ms",
                "fwd TFLOP/s", "bwd ms", "bwd TFLOP/s", "out err");
    const auto kernels = rkv::cuda::attention_kernels();
    const rkv::cuda::AttentionKernel& fallback = kernels.back();
    for (const auto& k : kernels)
        if (!k.runs_here()) std::printf("(no %s row: it needs %s)\n", k.name, k.needs);
    uint32_t seed = 1;
    for (const int HS : {64, 128})
        for (const int T : {1024, 2048, 4096, 8192}) {
            const int B = int(kTokens / T), NH = int(kWidth / HS);
            // Scores of a few units: q k ~ HS / 4 before the 1 / sqrt(HS) scale.
            fill(q.p, n, seed++, -1.5f, 1.5f);
            fill(k.p, n, seed++, -1.5f, 1.5f);
            fill(v.p, n, seed++, -1.0f, 1.0f);
            fill(dout.p, n, seed++, -1.0f, 1.0f);
            for (bf16* g : {dq.p, dk.p, dv.p}) fill(g, n, seed++, -1.0f, 1.0f);
            const double fwd_flop = 4.0 * B * NH * double(T) * T * HS / 2, bwd_flop = 2.5 * fwd_flop;
            // The forward leaves out and lse as the backward needs them; the backward adds to dk, dv
            // run after run, which changes its inputs in no way that matters.
            const rkv::AttentionArgs<bf16, float> a{.B = B,
                                                    .T = T,
                                                    .NH = NH,
                                                    .NKV = NH,
                                                    .HS = HS,
                                                    .q = q.p,
                                                    .k_all = k.p,
                                                    .v_all = v.p,
                                                    .out = out.p,
                                                    .lse = lse,
                                                    .dout = dout.p,
                                                    .dq = dq.p,
                                                    .dk_all = dk.p,
                                                    .dv_all = dv.p,
                                                    .accumulate_kv = true};
            auto reference = a;
            reference.out = out_plain.p;
            fallback.forward(reference, nullptr);
            const std::vector<float> want = download(out_plain.p, n);

            for (const auto& kernel : kernels) {
                if (!kernel.runs<bf16>(HS)) continue;
                double err = NAN;  // not checked: the fallback itself
                if (&kernel != &fallback) {
                    kernel.forward(a, nullptr);
                    rkv::cuda_check(cudaDeviceSynchronize());
                    err = kcheck::rel_error(download(out.p, n), want);
                }
                const double f = time_ms([&] { kernel.forward(a, nullptr); });
                const double b = time_ms([&] { kernel.backward(a, nullptr); });
                std::printf("%4d %5d %3d %3d  %-6s %9.3f %11.1f %9.3f %11.1f", HS, T, B, NH, kernel.name, f,
                            fwd_flop / f * 1e-9, b, bwd_flop / b * 1e-9);
                if (!std::isnan(err)) std::printf(" %12.2e", err);
                std::printf("\n");
                std::fflush(stdout);
            }
        }
    rkv::cuda_check(cudaGetLastError());
    cudaFree(lse);
    return 0;
}
