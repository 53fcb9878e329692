// What the layer kernels share: the storage types, 16-byte packs, warp and block sums, and
// stream-ordered scratch memory for two-stage deterministic reductions.
//
// Precision. Kernels are templates on the storage type S, instantiated for float (the
// fp32 build) and __nv_bfloat16 (the default build), and do their math in float. S holds
// activations, their gradients and the working copy of the weights. Always float, in
// both builds: per-row statistics (LayerNorm mean and rstd, RMSNorm rstd, attention lse),
// losses, the gradients of the parameters (accumulated over micro-batches and reduced
// across ranks in fp32), and AdamW's master weights, m and v.
#pragma once

#include "cuda/compat.cuh"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace rkv::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

template <class I>
__host__ __device__ constexpr I ceil_div(I a, I b) {
    return (a + b - 1) / b;
}

// Storage type <-> float.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class S>
__device__ __forceinline__ S from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
    return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

// 16-byte packs. Memory-bound kernels need each thread to move 16 bytes per access, the
// warp's accesses coalesced, to reach Hopper's bandwidth; one element at a time a bf16 warp
// moves only 64 bytes. Pack<S, W> is W consecutive elements moved as one access. Such
// kernels are templates on W: W = kPack<S> (16 bytes) when the host finds every row a whole
// number of aligned packs (whole_packs), else W = 1, the same code element by element.
// (AdamW packs 4 elements: 16 bytes of its float arrays, 8 of its bf16 weights.)
template <class S>
constexpr int kPack = 16 / int(sizeof(S));

template <class S, int W>
struct alignas(W * sizeof(S)) Pack {
    static_assert(W == 1 || W * sizeof(S) == 8 || W * sizeof(S) == 16, "one element, or 8 or 16 bytes");
    S v[W];
    __device__ __forceinline__ S& operator[](int k) { return v[k]; }
    __device__ __forceinline__ const S& operator[](int k) const { return v[k]; }
};

// Whether rows of C elements starting at each pointer split into aligned packs of kPack<S>
// elements (null pointers, never accessed, pass).
template <class S, class... Ptrs>
bool whole_packs(size_t C, const Ptrs*... ptrs) {
    return C % kPack<S> == 0 && ((reinterpret_cast<uintptr_t>(ptrs) % 16 == 0) && ...);
}

// The pack at p (aligned to it). On the GPU a pack is one access (an int4 or int2); the _cs
// forms add the streaming hint (evict first) for data touched once and not again soon, so it
// does not push reused data out of the caches. The emulator copies the bytes, and traps on a
// misaligned pack as the GPU does.
#if defined(__CUDA_ARCH__)
template <size_t kBytes>
using PackWord = std::conditional_t<kBytes == 16, int4, int2>;
#endif

template <int W, bool kStreaming = false, class S>
__device__ __forceinline__ Pack<S, W> load_pack(const S* p) {
    Pack<S, W> r;
#if defined(__CUDA_ARCH__)
    if constexpr (W == 1) {
        r[0] = kStreaming ? __ldcs(p) : *p;
    } else {
        const auto* q = reinterpret_cast<const PackWord<sizeof r>*>(p);
        const auto bits = kStreaming ? __ldcs(q) : *q;
        memcpy(&r, &bits, sizeof r);
    }
#else
    if (reinterpret_cast<uintptr_t>(p) % sizeof r) __trap();  // as the GPU faults on it
    std::memcpy(&r, p, sizeof r);
#endif
    return r;
}
template <int W, class S>
__device__ __forceinline__ Pack<S, W> load_pack_cs(const S* p) {
    return load_pack<W, true>(p);
}

template <bool kStreaming = false, class S, int W>
__device__ __forceinline__ void store_pack(S* p, const Pack<S, W>& x) {
#if defined(__CUDA_ARCH__)
    if constexpr (W == 1) {
        if (kStreaming)
            __stcs(p, x[0]);
        else
            *p = x[0];
    } else {
        auto* q = reinterpret_cast<PackWord<sizeof x>*>(p);
        PackWord<sizeof x> bits;
        memcpy(&bits, &x, sizeof bits);
        if (kStreaming)
            __stcs(q, bits);
        else
            *q = bits;
    }
#else
    if (reinterpret_cast<uintptr_t>(p) % sizeof x) __trap();
    std::memcpy(static_cast<void*>(p), &x, sizeof x);  // S may be a class (the emulator's bf16)
#endif
}
template <class S, int W>
__device__ __forceinline__ void store_pack_cs(S* p, const Pack<S, W>& x) {
    store_pack<true>(p, x);
}

// launch_kernel for kernels whose dynamic shared memory may pass the 48 KiB a launch gets
// by default: the kernel's limit is raised to smem first.
template <class... Params, class... Args>
void launch_kernel_big_smem(void (*kernel)(Params...), LaunchGrid grid, dim3 block, size_t smem, cudaStream_t stream,
                            Args&&... args) {
    if (smem > 48 * 1024)
        cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), grid.where);
    launch_kernel(kernel, grid, block, smem, stream, std::forward<Args>(args)...);
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
template <class E>
class StreamScratch {
public:
    StreamScratch(size_t n, cudaStream_t stream) : stream_(stream) {
        cuda_check(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(E), stream));
    }
    ~StreamScratch() { cudaFreeAsync(p_, stream_); }
    StreamScratch(const StreamScratch&) = delete;
    StreamScratch& operator=(const StreamScratch&) = delete;
    E* get() const { return p_; }

private:
    E* p_ = nullptr;
    cudaStream_t stream_;
};

}  // namespace rkv::cuda
