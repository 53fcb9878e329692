// Pointwise activations, forward and backward, and the residual add (ref/activations.h,
// ref/residual.h). One thread per element; all tensors (n) of the storage type T, the
// math in float (layers/common.cuh).
//   GELU (tanh): u = c (x + 0.044715 x^3), c = sqrt(2/pi);  out = x (1 + tanh u) / 2
//                GELU'(x) = (1 + tanh u) / 2 + x (1 - tanh^2 u) c (1 + 3 * 0.044715 x^2) / 2
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

__device__ __forceinline__ size_t element_index() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* x, size_t n) {
    const size_t i = element_index();
    if (i >= n) return;
    const float v = to_float(x[i]);
    const float u = kGeluC * (v + kGeluA * v * v * v);
    out[i] = from_float<T>(0.5f * v * (1.0f + tanhf(u)));
}

template <class T>
__global__ void gelu_backward_kernel(T* dx, const T* dout, const T* x, size_t n) {
    const size_t i = element_index();
    if (i >= n) return;
    const float v = to_float(x[i]);
    const float th = tanhf(kGeluC * (v + kGeluA * v * v * v));
    const float du = kGeluC * (1.0f + 3.0f * kGeluA * v * v);
    const float grad = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
    dx[i] = from_float<T>(to_float(dx[i]) + to_float(dout[i]) * grad);
}

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, size_t n) {
    const size_t i = element_index();
    if (i >= n) return;
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g * sigmoid(g) * to_float(up[i]));
}

template <class T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) {
    const size_t i = element_index();
    if (i >= n) return;
    const float g = to_float(gate[i]), u = to_float(up[i]), d = to_float(dout[i]);
    const float sig = sigmoid(g);
    dgate[i] = from_float<T>(to_float(dgate[i]) + d * u * sig * (1.0f + g * (1.0f - sig)));
    dup[i] = from_float<T>(to_float(dup[i]) + d * g * sig);
}

template <class T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, size_t n) {
    const size_t i = element_index();
    if (i >= n) return;
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

unsigned blocks_for(size_t n) { return unsigned(ceil_div<size_t>(n, kBlock)); }

}  // namespace

template <class T>
void gelu_forward(T* out, const T* x, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(gelu_forward_kernel<T>, blocks_for(n), kBlock, 0, stream, out, x, n);
}

template <class T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(gelu_backward_kernel<T>, blocks_for(n), kBlock, 0, stream, dx, dout, x, n);
}

template <class T>
void swiglu_forward(T* out, const T* gate, const T* up, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(swiglu_forward_kernel<T>, blocks_for(n), kBlock, 0, stream, out, gate, up, n);
}

template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(swiglu_backward_kernel<T>, blocks_for(n), kBlock, 0, stream, dgate, dup, dout, gate, up, n);
}

template <class T>
void residual_forward(T* out, const T* a, const T* b, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(residual_forward_kernel<T>, blocks_for(n), kBlock, 0, stream, out, a, b, n);
}

#define INSTANTIATE(T)                                                                                                 \
    template void gelu_forward<T>(T*, const T*, size_t, cudaStream_t);                                                 \
    template void gelu_backward<T>(T*, const T*, const T*, size_t, cudaStream_t);                                      \
    template void swiglu_forward<T>(T*, const T*, const T*, size_t, cudaStream_t);                                     \
    template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, size_t, cudaStream_t);                      \
    template void residual_forward<T>(T*, const T*, const T*, size_t, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace rkv::cuda
