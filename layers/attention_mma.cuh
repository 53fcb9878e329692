// Fused causal attention with GQA on the tensor cores (mma.sync, bf16 in, fp32 accumulate),
// forward and backward, with the route as data: layers/attention_mma.cu, FlashAttention-2
// style. It computes what layers/attention_plain.cuh computes, for bf16 storage:
//   q, out, dq, dout (B, T, NH, HS) bf16;  k, v, dk, dv (B, T, NKV, HS) bf16;  lse (B, NH, T) float
// lse is the natural-log log-sum-exp of the scaled scores, as the plain kernel's, so either
// backward takes either forward's lse. Query head h reads KV head h / (NH / NKV); NH is a
// multiple of NKV; HS is 64 or 128; any T >= 0. Every pointer is device memory, 16-byte
// aligned. The forward writes out and lse; the backward recomputes P from lse and writes dq,
// dk and dv (or adds to dk, dv: accumulate_kv), deterministically (no atomics: the same inputs
// give the same bits).
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/attention_args.h"

namespace rkv::cuda {

// The arguments (routed: layer a.layer reads block a.kv_src[a.layer]; a.accumulate_kv adds dk, dv
// to it) are ref/attention_args.h's.
void attention_mma_forward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t stream);
void attention_mma_backward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
