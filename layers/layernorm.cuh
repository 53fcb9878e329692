// LayerNorm on the GPU, alone or fused with the residual add before it: the kernels of
// ref/layernorm.h (and ref/residual.h).
// The arguments: ref/norm_args.h, NormArgs<T, float>: the rows and weights of the storage type
// T, mean, rstd, dw and db in float (layers/common.cuh). All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/norm_args.h"

namespace rkv::cuda {

// out = (inp - mean) * rstd * w + bias, saving mean and rstd for backward. With a.residual,
// resid_out = inp + residual (rounded to T) first, then out = layernorm(resid_out): the bits of
// residual_forward followed by the plain norm, in one pass.
template <class T>
void layernorm_forward(const NormArgs<T, float>& a, cudaStream_t stream);
// dinp, dw, db += the gradients (dw, db summed in a fixed order: deterministic).
template <class T>
void layernorm_backward(const NormArgs<T, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
