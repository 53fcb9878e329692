// The CUDA kernel language on the CPU: qualifiers, built-in variables,
// barriers, warp operations, atomics and the device intrinsics our kernels
// use. Include cuda/compat.cuh, not this file.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "cuda/emu/block.h"

// Under a host compiler the CUDA headers already turn __global__, __device__,
// __host__, __constant__ and __managed__ into nothing; __shared__ needs a
// meaning. A block's threads and the blocks after it run on one OS thread,
// so a thread_local is exactly one copy per block (at block scope,
// thread_local implies static). `extern __shared__` cannot be mapped this
// way: dynamic shared memory is rkv::dynamic_smem<float>() (cuda/compat.cuh).
#undef __shared__
#define __shared__ thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// ---- Built-in variables -----------------------------------------------------

#define threadIdx (static_cast<const uint3&>(::emu::here.thread->idx))
#define blockIdx (static_cast<const uint3&>(::emu::here.block_idx))
#define blockDim (static_cast<const dim3&>(::emu::here.block_dim))
#define gridDim (static_cast<const dim3&>(::emu::here.grid_dim))
inline constexpr int warpSize = 32;

// ---- Barriers ---------------------------------------------------------------
// Each takes the caller's source location so that a barrier reached from two
// places, or a deadlock, is reported with the lines involved.

namespace emu {
using Where = std::source_location;
}

inline void __syncthreads(emu::Where at = emu::Where::current()) { emu::syncthreads(emu::BarrierOp::sync, 0, at); }
inline int __syncthreads_count(int predicate, emu::Where at = emu::Where::current()) {
    return emu::syncthreads(emu::BarrierOp::count, predicate, at);
}
inline int __syncthreads_and(int predicate, emu::Where at = emu::Where::current()) {
    return emu::syncthreads(emu::BarrierOp::all, predicate, at);
}
inline int __syncthreads_or(int predicate, emu::Where at = emu::Where::current()) {
    return emu::syncthreads(emu::BarrierOp::any, predicate, at);
}

// Memory is coherent on the host and threads of a block never run at once;
// the fences only keep the compiler from reordering across them.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- Warp operations --------------------------------------------------------

namespace emu {
// Shuffles move up to 64 bits per lane (the GPU splits 64-bit values in two).
// Copied as bytes: __nv_bfloat162 and __half2 declare copy constructors, so
// they are not formally trivially copyable, but they are plain bits.
template <class V>
concept WarpValue = std::is_standard_layout_v<V> && std::is_trivially_destructible_v<V> &&
                    std::is_default_constructible_v<V> && sizeof(V) <= 8;

template <WarpValue V>
std::uint64_t to_bits(const V& v) {
    std::uint64_t b = 0;
    std::memcpy(&b, static_cast<const void*>(&v), sizeof v);
    return b;
}
template <WarpValue V>
V from_bits(std::uint64_t b) {
    V v;
    std::memcpy(static_cast<void*>(&v), &b, sizeof v);
    return v;
}
template <WarpValue V>
V shuffle(WarpOp op, unsigned mask, V var, int arg, int width, std::source_location at) {
    return from_bits<V>(warp_op(op, mask, to_bits(var), arg, width, at));
}
inline unsigned reduce(WarpOp op, unsigned mask, unsigned value, std::source_location at) {
    return static_cast<unsigned>(warp_op(op, mask, value, 0, 32, at));
}
}  // namespace emu

inline void __syncwarp(unsigned mask = 0xffffffffu, emu::Where at = emu::Where::current()) {
    emu::warp_op(emu::WarpOp::sync, mask, 0, 0, 32, at);
}
template <emu::WarpValue V>
V __shfl_sync(unsigned mask, V var, int src_lane, int width = warpSize, emu::Where at = emu::Where::current()) {
    return emu::shuffle(emu::WarpOp::shfl_idx, mask, var, src_lane, width, at);
}
template <emu::WarpValue V>
V __shfl_up_sync(unsigned mask, V var, unsigned delta, int width = warpSize, emu::Where at = emu::Where::current()) {
    return emu::shuffle(emu::WarpOp::shfl_up, mask, var, static_cast<int>(delta), width, at);
}
template <emu::WarpValue V>
V __shfl_down_sync(unsigned mask, V var, unsigned delta, int width = warpSize, emu::Where at = emu::Where::current()) {
    return emu::shuffle(emu::WarpOp::shfl_down, mask, var, static_cast<int>(delta), width, at);
}
template <emu::WarpValue V>
V __shfl_xor_sync(unsigned mask, V var, int lane_mask, int width = warpSize, emu::Where at = emu::Where::current()) {
    return emu::shuffle(emu::WarpOp::shfl_xor, mask, var, lane_mask, width, at);
}
inline unsigned __ballot_sync(unsigned mask, int predicate, emu::Where at = emu::Where::current()) {
    return static_cast<unsigned>(emu::warp_op(emu::WarpOp::ballot, mask, predicate != 0, 0, 32, at));
}
inline int __any_sync(unsigned mask, int predicate, emu::Where at = emu::Where::current()) {
    return __ballot_sync(mask, predicate, at) != 0;
}
inline int __all_sync(unsigned mask, int predicate, emu::Where at = emu::Where::current()) {
    return __ballot_sync(mask, predicate, at) == mask;
}
inline unsigned __activemask() { return emu::active_mask(); }
template <emu::WarpValue V>
unsigned __match_any_sync(unsigned mask, V value, emu::Where at = emu::Where::current()) {
    return static_cast<unsigned>(emu::warp_op(emu::WarpOp::match_any, mask, emu::to_bits(value), 0, 32, at));
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_add, mask, v, at);
}
inline int __reduce_add_sync(unsigned mask, int v, emu::Where at = emu::Where::current()) {
    return static_cast<int>(emu::reduce(emu::WarpOp::reduce_add, mask, static_cast<unsigned>(v), at));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_min, mask, v, at);
}
inline int __reduce_min_sync(unsigned mask, int v, emu::Where at = emu::Where::current()) {
    return static_cast<int>(emu::reduce(emu::WarpOp::reduce_min_signed, mask, static_cast<unsigned>(v), at));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_max, mask, v, at);
}
inline int __reduce_max_sync(unsigned mask, int v, emu::Where at = emu::Where::current()) {
    return static_cast<int>(emu::reduce(emu::WarpOp::reduce_max_signed, mask, static_cast<unsigned>(v), at));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_and, mask, v, at);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_or, mask, v, at);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, emu::Where at = emu::Where::current()) {
    return emu::reduce(emu::WarpOp::reduce_xor, mask, v, at);
}

