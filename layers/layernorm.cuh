// LayerNorm on the GPU, alone or fused with the residual add before it: the kernels of
// ref/layernorm.h (and ref/residual.h).
//   inp, a, b, resid_out, out, dout, dinp (N, C) and w, bias (C) of the storage type T;
//   mean, rstd (N) and dw, db (C) in float (layers/common.cuh)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = (inp - mean) * rstd * w + b, saving mean and rstd for backward.
template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* w, const T* b, int N, int C,
                       double eps, cudaStream_t stream);
// resid_out = a + b (rounded to T), then out = layernorm(resid_out) as above: the bits of
// residual_forward followed by layernorm_forward, in one pass. resid_out may be a or b (in place).
template <class T>
void residual_layernorm_forward(T* resid_out, T* out, float* mean, float* rstd, const T* a, const T* b, const T* w,
                                const T* bias, int N, int C, double eps, cudaStream_t stream);
// dinp, dw, db += the gradients (dw, db summed in a fixed order: deterministic).
template <class T>
void layernorm_backward(T* dinp, float* dw, float* db, const T* dout, const T* inp, const T* w, const float* mean,
                        const float* rstd, int N, int C, cudaStream_t stream);

}  // namespace rkv::cuda
