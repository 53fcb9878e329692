// Fused causal attention with GQA on Hopper's warpgroup tensor cores (wgmma, bf16 in, fp32
// accumulate), forward and backward, with the route as data: layers/attention_wgmma.cu,
// FlashAttention-3 style. It computes what attention_mma (layers/attention_mma.cuh) computes, with
// the same argument lists:
//   q, out, dq, dout (B, T, NH, HS) bf16;  k, v, dk, dv (B, T, NKV, HS) bf16;  lse (B, NH, T) float
// lse is the natural-log log-sum-exp of the scaled scores, so either backward (or the plain
// kernel's) takes either forward's out and lse. The backward recomputes P from lse and writes
// dq, dk and dv (or adds to dk, dv: accumulate_kv). Query head h reads KV head h / (NH / NKV);
// NH is a multiple of NKV; HS is 64 or 128; any T >= 0. Every pointer is device memory, 16-byte
// aligned.
// The results do not depend on the order the GPU runs threads in (no atomics: the same inputs
// give the same bits).
//
// It runs only where attention_wgmma_supported(): under the emulator, or in a build for sm_90a
// (RKV_SM90A) on a GPU of compute capability 9.0; elsewhere the launchers throw.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/attention_args.h"

namespace rkv::cuda {

// The arguments (routed: layer a.layer reads block a.kv_src[a.layer]; a.accumulate_kv adds dk, dv
// to it) are ref/attention_args.h's.
void attention_wgmma_forward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t stream);
void attention_wgmma_backward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t stream);

// Whether this build and the current device run the kernel.
bool attention_wgmma_supported();

}  // namespace rkv::cuda
