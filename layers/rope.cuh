// Rotary position embedding on the GPU (Hugging Face rotate-half): the kernels of
// ref/rope.h, whose RopeArgs<S, float> are the arguments: inp, out, dout, dinp (B, T, NH, HS) of
// the storage type S, HS even. All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/rope.h"

namespace rkv::cuda {

// out = inp rotated pairwise by the angles (pos0 + t) * inv_freq(i) (ref/rope.h); out may be inp.
template <class S>
void rope_forward(const RopeArgs<S, float>& a, cudaStream_t stream);
// dinp = dout rotated back (the rotation's transpose); dinp may be dout.
template <class S>
void rope_backward(const RopeArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
