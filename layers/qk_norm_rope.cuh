// QK-norm followed by RoPE in one pass (Qwen3's q and k), forward and backward: the kernels of
// ref/rmsnorm.h over each head's HS values, then ref/rope.h, without storing the normed
// values or their gradient in between.
//   inp, out, dout, dinp (B, T, H, HS) of the storage type T (layers/common.cuh), HS even and
//   at most 256; w (HS), the norm's weight, of T; rstd (B, T, H) and dw (HS) in float.
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/rope.h"

namespace rkv::cuda {

// out = rope(inp * rstd * w), saving rstd for the backward; positions start at pos0 (0 in
// training, the number of cached positions before these in inference).
template <class T>
void qk_norm_rope_forward(T* out, float* rstd, const T* inp, const T* w, int B, int Tn, int H, int HS, double eps,
                          const RopeParams& rope, int pos0, cudaStream_t stream);
// dinp = the gradient (written), dw += the weight's (summed in a fixed order: deterministic).
template <class T>
void qk_norm_rope_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int B,
                           int Tn, int H, int HS, const RopeParams& rope, cudaStream_t stream);

}  // namespace rkv::cuda
