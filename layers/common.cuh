// What the layer kernels share: the storage types, warp and block sums, and
// stream-ordered scratch memory for two-stage deterministic reductions.
//
// Precision. Kernels are templates on the storage type T, instantiated for float (the
// fp32 build) and __nv_bfloat16 (the default build), and do their math in float. T holds
// activations, their gradients and the working copy of the weights. Always float, in
// both builds: per-row statistics (LayerNorm mean and rstd, RMSNorm rstd, attention lse),
// losses, the gradients of the parameters (accumulated over micro-batches and reduced
// across ranks in fp32), and AdamW's master weights, m and v.
#pragma once

#include "cuda/compat.cuh"

#include <cstddef>

namespace rkv::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

template <class I>
constexpr I ceil_div(I a, I b) {
    return (a + b - 1) / b;
}

// Storage type <-> float.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
    return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// Sum over the 32 lanes of a warp by butterfly: every lane ends with the same bits
// (each step adds the same two numbers on both lanes of a pair).
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread. The order of the additions depends only on the block size: deterministic.
template <class A>
__device__ A block_sum(A v) {
    __shared__ A warp_sums[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // an earlier call's readers are done with warp_sums
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? warp_sums[lane] : A(0));
}

// Device scratch of n elements, allocated and freed in stream order (cheap: the
// stream-ordered allocator keeps a pool; capturable in CUDA graphs).
template <class T>
class StreamScratch {
public:
    StreamScratch(size_t n, cudaStream_t stream) : stream_(stream) {
        cuda_check(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), stream));
    }
    ~StreamScratch() { cudaFreeAsync(p_, stream_); }
    StreamScratch(const StreamScratch&) = delete;
    StreamScratch& operator=(const StreamScratch&) = delete;
    T* get() const { return p_; }

private:
    T* p_ = nullptr;
    cudaStream_t stream_;
};

}  // namespace rkv::cuda
