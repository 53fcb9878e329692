// LayerNorm on the GPU: the kernels of ref/layernorm.h.
//   inp, out, dout, dinp (N, C); w, b, dw, db (C); mean, rstd (N)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = (inp - mean) * rstd * w + b, saving mean and rstd for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                       int C, double eps, cudaStream_t stream);
// dinp, dw, db += the gradients (dw, db summed in a fixed order: deterministic).
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t stream);

}  // namespace rkv::cuda
