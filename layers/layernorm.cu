// LayerNorm over the last dimension, forward and backward (ref/layernorm.h), and the
// forward fused with the residual add before it (ref/residual.h). The arguments: ref/norm_args.h.
//   inp, residual, resid_out, out, dout, dinp (N, C) and w, bias (C) of S;
//   mean, rstd (N) and dw, db (C) in float
//
//   residual: x = inp + residual, stored to resid_out and read back (rounded to S)
//   forward:  mean = sum(x) / C,  rstd = 1 / sqrt(sum((x - mean)^2) / C + eps),
//             out = (x - mean) * rstd * w + bias
//   backward: xhat = (x - mean) * rstd,  g = dout * w,
//             dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)),
//             dw += sum over rows of dout * xhat,  db += sum over rows of dout
//
// One warp per row: a row's reductions are warp shuffles, no block barriers, and any C
// works (the lanes stride over the row, in packs of W elements: kPack<S>, 16 bytes, when C
// and every pointer allow, else 1; layers/common.cuh). The plain forward is the fused one
// with no residual (x = inp). The weight gradients are column sums over all rows,
// done by layers/norm_common.cuh in a fixed order.
#include "layers/layernorm.cuh"

#include "layers/common.cuh"
#include "layers/norm_common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

// Row n of x = a (+ b) is normalized into out; resid_out gets x when b is not null.
template <class S, int W>
__global__ void layernorm_forward_kernel(S* resid_out, S* out, float* mean, float* rstd, const S* a, const S* b,
                                         const S* w, const S* bias, int N, int C, float eps) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const size_t row = size_t(n) * C;
    const S* x = residual_row<W>(resid_out, a, b, row, lane, C);
    float sum = 0.0f;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> xs = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) sum += to_float(xs[k]);
    }
    const float m = warp_sum(sum) / C;
    // The variance from the centred values (two passes, as ref): no cancellation.
    float sq = 0.0f;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> xs = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) {
            const float d = to_float(xs[k]) - m;
            sq += d * d;
        }
    }
    const float s = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    S* o = out + row;
    for (int i = lane * W; i < C; i += 32 * W) {
        // The last read of x in the forward: streaming. w and bias are every row's: cached.
        const Pack<S, W> xs = load_pack_cs<W>(x + i), ws = load_pack<W>(w + i), bs = load_pack<W>(bias + i);
        Pack<S, W> os;
        for (int k = 0; k < W; k++)
            os[k] = from_float<S>((to_float(xs[k]) - m) * s * to_float(ws[k]) + to_float(bs[k]));
        store_pack(o + i, os);
    }
    if (lane == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}

// dout and inp are read again by the weight gradients right after: no streaming hints.
template <class S, int W>
__global__ void layernorm_backward_dinp_kernel(S* dinp, const S* dout, const S* inp, const S* w, const float* mean,
                                               const float* rstd, int N, int C) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
    if (n >= N) return;
    const S* x = inp + size_t(n) * C;
    const S* d = dout + size_t(n) * C;
    const float m = mean[n], s = rstd[n];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> ds = load_pack<W>(d + i), ws = load_pack<W>(w + i), xs = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) {
            const float g = to_float(ds[k]) * to_float(ws[k]);
            g_sum += g;
            gx_sum += g * (to_float(xs[k]) - m) * s;
        }
    }
    const float g_mean = warp_sum(g_sum) / C, gx_mean = warp_sum(gx_sum) / C;
    S* dx = dinp + size_t(n) * C;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> ds = load_pack<W>(d + i), ws = load_pack<W>(w + i), xs = load_pack<W>(x + i);
        Pack<S, W> dxs = load_pack<W>(dx + i);
        for (int k = 0; k < W; k++) {
            const float xhat = (to_float(xs[k]) - m) * s;
            const float g = to_float(ds[k]) * to_float(ws[k]);
            dxs[k] = from_float<S>(to_float(dxs[k]) + s * (g - g_mean - xhat * gx_mean));
        }
        store_pack(dx + i, dxs);
    }
}

}  // namespace

template <class S>
void layernorm_forward(const NormArgs<S, float>& a, cudaStream_t stream) {
    if (a.N == 0) return;
    const auto kernel = whole_packs<S>(a.C, a.resid_out, a.out, a.inp, a.residual, a.w, a.bias)
                            ? layernorm_forward_kernel<S, kPack<S>>
                            : layernorm_forward_kernel<S, 1>;
    launch_kernel(kernel, ceil_div(a.N, kRowsPerBlock), kBlock, 0, stream, a.resid_out, a.out, a.mean, a.rstd, a.inp,
                  a.residual, a.w, a.bias, a.N, a.C, float(a.eps));
}

template <class S>
void layernorm_backward(const NormArgs<S, float>& a, cudaStream_t stream) {
    if (a.N == 0) return;
    const auto kernel = whole_packs<S>(a.C, a.dinp, a.dout, a.inp, a.w) ? layernorm_backward_dinp_kernel<S, kPack<S>>
                                                                        : layernorm_backward_dinp_kernel<S, 1>;
    launch_kernel(kernel, ceil_div(a.N, kRowsPerBlock), kBlock, 0, stream, a.dinp, a.dout, a.inp, a.w, a.mean, a.rstd,
                  a.N, a.C);
    norm_weight_grad<S>(a.dw, a.db, a.dout, a.inp, a.mean, a.rstd, a.N, a.C, stream);
}

template void layernorm_forward<float>(const NormArgs<float, float>&, cudaStream_t);
template void layernorm_forward<__nv_bfloat16>(const NormArgs<__nv_bfloat16, float>&, cudaStream_t);
template void layernorm_backward<float>(const NormArgs<float, float>&, cudaStream_t);
template void layernorm_backward<__nv_bfloat16>(const NormArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
