// Pointwise activations and the residual add on the GPU: the kernels of
// ref/activations.h and ref/residual.h. Every tensor is (n) elements.
// All pointers are device memory.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = GELU(x), tanh approximation (GPT-2's); dx += dout * GELU'(x).
void gelu_forward(float* out, const float* x, size_t n, cudaStream_t stream);
void gelu_backward(float* dx, const float* dout, const float* x, size_t n, cudaStream_t stream);
// out = silu(gate) * up; dgate, dup += the gradients.
void swiglu_forward(float* out, const float* gate, const float* up, size_t n, cudaStream_t stream);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n,
                     cudaStream_t stream);
// out = a + b.
void residual_forward(float* out, const float* a, const float* b, size_t n, cudaStream_t stream);

}  // namespace rkv::cuda
