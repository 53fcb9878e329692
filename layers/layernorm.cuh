// LayerNorm on the GPU, alone or fused with the residual add before it: the kernels of
// ref/layernorm.h (and ref/residual.h).
// The arguments: ref/norm_args.h, NormArgs<S, float>: the rows and weights of the storage type
// S, mean, rstd, dw and db in float (layers/common.cuh). All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/norm_args.h"

namespace rkv::cuda {

// out = (inp - mean) * rstd * w + bias, saving mean and rstd for backward. With a.residual,
// resid_out = inp + residual (rounded to S) first, then out = layernorm(resid_out): the bits of
// residual_forward followed by the plain norm, in one pass.
template <class S>
void layernorm_forward(const NormArgs<S, float>& a, cudaStream_t stream);
// dinp, dw, db += the gradients (dw, db summed in a fixed order: deterministic).
template <class S>
void layernorm_backward(const NormArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
