// The arguments of attention, one struct per family, carried unchanged from the model driver
// (src/model.h) through LayerOps (src/layer_ops.h) to ref/ and the kernels of layers/ (as
// FlashAttention's Flash_fwd_params): a new field is one line here, not a new argument in
// every signature. Plain data, so the CPU and the CUDA sides include it alike.
//
// S is the storage type of q, k, v, out and their gradients; M that of lse (float for bf16
// storage, master_t in src/layer_ops.h). T is the sequence length. Pointers are in the
// implementation's memory (host for ref/, device for the kernels).
#pragma once

#include <cstddef>

namespace rkv {

// Routed causal attention with GQA, forward and backward (ref/attention.h, DESIGN.md section 3):
//   q, out, dq, dout (B, T, NH, HS);  k_all, v_all, dk_all, dv_all (L, B, T, NKV, HS);  lse (B, NH, T)
// Layer `layer` attends with q to block kv_src[layer] of k_all, v_all (the blocks layer_stride
// elements apart), and its backward writes dk, dv into that block of dk_all, dv_all, or adds to
// it with accumulate_kv (the source's later readers add their share to the first one's). kv_src
// (L) is data, read where the kernel runs, so a new route needs no new launch; null reads block
// 0 (one layer, no route). Query head h reads KV head h / (NH / NKV).
// The forward writes out and lse; the backward reads them, recomputes P from lse, writes dq.
template <class S, class M>
struct AttentionArgs {
    int B = 0, T = 0, NH = 0, NKV = 0, HS = 0;
    const int* kv_src = nullptr;  // (L), or null
    int layer = 0;
    size_t layer_stride = 0;  // elements between layers' blocks in k_all, v_all, dk_all, dv_all
    const S* q = nullptr;
    const S* k_all = nullptr;
    const S* v_all = nullptr;
    S* out = nullptr;
    M* lse = nullptr;
    // The backward's.
    const S* dout = nullptr;
    S* dq = nullptr;
    S* dk_all = nullptr;
    S* dv_all = nullptr;
    bool accumulate_kv = false;  // add dk, dv to the source block instead of writing it
};

// Attention over a KV cache, for inference (ref/attention_decode.h): the Tq new queries of each
// sequence sit at positions pos0 .. pos0 + Tq - 1 and attend causally to the cache rows 0 ..
// their own position (rows pos0 .. pos0 + Tq - 1 already hold their keys and values).
//   q, out (B, Tq, NH, HS);  a cache slot (B, Tmax, NKV, HS), pos0 + Tq <= Tmax
// k_cache, v_cache hold the kept layers' slots, slot_stride elements apart; layer `layer` reads
// slot kv_slot[layer] (kv_slot (L) is data, like kv_src; null reads slot 0).
template <class S>
struct AttentionDecodeArgs {
    int B = 0, Tq = 0, pos0 = 0, Tmax = 0, NH = 0, NKV = 0, HS = 0;
    const int* kv_slot = nullptr;  // (L), or null
    int layer = 0;
    size_t slot_stride = 0;
    const S* q = nullptr;
    const S* k_cache = nullptr;
    const S* v_cache = nullptr;
    S* out = nullptr;
};

// The write of new keys or values into a KV cache (ref/attention_decode.h): rows pos0 .. pos0 +
// Tq - 1 of each sequence's cache <- src, row by row; the cache's other rows stay as they are.
//   cache (B, Tmax, width), pos0 + Tq <= Tmax;  src (B, Tq, width)
template <class S>
struct KvCacheWriteArgs {
    int B = 0, Tq = 0, pos0 = 0, Tmax = 0, width = 0;
    S* cache = nullptr;      // (B, Tmax, width): one kept layer's slot
    const S* src = nullptr;  // (B, Tq, width)
};

}  // namespace rkv
