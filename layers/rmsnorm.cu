// RMSNorm over the last dimension, forward and backward (ref/rmsnorm.h), and the forward
// fused with the residual add before it (ref/residual.h). QK-norm is the same function
// over the rows of one head (N = B*T*heads, C = head_dim).
// The arguments: ref/norm_args.h.
//   inp, residual, resid_out, out, dout, dinp (N, C) and w (C) of S; rstd (N) and dw (C) in float
//
//   residual: x = inp + residual, stored to resid_out and read back (rounded to S)
//   forward:  rstd = 1 / sqrt(sum(x^2) / C + eps),  out = x * rstd * w
//   backward: xhat = x * rstd,  g = dout * w,
//             dinp += rstd * (g - xhat * mean(g * xhat)),  dw += sum over rows of dout * xhat
//
// One warp per row, as layers/layernorm.cu: any C works, including head sizes below 32
// (idle lanes add nothing), in packs of W elements (kPack<S> when C and every pointer
// allow, else 1; layers/common.cuh); the plain forward is the fused one with no residual
// (x = inp), the residual row shared with LayerNorm. dw is a column sum over all rows, done by
// layers/norm_common.cuh in a fixed order.
#include "layers/rmsnorm.cuh"

#include "layers/common.cuh"
#include "layers/norm_common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

// Row n of x = a (+ b) is normalized into out; resid_out gets x when b is not null.
template <class S, int W>
__global__ void rmsnorm_forward_kernel(S* resid_out, S* out, float* rstd, const S* a, const S* b, const S* w, int N,
                                       int C, float eps) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const size_t row = size_t(n) * C;
    const S* x = residual_row<W>(resid_out, a, b, row, lane, C);
    float sq = 0.0f;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> xs = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) sq += to_float(xs[k]) * to_float(xs[k]);
    }
    const float s = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    S* o = out + row;
    for (int i = lane * W; i < C; i += 32 * W) {
        // The last read of x in the forward: streaming. w is every row's: cached.
        const Pack<S, W> xs = load_pack_cs<W>(x + i), ws = load_pack<W>(w + i);
        Pack<S, W> os;
        for (int k = 0; k < W; k++) os[k] = from_float<S>(to_float(xs[k]) * s * to_float(ws[k]));
        store_pack(o + i, os);
    }
    if (lane == 0) rstd[n] = s;
}

// dout and inp are read again by the weight gradient right after: no streaming hints.
template <class S, int W>
__global__ void rmsnorm_backward_dinp_kernel(S* dinp, const S* dout, const S* inp, const S* w, const float* rstd, int N,
                                             int C) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;
    const S* x = inp + size_t(n) * C;
    const S* d = dout + size_t(n) * C;
    const float s = rstd[n];
    float gx_sum = 0.0f;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> ds = load_pack<W>(d + i), ws = load_pack<W>(w + i), xs = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) gx_sum += to_float(ds[k]) * to_float(ws[k]) * to_float(xs[k]) * s;
    }
    const float gx_mean = warp_sum(gx_sum) / C;
    S* dx = dinp + size_t(n) * C;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> ds = load_pack<W>(d + i), ws = load_pack<W>(w + i), xs = load_pack<W>(x + i);
        Pack<S, W> dxs = load_pack<W>(dx + i);
        for (int k = 0; k < W; k++) {
            const float xhat = to_float(xs[k]) * s;
            dxs[k] = from_float<S>(to_float(dxs[k]) + s * (to_float(ds[k]) * to_float(ws[k]) - xhat * gx_mean));
        }
        store_pack(dx + i, dxs);
    }
}

}  // namespace

template <class S>
void rmsnorm_forward(const NormArgs<S, float>& a, cudaStream_t stream) {
    if (a.N == 0) return;
    const auto kernel = whole_packs<S>(a.C, a.resid_out, a.out, a.inp, a.residual, a.w)
                            ? rmsnorm_forward_kernel<S, kPack<S>>
                            : rmsnorm_forward_kernel<S, 1>;
    launch_kernel(kernel, ceil_div(a.N, kRowsPerBlock), kBlock, 0, stream, a.resid_out, a.out, a.rstd, a.inp,
                  a.residual, a.w, a.N, a.C, float(a.eps));
}

template <class S>
void rmsnorm_backward(const NormArgs<S, float>& a, cudaStream_t stream) {
    if (a.N == 0) return;
    const auto kernel = whole_packs<S>(a.C, a.dinp, a.dout, a.inp, a.w) ? rmsnorm_backward_dinp_kernel<S, kPack<S>>
                                                                        : rmsnorm_backward_dinp_kernel<S, 1>;
    launch_kernel(kernel, ceil_div(a.N, kRowsPerBlock), kBlock, 0, stream, a.dinp, a.dout, a.inp, a.w, a.rstd, a.N,
                  a.C);
    norm_weight_grad<S>(a.dw, nullptr, a.dout, a.inp, nullptr, a.rstd, a.N, a.C, stream);
}

template void rmsnorm_forward<float>(const NormArgs<float, float>&, cudaStream_t);
template void rmsnorm_forward<__nv_bfloat16>(const NormArgs<__nv_bfloat16, float>&, cudaStream_t);
template void rmsnorm_backward<float>(const NormArgs<float, float>&, cudaStream_t);
template void rmsnorm_backward<__nv_bfloat16>(const NormArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
