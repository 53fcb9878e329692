// What layers/rope.cu and layers/qk_norm_rope.cu share: the rotation angles.
#pragma once

#include "layers/common.cuh"

namespace rkv::cuda {

// cos and sin of pair i's angle at position t, a = t * theta^(-2i/HS), computed in double as
// ref/rope.h does (t times a small power is not exact in float at long T), then rounded to float.
__device__ __forceinline__ void rope_cos_sin(int t, int i, int HS, double theta, float* c, float* s) {
    const double a = double(t) * pow(theta, -2.0 * i / HS);
    *c = float(cos(a));
    *s = float(sin(a));
}

}  // namespace rkv::cuda
