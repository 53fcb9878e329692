// Rotary position embedding on the GPU (Hugging Face rotate-half): the kernels of
// ref/rope.h.  inp, out, dout, dinp (B, T, H, HS), HS even.
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out = inp rotated pairwise by the angles t * theta^(-2i/HS); out may be inp.
void rope_forward(float* out, const float* inp, int B, int Tn, int H, int HS, double theta, cudaStream_t stream);
// dinp += dout rotated back (the rotation's transpose).
void rope_backward(float* dinp, const float* dout, int B, int Tn, int H, int HS, double theta, cudaStream_t stream);

}  // namespace rkv::cuda
