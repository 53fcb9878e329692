// RMSNorm on the GPU (also QK-norm: N = B*T*heads rows of C = head_dim), alone or fused
// with the residual add before it: the kernels of ref/rmsnorm.h (and ref/residual.h).
// The arguments: ref/norm_args.h, NormArgs<S, float> (no mean, bias or db): the rows and w of
// the storage type S, rstd and dw in float (layers/common.cuh). All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/norm_args.h"

namespace rkv::cuda {

// out = inp * rstd * w, saving rstd for backward. With a.residual, resid_out = inp + residual
// (rounded to S) first, then out = rmsnorm(resid_out): the bits of residual_forward followed by
// the plain norm, in one pass.
template <class S>
void rmsnorm_forward(const NormArgs<S, float>& a, cudaStream_t stream);
// dinp, dw += the gradients (dw summed in a fixed order: deterministic).
template <class S>
void rmsnorm_backward(const NormArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
