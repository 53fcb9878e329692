// What the attention kernels share. All of them (layers/attention_plain.cu, attention_decode.cu, and
// the tensor-core attention_mma.cu on mma.sync and attention_wgmma.cu on wgmma): the log2 and ln
// constants and where a routed layer's K/V block starts. The two tensor-core files: their
// contract's checks, the reductions over the 4 lanes that hold one accumulator row, the bf16
// read-modify-write of the backward's outputs, and D = rowsum(dO * O) for the backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/mma.cuh"
#include "layers/common.cuh"

namespace rkv::cuda::attention_common {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The shapes and pointers a kernel takes: NH a multiple of NKV, the tensors 16-byte aligned
// (the plain kernels pass none); `name` says which kernel refused. The head dim is refused by
// with_head_dim and with_padded_head_dim.
inline void check_shape(const char* name, int NH, int NKV, std::initializer_list<const void*> pointers = {}) {
    const std::string who = name;
    if (NKV < 1 || NH % NKV != 0)
        throw std::invalid_argument(who + ": NH (" + std::to_string(NH) + ") is not a multiple of NKV (" +
                                    std::to_string(NKV) + ")");
    for (const void* p : pointers)
        if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
            throw std::invalid_argument(who + ": a tensor is not 16-byte aligned");
}

// The head-dim dispatch of every attention kernel, which refuses what it was not instantiated for.
// with_head_dim<Ds...>: calls f(std::integral_constant<int, D>{}) for the D of Ds equal to HS.
// with_padded_head_dim<Ds...>: for the smallest D of Ds (ascending) at least HS, HS >= 1.
template <int... Ds, class F>
void with_head_dim(const char* name, int HS, F&& f) {
    if (!((HS == Ds && (f(std::integral_constant<int, Ds>{}), true)) || ...))
        throw std::invalid_argument(std::string(name) + ": head dim " + std::to_string(HS) + " is not one of" +
                                    ((" " + std::to_string(Ds)) + ...));
}
template <int... Ds, class F>
void with_padded_head_dim(const char* name, int HS, F&& f) {
    constexpr int largest[] = {Ds...};
    if (HS < 1 || !((HS <= Ds && (f(std::integral_constant<int, Ds>{}), true)) || ...))
        throw std::invalid_argument(std::string(name) + ": head dim " + std::to_string(HS) + " is not in 1 .. " +
                                    std::to_string(largest[sizeof...(Ds) - 1]));
}

// Where the layer's K/V block starts in the all-layers buffers.
__device__ __forceinline__ size_t kv_block(const int* kv_src, int layer, size_t layer_stride) {
    return kv_src ? size_t(kv_src[layer]) * layer_stride : 0;
}

// Max and sum over the 4 lanes of a group (lanes 4g .. 4g + 3 share accumulator rows g, g + 8).
__device__ __forceinline__ float group_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
    return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
}
__device__ __forceinline__ float group_sum(float x) {
    x += __shfl_xor_sync(kFullMask, x, 1);
    return x + __shfl_xor_sync(kFullMask, x, 2);
}

// row[d .. d + 1] (bf16 in global memory) = scale (x0, x1), added to what it holds when accumulate
__device__ __forceinline__ void put_pair(__nv_bfloat16* row, int d, float scale, float x0, float x1, bool accumulate) {
    auto* at = reinterpret_cast<__nv_bfloat162*>(row + d);
    const float2 old = accumulate ? __bfloat1622float2(*at) : make_float2(0.0f, 0.0f);
    *at = __floats2bfloat162_rn(fmaf(scale, x0, old.x), fmaf(scale, x1, old.y));
}

// D (B, NH, T) = rowsum(dout * out) over the rows (b, t, h) of dout, out (B, T, NH, HS): one warp
// a row, each lane a pair of columns in every 64.
template <int HS>
__global__ void row_dot_kernel(float* D, const __nv_bfloat16* dout, const __nv_bfloat16* out, size_t rows, int T,
                               int NH) {
    const size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;
    const int lane = threadIdx.x % 32;
    float dot = 0.0f;
    RKV_UNROLL
    for (int d = 2 * lane; d < HS; d += 64) {
        const float2 dy = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + row * HS + d));
        const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(out + row * HS + d));
        dot = fmaf(dy.y, y.y, fmaf(dy.x, y.x, dot));
    }
    dot = warp_sum(dot);
    const size_t b = row / (size_t(T) * NH);
    const int t = int(row / NH % T), h = int(row % NH);
    if (lane == 0) D[(b * NH + h) * T + t] = dot;
}

template <int HS>
void row_dots(float* D, const __nv_bfloat16* dout, const __nv_bfloat16* out, int B, int T, int NH,
              cudaStream_t stream) {
    constexpr int kBlock = 256;
    const size_t rows = size_t(B) * T * NH;
    launch_kernel(row_dot_kernel<HS>, unsigned(ceil_div(rows, size_t(kBlock / 32))), kBlock, 0, stream, D, dout, out,
                  rows, T, NH);
}

}  // namespace rkv::cuda::attention_common
