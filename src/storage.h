// The storage type of the CUDA path in this build (layers/common.cuh, "Precision"): bf16
// by default, float when built with RKV_FP32 (and in builds without the CUDA path, where
// --device cuda stops with an error anyway). The CPU path stores float.
#pragma once
#include <type_traits>

#if RKV_WITH_CUDA
#include <cuda_bf16.h>
#endif

namespace rkv {

#if RKV_FP32 || !RKV_WITH_CUDA
using CudaStorage = float;
#else
using CudaStorage = __nv_bfloat16;
#endif

template <class S>
constexpr const char* precision_name() {
    return std::is_same_v<S, float> ? "fp32" : "bf16";
}

}  // namespace rkv
