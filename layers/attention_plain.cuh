// Fused causal attention with GQA, forward and backward, with the route as data.
// Plain CUDA (layers/attention_plain.cu): the emulator runs it; checked against ref/attention.h.
//
// Shapes as in LayerOps (src/layer_ops.h) and ref/attention.h:
//   q, out, dq, dout (B, T, NH, HS);  k, v, dk, dv (B, T, NKV, HS);  lse (B, NH, T)
// Query head h reads KV head h / (NH / NKV). NH is a multiple of NKV; 1 <= HS <= 128.
// The forward writes out and lse; the backward recomputes P from lse and writes dq, dk and
// dv (or adds to dk and dv: accumulate_kv). All pointers are device memory.
//
// S is the storage type of q, k, v, out and their gradients (float or __nv_bfloat16,
// layers/common.cuh; T is the sequence length); lse is float.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/attention_args.h"

namespace rkv::cuda {

// The arguments (routed: layer a.layer reads block a.kv_src[a.layer]; a.accumulate_kv adds dk, dv
// to it) are ref/attention_args.h's.
template <class S>
void attention_plain_forward(const AttentionArgs<S, float>& a, cudaStream_t stream);
template <class S>
void attention_plain_backward(const AttentionArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
