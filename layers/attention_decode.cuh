// Attention over a KV cache, for inference, and the write of new keys and values into it.
// Plain CUDA (layers/attention_decode.cu): the emulator runs it; checked against
// ref/attention_decode.h.
//
// Shapes:  q, out (B, Tq, NH, HS);  a cache slot (B, Tmax, NKV, HS), pos0 + Tq <= Tmax
// Query t of each sequence sits at position pos0 + t and attends causally to the cache rows
// 0 .. pos0 + t (rows pos0 .. pos0 + Tq - 1 already hold the new tokens' keys and values);
// rows past pos0 + Tq - 1 are never read. Query head h reads KV head h / (NH / NKV). NH is a
// multiple of NKV; 1 <= HS <= 128. All pointers are device memory.
//
// S is the storage type (float or __nv_bfloat16, layers/common.cuh); the math is float.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/attention_args.h"

namespace rkv::cuda {

// The arguments (routed: layer a.layer reads slot a.kv_slot[a.layer] of the caches) are
// ref/attention_args.h's.
template <class S>
void attention_decode_forward(const AttentionDecodeArgs<S>& a, cudaStream_t stream);

// rows a.pos0 .. a.pos0 + a.Tq - 1 of each sequence's a.cache (B, Tmax, width) <- a.src (B, Tq, width)
// (the arguments: ref/attention_args.h's KvCacheWriteArgs)
template <class S>
void kv_cache_write(const KvCacheWriteArgs<S>& a, cudaStream_t stream);

}  // namespace rkv::cuda
