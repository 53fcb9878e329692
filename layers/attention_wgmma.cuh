// Fused causal attention with GQA on Hopper's warpgroup tensor cores (wgmma, bf16 in, fp32
// accumulate), forward and backward, with the route as data: layers/attention_wgmma.cu,
// FlashAttention-3 style. It computes what attention_tc (layers/attention_tc.cuh) computes, with
// the same argument lists:
//   q, out, dq, dout (B, T, NH, HS) bf16;  k, v, dk, dv (B, T, NKV, HS) bf16;  lse (B, NH, T) float
// lse is the natural-log log-sum-exp of the scaled scores, so either backward (or the plain
// kernel's) takes either forward's out and lse. The backward recomputes P from lse and writes
// dq, dk and dv (or adds to dk, dv: the routed one). Query head h reads KV head h / (NH / NKV);
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

namespace rkv::cuda {

void attention_wgmma_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, int B, int T, int NH, int NKV, int HS, cudaStream_t stream);
void attention_wgmma_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                              const __nv_bfloat16* out, const float* lse, int B, int T, int NH, int NKV, int HS,
                              cudaStream_t stream);

// Routed: k_all, v_all, dk_all, dv_all hold every layer's (B, T, NKV, HS) block, layer_stride
// elements apart; layer `layer` reads, and writes its dk, dv into, block kv_src[layer], looked up
// on the device in kv_src (L). With accumulate_kv they are added to the block instead: the
// source's later readers add their share to the first one's.
void attention_wgmma_forward_routed(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q,
                                    const __nv_bfloat16* k_all, const __nv_bfloat16* v_all, const int* kv_src,
                                    int layer, size_t layer_stride, int B, int T, int NH, int NKV, int HS,
                                    cudaStream_t stream);
void attention_wgmma_backward_routed(__nv_bfloat16* dq, __nv_bfloat16* dk_all, __nv_bfloat16* dv_all,
                                     bool accumulate_kv, const __nv_bfloat16* dout, const __nv_bfloat16* q,
                                     const __nv_bfloat16* k_all, const __nv_bfloat16* v_all,
                                     const __nv_bfloat16* out, const float* lse,
                                     const int* kv_src, int layer, size_t layer_stride, int B, int T, int NH,
                                     int NKV, int HS, cudaStream_t stream);

// Whether this build and the current device run the kernel.
bool attention_wgmma_supported();

}  // namespace rkv::cuda
