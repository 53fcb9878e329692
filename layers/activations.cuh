// Pointwise activations and the residual add on the GPU: the kernels of
// ref/activations.h and ref/residual.h. Every tensor is (n) elements of the storage
// type T (float or __nv_bfloat16, layers/common.cuh); the math is in float.
// All pointers are device memory.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/activations.h"

namespace rkv::cuda {

// out = GELU(x), tanh approximation (GPT-2's); dx = dout * GELU'(x) (dx may be dout).
template <class T>
void gelu_forward(T* out, const T* x, size_t n, cudaStream_t stream);
template <class T>
void gelu_backward(T* dx, const T* dout, const T* x, size_t n, cudaStream_t stream);
// out = silu(gate) * up; dgate, dup = the gradients, written (ref/activations.h's SwiGLUArgs).
template <class T>
void swiglu_forward(const SwiGLUArgs<T>& a, cudaStream_t stream);
template <class T>
void swiglu_backward(const SwiGLUArgs<T>& a, cudaStream_t stream);
// out = a + b.
template <class T>
void residual_forward(T* out, const T* a, const T* b, size_t n, cudaStream_t stream);

}  // namespace rkv::cuda
