// QK-norm followed by RoPE, fused (ref/rmsnorm.h over a head's HS values, then ref/rope.h).
// Per head row x (HS) at position t, pairs (x1, x2) = (x[i], x[i + HS/2]) rotating by a_i:
//   forward:   rstd = 1 / sqrt(mean(x^2) + eps),  y = x rstd w,
//              out1 = y1 cos a - y2 sin a,  out2 = y2 cos a + y1 sin a
//   backward:  g1 = d1 cos a + d2 sin a,  g2 = d2 cos a - d1 sin a   (the rotation's transpose)
//              xhat = x rstd,  dinp = rstd (g w - xhat mean(g w xhat)),  dw += sum over rows of g xhat
//   inp, out, dout, dinp (B, T, NH, HS) of S, the math in float; rstd (B, T, NH), dw (HS) float
//   (the arguments: ref/rope.h's RopeArgs)
// Unfused, y and g would each be stored and read back once more.
//
// One warp per position (b, t): lane l takes pairs i = l, l + 32, ... < HS/2, so both elements
// of each pair are its own, and computes their cos and sin once (layers/rope_common.cuh) for
// all H heads, which it takes in turn: a head's sum of squares (or of g w xhat) is one
// warp_sum. dw: each lane sums g xhat of its columns over its position's heads; the block's
// warps add theirs in order into partials (blocks, HS), and a second kernel adds the blocks'
// partials in order, so the result is the same every run.
#include "layers/qk_norm_rope.cuh"

#include <stdexcept>
#include <string>

#include "layers/common.cuh"
#include "layers/norm_common.cuh"
#include "layers/rope_common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256, kWarps = kBlock / 32;
constexpr int kMaxPairs = 4;  // pairs per lane: HS <= 2 * 32 * kMaxPairs = 256

// Lane `lane`'s rotation: cos and sin of pairs lane + 32 k at position t, and the weights of
// their two elements.
struct LanePairs {
    float c[kMaxPairs], s[kMaxPairs], w1[kMaxPairs], w2[kMaxPairs];
};

template <class S>
__device__ __forceinline__ LanePairs lane_pairs(const S* w, int lane, int t, int HS, const RopeParams& rope) {
    LanePairs p;
    const int half = HS / 2;
    RKV_UNROLL
    for (int k = 0; k < kMaxPairs; k++) {
        const int i = lane + 32 * k;
        if (i >= half) break;
        rope_cos_sin(t, i, HS, rope, &p.c[k], &p.s[k]);
        p.w1[k] = to_float(w[i]);
        p.w2[k] = to_float(w[i + half]);
    }
    return p;
}

// Warp n: row n = b * T + t (position pos0 + t), its H heads.
template <class S>
__global__ void qk_norm_rope_forward_kernel(S* out, float* rstd, const S* inp, const S* w, int N, int T, int pos0,
                                            int H, int HS, float eps, RopeParams rope) {
    const int lane = threadIdx.x % 32, n = blockIdx.x * kWarps + threadIdx.x / 32;
    if (n >= N) return;  // whole warps leave together
    const int half = HS / 2;
    const LanePairs p = lane_pairs(w, lane, pos0 + n % T, HS, rope);
    for (int h = 0; h < H; h++) {
        const size_t row = (size_t(n) * H + h) * HS;
        float x1[kMaxPairs], x2[kMaxPairs], sq = 0.0f;
        RKV_UNROLL
        for (int k = 0; k < kMaxPairs; k++) {
            const int i = lane + 32 * k;
            if (i >= half) break;
            x1[k] = to_float(inp[row + i]);
            x2[k] = to_float(inp[row + i + half]);
            sq += x1[k] * x1[k] + x2[k] * x2[k];
        }
        const float r = 1.0f / sqrtf(warp_sum(sq) / HS + eps);
        RKV_UNROLL
        for (int k = 0; k < kMaxPairs; k++) {
            const int i = lane + 32 * k;
            if (i >= half) break;
            const float y1 = x1[k] * r * p.w1[k], y2 = x2[k] * r * p.w2[k];
            out[row + i] = from_float<S>(y1 * p.c[k] - y2 * p.s[k]);
            out[row + i + half] = from_float<S>(y2 * p.c[k] + y1 * p.s[k]);
        }
        if (lane == 0) rstd[size_t(n) * H + h] = r;
    }
}

