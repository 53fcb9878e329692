// Functions that the CPU reference and the CUDA kernels share are marked RKV_HOST_DEVICE:
// __host__ __device__ under nvcc, nothing for the host compiler.
#pragma once

#if defined(__CUDACC__)
#define RKV_HOST_DEVICE __host__ __device__
#else
#define RKV_HOST_DEVICE
#endif
