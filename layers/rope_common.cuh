// What layers/rope.cu and layers/qk_norm_rope.cu share: the rotation angles.
#pragma once

#include "layers/common.cuh"
#include "ref/rope.h"

namespace rkv::cuda {

// cos and sin of pair i's angle at position t, a = t * inv_freq(i) (ref/rope.h's rope_inv_freq, the
// config's scaling included), computed in double as ref/rope.h does (t times a small power is not
// exact in float at long T), then rounded to float.
__device__ __forceinline__ void rope_cos_sin(int t, int i, int HS, const RopeParams& rope, float* c, float* s) {
    const double a = double(t) * rope_inv_freq(rope, i, HS);
    *c = float(cos(a));
    *s = float(sin(a));
}

}  // namespace rkv::cuda
