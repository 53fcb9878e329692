// QK-norm followed by RoPE in one pass (Qwen3's q and k), forward and backward: the kernels of
// ref/rmsnorm.h over each head's HS values, then ref/rope.h, without storing the normed
// values or their gradient in between.
// The arguments: ref/rope.h's RopeArgs<S, float>.
//   inp, out, dout, dinp (B, T, NH, HS) of the storage type S (layers/common.cuh), HS even and
//   at most 256; w (HS), the norm's weight, of S; rstd (B, T, NH) and dw (HS) in float.
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/rope.h"

namespace rkv::cuda {

// out = rope(inp * rstd * w), saving rstd for the backward; positions start at pos0.
template <class S>
void qk_norm_rope_forward(const RopeArgs<S, float>& a, cudaStream_t stream);
// dinp = the gradient (written), dw += the weight's (summed in a fixed order: deterministic).
template <class S>
void qk_norm_rope_backward(const RopeArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
