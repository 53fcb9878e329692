// Fused causal attention with GQA, forward and backward, with the route as data.
// Plain CUDA (layers/attention.cu): the emulator runs it; checked against ref/attention.h.
//
// Shapes as in LayerOps (src/layer_ops.h) and ref/attention.h:
//   q, out, dq, dout (B, T, NH, HS);  k, v, dk, dv (B, T, NKV, HS);  lse (B, NH, T)
// Query head h reads KV head h / (NH / NKV). NH is a multiple of NKV; 1 <= HS <= 128.
// The forward writes out and lse; the backward recomputes P from lse and writes dq, dk and
// dv (the routed one adds to dk and dv on request). All pointers are device memory.
//
// S is the storage type of q, k, v, out and their gradients (float or __nv_bfloat16,
// layers/common.cuh; T is the sequence length here); lse is float.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"

namespace rkv::cuda {

template <class S>
void attention_forward(S* out, float* lse, const S* q, const S* k, const S* v, int B, int T, int NH, int NKV, int HS,
                       cudaStream_t stream);
template <class S>
void attention_backward(S* dq, S* dk, S* dv, const S* dout, const S* q, const S* k, const S* v, const S* out,
                        const float* lse, int B, int T, int NH, int NKV, int HS, cudaStream_t stream);

// Routed: k_all, v_all, dk_all, dv_all hold every layer's (B, T, NKV, HS) block, layer_stride
// elements apart (the driver's (L, B, T, NKV, HS) buffers). Layer `layer` reads, and writes
// its dk, dv into, block kv_src[layer], looked up on the device in kv_src (L), so a new route
// is new data, not a new launch. With accumulate_kv they are added to the block instead: the
// source's later readers (in the backward's order) add their share to the first one's.
template <class S>
void attention_forward_routed(S* out, float* lse, const S* q, const S* k_all, const S* v_all, const int* kv_src,
                              int layer, size_t layer_stride, int B, int T, int NH, int NKV, int HS,
                              cudaStream_t stream);
template <class S>
void attention_backward_routed(S* dq, S* dk_all, S* dv_all, bool accumulate_kv, const S* dout, const S* q,
                               const S* k_all, const S* v_all, const S* out, const float* lse, const int* kv_src,
                               int layer, size_t layer_stride, int B, int T, int NH, int NKV, int HS,
                               cudaStream_t stream);

}  // namespace rkv::cuda