// As the forward, and partials (gridDim.x, HS) = this block's positions' sums of g xhat.
template <class S>
__global__ void qk_norm_rope_backward_kernel(S* dinp, float* partials, const S* dout, const S* inp, const S* w,
                                             const float* rstd, int N, int T, int H, int HS, RopeParams rope) {
    __shared__ float warp_dw[kWarps][2 * 32 * kMaxPairs];  // (warps, HS)
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n = blockIdx.x * kWarps + warp;
    const int half = HS / 2;
    float dw1[kMaxPairs] = {}, dw2[kMaxPairs] = {};
    if (n < N) {
        const LanePairs p = lane_pairs(w, lane, n % T, HS, rope);
        for (int h = 0; h < H; h++) {
            const size_t row = (size_t(n) * H + h) * HS;
            const float r = rstd[size_t(n) * H + h];
            // Zeroed only so that GCC's emulator build sees them set: both loops stop at the same i.
            float g1[kMaxPairs] = {}, g2[kMaxPairs] = {}, xh1[kMaxPairs] = {}, xh2[kMaxPairs] = {}, gx = 0.0f;
            RKV_UNROLL
            for (int k = 0; k < kMaxPairs; k++) {
                const int i = lane + 32 * k;
                if (i >= half) break;
                const float d1 = to_float(dout[row + i]), d2 = to_float(dout[row + i + half]);
                g1[k] = d1 * p.c[k] + d2 * p.s[k];
                g2[k] = d2 * p.c[k] - d1 * p.s[k];
                xh1[k] = to_float(inp[row + i]) * r;
                xh2[k] = to_float(inp[row + i + half]) * r;
                gx += g1[k] * p.w1[k] * xh1[k] + g2[k] * p.w2[k] * xh2[k];
            }
            const float gx_mean = warp_sum(gx) / HS;
            RKV_UNROLL
            for (int k = 0; k < kMaxPairs; k++) {
                const int i = lane + 32 * k;
                if (i >= half) break;
                dinp[row + i] = from_float<S>(r * (g1[k] * p.w1[k] - xh1[k] * gx_mean));
                dinp[row + i + half] = from_float<S>(r * (g2[k] * p.w2[k] - xh2[k] * gx_mean));
                dw1[k] += g1[k] * xh1[k];
                dw2[k] += g2[k] * xh2[k];
            }
        }
    }
    RKV_UNROLL
    for (int k = 0; k < kMaxPairs; k++) {
        const int i = lane + 32 * k;
        if (i >= half) break;
        warp_dw[warp][i] = dw1[k];  // zero for warps past N
        warp_dw[warp][i + half] = dw2[k];
    }
    __syncthreads();
    for (int c = threadIdx.x; c < HS; c += blockDim.x) {
        float sum = 0.0f;
        for (int v = 0; v < kWarps; v++) sum += warp_dw[v][c];
        partials[size_t(blockIdx.x) * HS + c] = sum;
    }
}

void check_head_size(int HS) {
    if (HS % 2 != 0 || HS > 2 * 32 * kMaxPairs)
        throw std::invalid_argument("qk_norm_rope: head size " + std::to_string(HS) + " is not even and at most " +
                                    std::to_string(2 * 32 * kMaxPairs));
}

}  // namespace

template <class S>
void qk_norm_rope_forward(const RopeArgs<S, float>& a, cudaStream_t stream) {
    check_head_size(a.HS);
    const int N = a.B * a.T;
    if (N == 0 || a.NH == 0) return;
    launch_kernel(qk_norm_rope_forward_kernel<S>, ceil_div(N, kWarps), kBlock, 0, stream, a.out, a.rstd, a.inp, a.w, N,
                  a.T, a.pos0, a.NH, a.HS, float(a.eps), a.rope);
}

template <class S>
void qk_norm_rope_backward(const RopeArgs<S, float>& a, cudaStream_t stream) {
    check_head_size(a.HS);
    const int N = a.B * a.T;
    if (N == 0 || a.NH == 0) return;
    const int G = ceil_div(N, kWarps);
    StreamScratch<float> partials(size_t(G) * a.HS, stream);
    launch_kernel(qk_norm_rope_backward_kernel<S>, G, kBlock, 0, stream, a.dinp, partials.get(), a.dout, a.inp, a.w,
                  a.rstd, N, a.T, a.NH, a.HS, a.rope);
    // dw += the blocks' partials, in order (as the norms' weight gradients finish).
    launch_kernel(norm_grad::finish_kernel, ceil_div(a.HS, 256), 256, 0, stream, a.dw, nullptr, partials.get(), nullptr,
                  G, a.HS);
}

template void qk_norm_rope_forward<float>(const RopeArgs<float, float>&, cudaStream_t);
template void qk_norm_rope_forward<__nv_bfloat16>(const RopeArgs<__nv_bfloat16, float>&, cudaStream_t);
template void qk_norm_rope_backward<float>(const RopeArgs<float, float>&, cudaStream_t);
template void qk_norm_rope_backward<__nv_bfloat16>(const RopeArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
