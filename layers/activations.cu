// Pointwise activations, forward and backward, and the residual add (ref/activations.h,
// ref/residual.h). All tensors (n) of the storage type S, the math in float
// (layers/common.cuh). One thread per pack of W elements: kPack<S>, 16 bytes, when n and
// every pointer allow, else 1. Inputs that the step does not read again soon (saved
// activations, incoming gradients) are loaded streaming; outputs, read by the next kernel,
// are stored normally. The backward writes its gradients (=); dx may be dout, as each thread
// reads its elements before writing them.
//   GELU (tanh): u = c (x + 0.044715 x^3), c = sqrt(2/pi);  out = x (1 + tanh u) / 2
//                GELU'(x) = (1 + tanh u) / 2 + x (1 - tanh^2 u) c (1 + 3 * 0.044715 x^2) / 2
//                computed as s = (1 + tanh u) / 2 = sigmoid(2u): out = x s, GELU' = s + 2 x s (1 - s) u',
//                since 1 + tanh u cancels to nothing in float for very negative x (sigmoid does not)
//   SwiGLU:      out = silu(gate) up, silu(g) = g sigmoid(g);
//                silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g)))
//   residual:    out = a + b (its backward is two accumulations the driver does itself)
#include "layers/activations.cuh"

#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

// The first element of this thread's pack.
template <int W>
__device__ __forceinline__ size_t pack_start() {
    return (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
}

template <class S, int W>
__global__ void gelu_forward_kernel(S* out, const S* x, size_t n) {
    const size_t i = pack_start<W>();
    if (i >= n) return;  // n is a multiple of W
    const Pack<S, W> xs = load_pack_cs<W>(x + i);
    Pack<S, W> os;
    for (int k = 0; k < W; k++) {
        const float v = to_float(xs[k]);
        const float u = kGeluC * (v + kGeluA * v * v * v);
        os[k] = from_float<S>(v * sigmoid(2.0f * u));
    }
    store_pack(out + i, os);
}

template <class S, int W>
__global__ void gelu_backward_kernel(S* dx, const S* dout, const S* x, size_t n) {
    const size_t i = pack_start<W>();
    if (i >= n) return;
    const Pack<S, W> xs = load_pack_cs<W>(x + i), ds = load_pack_cs<W>(dout + i);
    Pack<S, W> dxs;
    for (int k = 0; k < W; k++) {
        const float v = to_float(xs[k]);
        const float s = sigmoid(2.0f * kGeluC * (v + kGeluA * v * v * v));
        const float du = kGeluC * (1.0f + 3.0f * kGeluA * v * v);
        const float grad = s + 2.0f * v * s * (1.0f - s) * du;
        dxs[k] = from_float<S>(to_float(ds[k]) * grad);
    }
    store_pack(dx + i, dxs);
}

template <class S, int W>
__global__ void swiglu_forward_kernel(S* out, const S* gate, const S* up, size_t n) {
    const size_t i = pack_start<W>();
    if (i >= n) return;
    const Pack<S, W> gs = load_pack_cs<W>(gate + i), us = load_pack_cs<W>(up + i);
    Pack<S, W> os;
    for (int k = 0; k < W; k++) {
        const float g = to_float(gs[k]);
        os[k] = from_float<S>(g * sigmoid(g) * to_float(us[k]));
    }
    store_pack(out + i, os);
}

template <class S, int W>
__global__ void swiglu_backward_kernel(S* dgate, S* dup, const S* dout, const S* gate, const S* up, size_t n) {
    const size_t i = pack_start<W>();
    if (i >= n) return;
    const Pack<S, W> gs = load_pack_cs<W>(gate + i), us = load_pack_cs<W>(up + i), ds = load_pack_cs<W>(dout + i);
    Pack<S, W> dgs, dus;
    for (int k = 0; k < W; k++) {
        const float g = to_float(gs[k]), u = to_float(us[k]), d = to_float(ds[k]);
        const float sig = sigmoid(g);
        dgs[k] = from_float<S>(d * u * sig * (1.0f + g * (1.0f - sig)));
        dus[k] = from_float<S>(d * g * sig);
    }
    store_pack(dgate + i, dgs);
    store_pack(dup + i, dus);
}

template <class S, int W>
__global__ void residual_forward_kernel(S* out, const S* a, const S* b, size_t n) {
    const size_t i = pack_start<W>();
    if (i >= n) return;
    const Pack<S, W> as = load_pack_cs<W>(a + i), bs = load_pack_cs<W>(b + i);
    Pack<S, W> os;
    for (int k = 0; k < W; k++) os[k] = from_float<S>(to_float(as[k]) + to_float(bs[k]));
    store_pack(out + i, os);
}

// Threads for n elements in packs of W.
unsigned blocks_for(size_t n, int W) { return unsigned(ceil_div<size_t>(n / W, kBlock)); }

}  // namespace

template <class S>
void gelu_forward(S* out, const S* x, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int W = whole_packs<S>(n, out, x) ? kPack<S> : 1;
    launch_kernel(W == 1 ? gelu_forward_kernel<S, 1> : gelu_forward_kernel<S, kPack<S>>, blocks_for(n, W), kBlock, 0,
                  stream, out, x, n);
}

template <class S>
void gelu_backward(S* dx, const S* dout, const S* x, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int W = whole_packs<S>(n, dx, dout, x) ? kPack<S> : 1;
    launch_kernel(W == 1 ? gelu_backward_kernel<S, 1> : gelu_backward_kernel<S, kPack<S>>, blocks_for(n, W), kBlock, 0,
                  stream, dx, dout, x, n);
}

template <class S>
void swiglu_forward(const SwiGLUArgs<S>& a, cudaStream_t stream) {
    if (a.n == 0) return;
    const int W = whole_packs<S>(a.n, a.out, a.gate, a.up) ? kPack<S> : 1;
    launch_kernel(W == 1 ? swiglu_forward_kernel<S, 1> : swiglu_forward_kernel<S, kPack<S>>, blocks_for(a.n, W), kBlock,
                  0, stream, a.out, a.gate, a.up, a.n);
}

template <class S>
void swiglu_backward(const SwiGLUArgs<S>& a, cudaStream_t stream) {
    if (a.n == 0) return;
    const int W = whole_packs<S>(a.n, a.dgate, a.dup, a.dout, a.gate, a.up) ? kPack<S> : 1;
    launch_kernel(W == 1 ? swiglu_backward_kernel<S, 1> : swiglu_backward_kernel<S, kPack<S>>, blocks_for(a.n, W),
                  kBlock, 0, stream, a.dgate, a.dup, a.dout, a.gate, a.up, a.n);
}

template <class S>
void residual_forward(S* out, const S* a, const S* b, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int W = whole_packs<S>(n, out, a, b) ? kPack<S> : 1;
    launch_kernel(W == 1 ? residual_forward_kernel<S, 1> : residual_forward_kernel<S, kPack<S>>, blocks_for(n, W),
                  kBlock, 0, stream, out, a, b, n);
}

#define INSTANTIATE(S)                                                            \
    template void gelu_forward<S>(S*, const S*, size_t, cudaStream_t);            \
    template void gelu_backward<S>(S*, const S*, const S*, size_t, cudaStream_t); \
    template void swiglu_forward<S>(const SwiGLUArgs<S>&, cudaStream_t);          \
    template void swiglu_backward<S>(const SwiGLUArgs<S>&, cudaStream_t);         \
    template void residual_forward<S>(S*, const S*, const S*, size_t, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace rkv::cuda
