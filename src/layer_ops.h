// The interface between the model driver and the layer implementations. The driver
// (src/model.h) is written once against it; ref/ implements it on the CPU (src/cpu_ops.h)
// and the CUDA kernels implement it on the GPU. Pointers are in the implementation's
// memory (host or device). Shapes: N = B * T rows; C hidden; H heads of size HS.
//
// Gradients: parameter gradients accumulate (+=) over micro-batches. An activation gradient
// with one producer is written (=), so the GPU neither zeroes it first nor reads it back:
// linear_gelu_backward's, swiglu_backward's, rope_backward's, qk_norm_rope_backward's,
// attention's dq, head_backward's dinp. The norms' dinp accumulate (the residual stream),
// and where several layers' gradients meet, an argument says which writes and which adds:
// linear_backward's accumulate_dinp (Q, K and V all read the first norm's output), attention's
// accumulate_kv for dK/dV (every reader of a source layer). ref/ accumulates everywhere, like
// llm.c's CPU trainer; CpuOps zeroes a written gradient before calling it.
//
// Two types (layers/common.cuh, "Precision"): S holds activations, their gradients and the
// working copy of the weights; Master = master_t<S> holds what must not lose precision:
// parameter gradients, per-row statistics, losses, and the optimizer's weights and moments.
// They differ only for bf16 (Master float); float and double are their own master.
#pragma once
#include <cstddef>
#include <cstdint>

#if RKV_WITH_CUDA
#include <cuda_bf16.h>
#endif

#include "ref/activations.h"
#include "ref/adamw.h"
#include "ref/attention_args.h"
#include "ref/cross_entropy_args.h"
#include "ref/embedding.h"
#include "ref/linear_args.h"
#include "ref/norm_args.h"
#include "ref/rope.h"

namespace rkv {

class OpProfile;

template <class S>
struct MasterType {
    using type = S;
};
#if RKV_WITH_CUDA
template <>
struct MasterType<__nv_bfloat16> {
    using type = float;
};
#endif
template <class S>
using master_t = typename MasterType<S>::type;

template <class S>
struct LayerOps {
    using Master = master_t<S>;
    virtual ~LayerOps() = default;

    // Memory. copy_bytes goes in any direction and is done when it returns.
    virtual void* alloc_bytes(size_t bytes) = 0;
    virtual void free_bytes(void* p) = 0;
    virtual void zero_bytes(void* p, size_t bytes) = 0;
    virtual void copy_bytes(void* dst, const void* src, size_t bytes) = 0;
    template <class E>
    void zero(E* p, size_t n) {
        zero_bytes(p, n * sizeof(E));
    }
    template <class E>
    void upload(E* dst, const E* host, size_t n) {
        copy_bytes(dst, host, n * sizeof(E));
    }
    template <class E>
    void download(E* host, const E* src, size_t n) {
        copy_bytes(host, src, n * sizeof(E));
    }
    // out (n) = x (n) in the working type, rounded to nearest (a copy when S is Master);
    // stochastically, with the randomness adamw_update uses for (seed, element).
    virtual void to_working(S* out, const Master* x, size_t n) = 0;
    virtual void to_working_stochastic(S* out, const Master* x, size_t n, uint64_t seed) = 0;

    // out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null); the backward adds to dwte, dwpe
    // (the arguments: ref/embedding.h's EmbeddingArgs).
    virtual void embedding_forward(const EmbeddingArgs<S, Master>& a) = 0;
    virtual void embedding_backward(const EmbeddingArgs<S, Master>& a) = 0;

    // LayerNorm and RMSNorm (the arguments: ref/norm_args.h): out (N,C) = the norm of inp, or
    // with a.residual of resid_out = inp + residual (the residual add fused with the norm after
    // it, which then reads resid_out as stored); the backward adds to dinp, dw and db.
    // QK-norm is rmsnorm with N = B*T*NH, C = HS.
    virtual void layernorm_forward(const NormArgs<S, Master>& a) = 0;
    virtual void layernorm_backward(const NormArgs<S, Master>& a) = 0;
    virtual void rmsnorm_forward(const NormArgs<S, Master>& a) = 0;
    virtual void rmsnorm_backward(const NormArgs<S, Master>& a) = 0;

