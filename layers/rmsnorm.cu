// RMSNorm over the last dimension, forward and backward (ref/rmsnorm.h). QK-norm is the
// same function over the rows of one head (N = B*T*heads, C = head_dim).
//   inp, out, dout, dinp (N, C); w, dw (C); rstd (N)
//
//   forward:  rstd = 1 / sqrt(sum(x^2) / C + eps),  out = x * rstd * w
//   backward: xhat = x * rstd,  g = dout * w,
//             dinp += rstd * (g - xhat * mean(g * xhat)),  dw += sum over rows of dout * xhat
//
// One warp per row, as layers/layernorm.cu: any C works, including head sizes below 32
// (idle lanes add nothing). dw is a column sum over all rows, done by
// layers/norm_weight_grad.cuh in a fixed order.
#include "layers/rmsnorm.cuh"

#include "layers/common.cuh"
#include "layers/norm_weight_grad.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, T* rstd, const T* inp, const T* w, int N, int C, float eps) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const T* x = inp + size_t(n) * C;
    float sq = 0.0f;
    for (int i = lane; i < C; i += 32) sq += to_float(x[i]) * to_float(x[i]);
    const float s = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    T* o = out + size_t(n) * C;
    for (int i = lane; i < C; i += 32) o[i] = from_float<T>(to_float(x[i]) * s * to_float(w[i]));
    if (lane == 0) rstd[n] = from_float<T>(s);
}

template <class T>
__global__ void rmsnorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                                             int C) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;
    const T* x = inp + size_t(n) * C;
    const T* d = dout + size_t(n) * C;
    const float s = to_float(rstd[n]);
    float gx_sum = 0.0f;
    for (int i = lane; i < C; i += 32) gx_sum += to_float(d[i]) * to_float(w[i]) * to_float(x[i]) * s;
    const float gx_mean = warp_sum(gx_sum) / C;
    T* dx = dinp + size_t(n) * C;
    for (int i = lane; i < C; i += 32) {
        const float xhat = to_float(x[i]) * s;
        dx[i] = from_float<T>(to_float(dx[i]) + s * (to_float(d[i]) * to_float(w[i]) - xhat * gx_mean));
    }
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C, double eps,
                     cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(rmsnorm_forward_kernel<float>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, out, rstd, inp, w, N,
                  C, float(eps));
}

void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int N, int C, cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(rmsnorm_backward_dinp_kernel<float>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, dinp, dout,
                  inp, w, rstd, N, C);
    norm_weight_grad<float>(dw, nullptr, dout, inp, nullptr, rstd, N, C, stream);
}

}  // namespace rkv::cuda
