// Rotary position embedding, forward and backward (ref/rope.h), rotate-half convention:
// the head vector splits in halves (x1, x2), pair i rotates by a = t * inv_freq(i)
// (ref/rope.h's rope_inv_freq: theta^(-2i/HS), rescaled as the config's rope_type says):
//   forward:  out1 = x1 cos a - x2 sin a,   out2 = x2 cos a + x1 sin a
//   backward: dx1 = d1 cos a + d2 sin a,    dx2 = d2 cos a - d1 sin a
//   inp, out, dout, dinp (B, T, NH, HS) of S, the math in float (the arguments: ref/rope.h's RopeArgs)
//
// One thread per (b, t, i): it computes the angle once, in double as ref does (t times
// a small power is not exact in float at long T), rounds cos and sin to float, and
// applies them to pair i of every head. Each thread reads both elements of a pair
// before writing them, so out may alias inp.
#include "layers/rope.cuh"

#include "layers/common.cuh"
#include "layers/rope_common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;

// Thread (n, i) for n = b*T + t over the N = B*T positions and the HS/2 pairs rotates
// pair i of every head by sign * a, at position pos0 + t. The backward is the forward's transpose: the rotation
// by -a.
template <class S>
__global__ void rope_kernel(S* out, const S* inp, int N, int T, int pos0, int H, int HS, RopeParams rope, float sign) {
    const int half = HS / 2;
    const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= size_t(N) * half) return;
    const int n = int(idx / half), i = int(idx % half);
    float c, s;
    rope_cos_sin(pos0 + n % T, i, HS, rope, &c, &s);
    s *= sign;
    for (int h = 0; h < H; h++) {
        const size_t base = (size_t(n) * H + h) * HS;
        const float x1 = to_float(inp[base + i]), x2 = to_float(inp[base + i + half]);
        const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        out[base + i] = from_float<S>(y1);
        out[base + i + half] = from_float<S>(y2);
    }
}

}  // namespace

template <class S>
void rope_forward(const RopeArgs<S, float>& a, cudaStream_t stream) {
    const size_t threads = size_t(a.B) * a.T * (a.HS / 2);
    if (threads == 0) return;
    launch_kernel(rope_kernel<S>, unsigned(ceil_div<size_t>(threads, kBlock)), kBlock, 0, stream, a.out, a.inp,
                  a.B * a.T, a.T, a.pos0, a.NH, a.HS, a.rope, 1.0f);
}

template <class S>
void rope_backward(const RopeArgs<S, float>& a, cudaStream_t stream) {
    const size_t threads = size_t(a.B) * a.T * (a.HS / 2);
    if (threads == 0) return;
    launch_kernel(rope_kernel<S>, unsigned(ceil_div<size_t>(threads, kBlock)), kBlock, 0, stream, a.dinp, a.dout,
                  a.B * a.T, a.T, 0, a.NH, a.HS, a.rope, -1.0f);
}

template void rope_forward<float>(const RopeArgs<float, float>&, cudaStream_t);
template void rope_forward<__nv_bfloat16>(const RopeArgs<__nv_bfloat16, float>&, cudaStream_t);
template void rope_backward<float>(const RopeArgs<float, float>&, cudaStream_t);
template void rope_backward<__nv_bfloat16>(const RopeArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