// ---- Atomics ----------------------------------------------------------------
// The threads of a block only interleave at barriers and warp operations, but
// blocks may one day run on several OS threads: the atomics are real ones.

namespace emu {
// The operand takes the type of the address, as CUDA's overloads do.
template <class V>
using same = std::type_identity_t<V>;

template <class V>
concept Arithmetic = std::integral<V> || std::floating_point<V>;

// Read-modify-write by compare-and-swap. bf16 and fp16 pairs are not
// trivially copyable (user-written copy constructors), so the loop runs on
// their bits.
template <class V, class F>
V atomic_update(V* address, F f) {
    using Bits = std::conditional_t<sizeof(V) == 2, std::uint16_t,
                                    std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>>;
    static_assert(sizeof(V) == sizeof(Bits));
    std::atomic_ref<Bits> ref(*reinterpret_cast<Bits*>(address));
    Bits old = ref.load(std::memory_order_relaxed), next;
    do {
        V value = from_bits<V>(old);
        next = static_cast<Bits>(to_bits<V>(f(value)));
    } while (!ref.compare_exchange_weak(old, next, std::memory_order_relaxed));
    return from_bits<V>(old);
}
}  // namespace emu

template <emu::Arithmetic V>
V atomicAdd(V* address, emu::same<V> v) {
    return std::atomic_ref<V>(*address).fetch_add(v, std::memory_order_relaxed);
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* address, __nv_bfloat16 v) {
    return emu::atomic_update(
        address, [v](__nv_bfloat16 a) { return __float2bfloat16(__bfloat162float(a) + __bfloat162float(v)); });
}
inline __nv_bfloat162 atomicAdd(__nv_bfloat162* address, __nv_bfloat162 v) {
    return emu::atomic_update(address, [v](__nv_bfloat162 a) {
        return __nv_bfloat162(__float2bfloat16(__bfloat162float(a.x) + __bfloat162float(v.x)),
                              __float2bfloat16(__bfloat162float(a.y) + __bfloat162float(v.y)));
    });
}
template <std::integral V>
V atomicCAS(V* address, emu::same<V> compare, emu::same<V> v) {
    std::atomic_ref<V>(*address).compare_exchange_strong(compare, v, std::memory_order_relaxed);
    return compare;  // the old value whether or not it was swapped
}
template <emu::Arithmetic V>
V atomicMax(V* address, emu::same<V> v) {
    return emu::atomic_update(address, [v](V a) { return std::max(a, v); });
}
template <emu::Arithmetic V>
V atomicMin(V* address, emu::same<V> v) {
    return emu::atomic_update(address, [v](V a) { return std::min(a, v); });
}
inline unsigned atomicInc(unsigned* address, unsigned limit) {
    return emu::atomic_update(address, [limit](unsigned a) { return a >= limit ? 0u : a + 1; });
}

// ---- Loads and stores with cache hints: plain on the host -------------------

template <class V>
V __ldg(const V* p) {
    return *p;
}
template <class V>
V __ldcs(const V* p) {
    return *p;
}
template <class V>
void __stcs(V* p, V v) {
    *p = v;
}

// ---- Math and bit intrinsics (the IEEE functions come from <cmath>) --------

inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float x, float y) { return x / y; }

inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }

inline int __popc(unsigned x) { return std::popcount(x); }

// CUDA's integer min/max overloads; the floating ones mirror fminf/fmaxf.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

[[noreturn]] inline void __trap() { std::abort(); }
