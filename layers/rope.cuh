// Rotary position embedding on the GPU (Hugging Face rotate-half): the kernels of
// ref/rope.h.  inp, out, dout, dinp (B, T, H, HS) of the storage type T, HS even.
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/rope.h"

namespace rkv::cuda {

// out = inp rotated pairwise by the angles (pos0 + t) * inv_freq(i) (ref/rope.h); out may be inp. pos0 is
// 0 in training, the number of cached positions before these in inference.
template <class T>
void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, const RopeParams& rope, int pos0,
                  cudaStream_t stream);
// dinp = dout rotated back (the rotation's transpose); dinp may be dout.
template <class T>
void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, const RopeParams& rope,
                   cudaStream_t stream);

}  // namespace rkv::cuda