    // The linear layers (the arguments: ref/linear_args.h): out (N,OC) = inp (N,C) weight (OC,C)^T
    // + bias (OC, may be null). linear_gelu_forward: out = gelu(pre), pre = inp weight^T + bias,
    // saved for linear_gelu_backward. The backward: dinp (N,C) = dout (N,OC) weight, or += with
    // a.accumulate_dinp; dweight += dout^T inp; dbias += column sums of dout. linear_gelu_backward
    // is that of a layer whose input was gelu(a.inp_pre), through the GELU as well: dinp = (dout
    // weight) * gelu'(inp_pre), written. The GPU does it in the dinp GEMM's epilogue where cuBLASLt
    // has one: the gradient of gelu(inp_pre) is then never stored.
    virtual void linear_forward(const LinearArgs<S, Master>& a) = 0;
    virtual void linear_gelu_forward(const LinearArgs<S, Master>& a) = 0;
    virtual void linear_backward(const LinearArgs<S, Master>& a) = 0;
    virtual void linear_gelu_backward(const LinearArgs<S, Master>& a) = 0;
    // The head: logits (N,V) = inp (N,C) weight (V,C)^T, a linear layer with OC = V, no bias and
    // rows a.ld >= V apart (ref/linear_args.h); its backward writes dinp and adds to dweight.
    virtual void head_forward(const LinearArgs<S, Master>& a) = 0;
    virtual void head_backward(const LinearArgs<S, Master>& a) = 0;

    // RoPE, and QK-norm then RoPE in one pass (the arguments: ref/rope.h's RopeArgs): out
    // (B,T,NH,HS) = rope(inp), or rope(rmsnorm of each head's HS values of inp, weight w (HS)),
    // rstd (B,T,NH); the forward's positions start at a.pos0 (0 in training; in inference the
    // number of positions already in the KV cache). The backwards write dinp; qk_norm_rope's adds
    // to dw.
    virtual void rope_forward(const RopeArgs<S, Master>& a) = 0;
    virtual void rope_backward(const RopeArgs<S, Master>& a) = 0;
    virtual void qk_norm_rope_forward(const RopeArgs<S, Master>& a) = 0;
    virtual void qk_norm_rope_backward(const RopeArgs<S, Master>& a) = 0;

    // Routed attention: layer a.layer attends with a.q to the K/V block a.kv_src[a.layer] of the
    // whole (L,B,T,NKV,HS) buffers (the arguments: ref/attention_args.h; kv_src in the
    // implementation's memory, so a new route needs no new launch). dq is written; the source's
    // dk, dv are written, or added to with a.accumulate_kv (the source's first reader in the
    // backward writes, the others add).
    virtual void attention_forward(const AttentionArgs<S, Master>& a) = 0;
    virtual void attention_backward(const AttentionArgs<S, Master>& a) = 0;

    // Inference with a KV cache (ref/attention_decode.h). The cache holds the kept layers' slots,
    // each (B, Tmax, NKV, HS), slot_stride apart. kv_cache_write puts a kept layer's new keys or
    // values a.src (B, Tq, width) at rows pos0 .. pos0 + Tq - 1 of its slot a.cache (the
    // arguments: ref/attention_args.h's KvCacheWriteArgs). attention_decode: the
    // new queries a.q (B, Tq, NH, HS), at positions pos0 .. pos0 + Tq - 1, attend causally to slot
    // a.kv_slot[a.layer] (in the implementation's memory, like kv_src); a.out (B, Tq, NH, HS).
    virtual void kv_cache_write(const KvCacheWriteArgs<S>& a) = 0;
    virtual void attention_decode(const AttentionDecodeArgs<S>& a) = 0;

    // out = silu(gate) * up, all (n) (the arguments: ref/activations.h's SwiGLUArgs); the backward
    // writes dgate and dup. The GELU's backward is linear_gelu_backward's.
    virtual void swiglu_forward(const SwiGLUArgs<S>& a) = 0;
    virtual void swiglu_backward(const SwiGLUArgs<S>& a) = 0;

    // The optimizer's two steps (optim/adamw.h): the sum of squares of x (n), accumulated
    // in a fixed order so it is the same every run, and AdamW on n contiguous values (the
    // arguments: ref/adamw.h's AdamWArgs). When S is not Master, master holds the weights and
    // param gets them stochastically rounded, the rounding a function of (seed, element);
    // otherwise master is null.
    virtual double sum_squares(const Master* x, size_t n) = 0;
    virtual void adamw_update(const AdamWArgs<S, Master>& a) = 0;

    // The loss (the arguments: ref/cross_entropy_args.h): logits, dlogits (N,V), rows
    // ld apart as the head's; targets, losses (N); target -1 skipped.
    virtual void cross_entropy_forward(const CrossEntropyArgs<S, Master>& a) = 0;
    // In training, the loss and its gradient in one pass: losses as cross_entropy_forward, and the
    // logits in a.dlogits replaced by their gradient (softmax - onehot) * dloss (0 on skipped rows).
    virtual void fused_classifier(const CrossEntropyArgs<S, Master>& a) = 0;

    // The time of each operation, where the implementation measures it (the CUDA path:
    // src/op_profile.h); null elsewhere.
    virtual OpProfile* profile() { return nullptr; }
};

}  // namespace rkv
