// Pointwise activations and the residual add on the GPU: the kernels of
// ref/activations.h and ref/residual.h. Every tensor is (n) elements of the storage
// type S (float or __nv_bfloat16, layers/common.cuh); the math is in float.
// All pointers are device memory.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/activations.h"

namespace rkv::cuda {

// out = GELU(x), tanh approximation (GPT-2's); dx = dout * GELU'(x) (dx may be dout).
template <class S>
void gelu_forward(S* out, const S* x, size_t n, cudaStream_t stream);
template <class S>
void gelu_backward(S* dx, const S* dout, const S* x, size_t n, cudaStream_t stream);
// out = silu(gate) * up; dgate, dup = the gradients, written (ref/activations.h's SwiGLUArgs).
template <class S>
void swiglu_forward(const SwiGLUArgs<S>& a, cudaStream_t stream);
template <class S>
void swiglu_backward(const SwiGLUArgs<S>& a, cudaStream_t stream);
// out = a + b.
template <class S>
void residual_forward(S* out, const S* a, const S* b, size_t n, cudaStream_t stream);

}  // namespace rkv::cuda
