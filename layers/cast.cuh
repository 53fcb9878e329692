// Conversions between storage types on the GPU (layers/common.cuh, "Precision"): the bf16
// working copy of the fp32 weights, rounded to nearest or stochastically.
//   in, out (n). All pointers are device memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/compat.cuh"
#include "layers/splitmix.h"

namespace rkv::cuda {

// out = in converted: float -> bf16 rounds to nearest even; bf16 -> float and float -> float
// are exact.
template <class Dst, class Src>
void cast(Dst* out, const Src* in, size_t n, cudaStream_t stream);

// out[i] = round_stochastic<S>(in[i], seed, i): the same bits as optim/adamw.cu's rounding of
// its master weights with that seed, so a working copy can be rebuilt from them. A copy when
// S is float. seed is where element 0's random sequence starts (layers/splitmix.h).
template <class S>
void cast_stochastic(S* out, const float* in, size_t n, uint64_t seed, cudaStream_t stream);

#if defined(__CUDACC__) || defined(RKV_EMU)

// Device code, for the kernel files that round stochastically (this file's and AdamW's).

// x rounded to one of its two neighbours in S, up with probability (distance to the lower
// one) / (their distance), so the expected value is x. For bf16: add 16 random bits to the
// 16 that truncation drops; the sum carries into the kept bits exactly that often. Inf and
// NaN are left to the ordinary rounding.
template <class S>
__device__ __forceinline__ S round_stochastic(float x, uint64_t seed, uint64_t i);
template <>
__device__ __forceinline__ float round_stochastic<float>(float x, uint64_t, uint64_t) {
    return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 round_stochastic<__nv_bfloat16>(float x, uint64_t seed, uint64_t i) {
    const unsigned bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) return __float2bfloat16(x);
    const unsigned r = unsigned(splitmix(seed, i)) & 0xffffu;
    return __ushort_as_bfloat16(static_cast<unsigned short>((bits + r) >> 16));
}

#endif  // __CUDACC__ || RKV_EMU

}  // namespace rkv::cuda
