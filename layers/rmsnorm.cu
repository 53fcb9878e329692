// RMSNorm over the last dimension, forward and backward (ref/rmsnorm.h), and the forward
// fused with the residual add before it (ref/residual.h). QK-norm is the same function
// over the rows of one head (N = B*T*heads, C = head_dim).
//   inp, a, b, resid_out, out, dout, dinp (N, C) and w (C) of T; rstd (N) and dw (C) in float
//
//   residual: x = a + b, stored to resid_out and read back (rounded to T)
//   forward:  rstd = 1 / sqrt(sum(x^2) / C + eps),  out = x * rstd * w
//   backward: xhat = x * rstd,  g = dout * w,
//             dinp += rstd * (g - xhat * mean(g * xhat)),  dw += sum over rows of dout * xhat
//
// One warp per row, as layers/layernorm.cu: any C works, including head sizes below 32
// (idle lanes add nothing); the plain forward is the fused one with no residual (b null,
// x = a), the residual row shared with LayerNorm. dw is a column sum over all rows, done by
// layers/norm_common.cuh in a fixed order.
#include "layers/rmsnorm.cuh"

#include "layers/common.cuh"
#include "layers/norm_common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

// Row n of x = a (+ b) is normalized into out; resid_out gets x when b is not null.
template <class T>
__global__ void rmsnorm_forward_kernel(T* resid_out, T* out, float* rstd, const T* a, const T* b, const T* w, int N,
                                       int C, float eps) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const size_t row = size_t(n) * C;
    const T* x = residual_row(resid_out, a, b, row, lane, C);
    float sq = 0.0f;
    for (int i = lane; i < C; i += 32) sq += to_float(x[i]) * to_float(x[i]);
    const float s = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    T* o = out + row;
    for (int i = lane; i < C; i += 32) o[i] = from_float<T>(to_float(x[i]) * s * to_float(w[i]));
    if (lane == 0) rstd[n] = s;
}

template <class T>
__global__ void rmsnorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* rstd,
                                             int N, int C) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;
    const T* x = inp + size_t(n) * C;
    const T* d = dout + size_t(n) * C;
    const float s = rstd[n];
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

template <class T>
void residual_rmsnorm_forward(T* resid_out, T* out, float* rstd, const T* a, const T* b, const T* w, int N, int C,
                              double eps, cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(rmsnorm_forward_kernel<T>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, resid_out, out, rstd, a,
                  b, w, N, C, float(eps));
}

template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* w, int N, int C, double eps, cudaStream_t stream) {
    residual_rmsnorm_forward<T>(nullptr, out, rstd, inp, nullptr, w, N, C, eps, stream);
}

template <class T>
void rmsnorm_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C,
                      cudaStream_t stream) {
    if (N == 0) return;
    launch_kernel(rmsnorm_backward_dinp_kernel<T>, ceil_div(N, kRowsPerBlock), kBlock, 0, stream, dinp, dout, inp, w,
                  rstd, N, C);
    norm_weight_grad<T>(dw, nullptr, dout, inp, nullptr, rstd, N, C, stream);
}

#define INSTANTIATE(T)                                                                                                 \
    template void rmsnorm_forward<T>(T*, float*, const T*, const T*, int, int, double, cudaStream_t);                  \
    template void residual_rmsnorm_forward<T>(T*, T*, float*, const T*, const T*, const T*, int, int, double,          \
                                              cudaStream_t);                                                           \
    template void rmsnorm_backward<T>(T*, float*, const T*, const T*, const T*, const float*, int, int,                \
                                      cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace rkv::cuda
