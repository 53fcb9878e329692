// LayerNorm over the last dimension, forward and backward (ref/layernorm.h).
//   inp, out, dout, dinp (N, C); w, b, dw, db (C); mean, rstd (N)
//
//   forward:  mean = sum(x) / C,  rstd = 1 / sqrt(sum((x - mean)^2) / C + eps),
//             out = (x - mean) * rstd * w + b
//   backward: xhat = (x - mean) * rstd,  g = dout * w,
//             dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)),
//             dw += sum over rows of dout * xhat,  db += sum over rows of dout
//
// One warp per row: a row's reductions are warp shuffles, no block barriers, and any C
// works (the lanes stride over the row). The weight gradients are column sums over all
// rows, done by layers/norm_weight_grad.cuh in a fixed order.
#include "layers/layernorm.cuh"

#include "layers/common.cuh"
#include "layers/norm_weight_grad.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

template <class T>
__global__ void layernorm_forward_kernel(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N,
                                         int C, float eps) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const T* x = inp + size_t(n) * C;
    float sum = 0.0f;
    for (int i = lane; i < C; i += 32) sum += to_float(x[i]);
    const float m = warp_sum(sum) / C;
    // The variance from the centred values (two passes, as ref): no cancellation.
    float sq = 0.0f;
    for (int i = lane; i < C; i += 32) {
        const float d = to_float(x[i]) - m;
        sq += d * d;
    }
    const float s = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    T* o = out + size_t(n) * C;
    for (int i = lane; i < C; i += 32)
        o[i] = from_float<T>((to_float(x[i]) - m) * s * to_float(w[i]) + to_float(b[i]));
    if (lane == 0) {
        mean[n] = from_float<T>(m);
        rstd[n] = from_float<T>(s);
    }
}

template <class T>
__global__ void layernorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const T* mean,
                                               const T* rstd, int N, int C) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;
    const T* x = inp + size_t(n) * C;
    const T* d = dout + size_t(n) * C;
    const float m = to_float(mean[n]), s = to_float(rstd[n]);
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int i = lane; i < C; i += 32) {
        const float g = to_float(d[i]) * to_float(w[i]);
        g_sum += g;
        gx_sum += g * (to_float(x[i]) - m) * s;
    }
    const float g_mean = warp_sum(g_sum) / C, gx_mean = warp_sum(gx_sum) / C;
    T* dx = dinp + size_t(n) * C;
    for (int i = lane; i < C; i += 32) {
        const float xhat = (to_float(x[i]) - m) * s;
        const float g = to_float(d[i]) * to_float(w[i]);
        dx[i] = from_float<T>(to_float(dx[i]) + s * (g - g_mean - xhat * gx_mean));
    }
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                       int C, double eps, cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(layernorm_forward_kernel<float>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, out, mean, rstd,
                  inp, w, b, N, C, float(eps));
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(layernorm_backward_dinp_kernel<float>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, dinp, dout,
                  inp, w, mean, rstd, N, C);
    norm_weight_grad<float>(dw, db, dout, inp, mean, rstd, N, C, stream);
}

}  // namespace rkv::cuda
