// RMSNorm on the GPU (also QK-norm: N = B*T*heads rows of C = head_dim): the kernels
// of ref/rmsnorm.h.
//   inp, out, dout, dinp (N, C); w, dw (C); rstd (N)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = inp * rstd * w, saving rstd for backward.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C, double eps,
                     cudaStream_t stream);
// dinp, dw += the gradients (dw summed in a fixed order: deterministic).
void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                      int N, int C, cudaStream_t stream);

}  // namespace rkv::cuda
