// RMSNorm on the GPU (also QK-norm: N = B*T*heads rows of C = head_dim), alone or fused
// with the residual add before it: the kernels of ref/rmsnorm.h (and ref/residual.h).
//   inp, a, b, resid_out, out, dout, dinp (N, C) and w (C) of the storage type T;
//   rstd (N) and dw (C) in float (layers/common.cuh)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = inp * rstd * w, saving rstd for backward.
template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* w, int N, int C, double eps, cudaStream_t stream);
// resid_out = a + b (rounded to T), then out = rmsnorm(resid_out) as above: the bits of
// residual_forward followed by rmsnorm_forward, in one pass. resid_out may be a or b (in place).
template <class T>
void residual_rmsnorm_forward(T* resid_out, T* out, float* rstd, const T* a, const T* b, const T* w, int N, int C,
                              double eps, cudaStream_t stream);
// dinp, dw += the gradients (dw summed in a fixed order: deterministic).
template <class T>
void rmsnorm_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C,
                      cudaStream_t stream);

}  // namespace rkv::cuda
