// LayerOps on the CPU: every layer is its ref/ implementation; fused operations are their
// parts one after the other. S is float or double, its own master type. ref/ accumulates
// every gradient; a gradient LayerOps writes is zeroed first.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "ref/activations.h"
#include "ref/adamw.h"
#include "ref/attention.h"
#include "ref/attention_decode.h"
#include "ref/cross_entropy.h"
#include "ref/embedding.h"
#include "ref/layernorm.h"
#include "ref/linear.h"
#include "ref/residual.h"
#include "ref/rmsnorm.h"
#include "ref/rope.h"
#include "src/layer_ops.h"

namespace rkv {

template <class S>
struct CpuOps : LayerOps<S> {
    static_assert(std::is_same_v<master_t<S>, S>, "the CPU path computes in float or double");

    void* alloc_bytes(size_t bytes) override {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    void free_bytes(void* p) override { std::free(p); }
    void zero_bytes(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
    void copy_bytes(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void to_working(S* out, const S* x, size_t n) override { std::memcpy(out, x, n * sizeof(S)); }
    void to_working_stochastic(S* out, const S* x, size_t n, uint64_t) override { to_working(out, x, n); }

    void embedding_forward(const EmbeddingArgs<S, S>& a) override { ref::embedding_forward(a); }
    void embedding_backward(const EmbeddingArgs<S, S>& a) override { ref::embedding_backward(a); }
    void layernorm_forward(const NormArgs<S, S>& a) override { ref::layernorm_forward(a); }
    void layernorm_backward(const NormArgs<S, S>& a) override { ref::layernorm_backward(a); }
    void rmsnorm_forward(const NormArgs<S, S>& a) override { ref::rmsnorm_forward(a); }
    void rmsnorm_backward(const NormArgs<S, S>& a) override { ref::rmsnorm_backward(a); }
    void linear_forward(const LinearArgs<S, S>& a) override { ref::linear_forward(a); }
    void linear_gelu_forward(const LinearArgs<S, S>& a) override {
        LinearArgs<S, S> pre = a;
        pre.out = a.pre;
        ref::linear_forward(pre);
        ref::gelu_forward(a.out, a.pre, size_t(a.N) * a.OC);
    }
    void linear_backward(const LinearArgs<S, S>& a) override {
        if (a.dinp && !a.accumulate_dinp) std::fill_n(a.dinp, size_t(a.N) * a.C, S(0));
        ref::linear_backward(a);
    }
    // The gradient of gelu(inp_pre) through a scratch, then the GELU's backward.
    void linear_gelu_backward(const LinearArgs<S, S>& a) override {
        const size_t n = size_t(a.N) * a.C;
        LinearArgs<S, S> l = a;
        l.dinp = scratch(n);
        std::fill_n(l.dinp, n, S(0));  // ref accumulates
        ref::linear_backward(l);
        std::fill_n(a.dinp, n, S(0));
        ref::gelu_backward(a.dinp, l.dinp, a.inp_pre, n);
    }
    void head_forward(const LinearArgs<S, S>& a) override { ref::linear_forward(a); }
    void head_backward(const LinearArgs<S, S>& a) override { linear_backward(a); }
    void rope_forward(const RopeArgs<S, S>& a) override { ref::rope_forward(a); }
    void rope_backward(const RopeArgs<S, S>& a) override {
        std::fill_n(a.dinp, size_t(a.B) * a.T * a.NH * a.HS, S(0));
        ref::rope_backward(a);
    }
    // Through a (B,T,NH,HS) scratch: the normed values forward, their gradient backward.
    void qk_norm_rope_forward(const RopeArgs<S, S>& a) override {
        S* normed = scratch(size_t(a.B) * a.T * a.NH * a.HS);
        ref::rmsnorm_forward(NormArgs<S, S>{
            .N = a.B * a.T * a.NH, .C = a.HS, .eps = a.eps, .inp = a.inp, .w = a.w, .out = normed, .rstd = a.rstd});
        RopeArgs<S, S> r = a;
        r.inp = normed;
        ref::rope_forward(r);
    }
    void qk_norm_rope_backward(const RopeArgs<S, S>& a) override {
        const size_t n = size_t(a.B) * a.T * a.NH * a.HS;
        S* dnormed = scratch(n);
        std::fill_n(dnormed, n, S(0));  // ref accumulates
        RopeArgs<S, S> r = a;
        r.dinp = dnormed;
        ref::rope_backward(r);
        std::fill_n(a.dinp, n, S(0));
        ref::rmsnorm_backward(NormArgs<S, S>{.N = a.B * a.T * a.NH,
                                             .C = a.HS,
                                             .inp = a.inp,
                                             .w = a.w,
                                             .rstd = a.rstd,
                                             .dout = dnormed,
                                             .dinp = a.dinp,
                                             .dw = a.dw});
    }
    void attention_forward(const AttentionArgs<S, S>& a) override { ref::attention_forward(a); }
    void kv_cache_write(const KvCacheWriteArgs<S>& a) override { ref::kv_cache_write(a); }
    void attention_decode(const AttentionDecodeArgs<S>& a) override { ref::attention_decode_forward(a); }
    // ref accumulates: dq, and the source's dk, dv unless added to, start at zero.
    void attention_backward(const AttentionArgs<S, S>& a) override {
        const size_t src = ref::kv_block(a), kv = size_t(a.B) * a.T * a.NKV * a.HS;
        std::fill_n(a.dq, size_t(a.B) * a.T * a.NH * a.HS, S(0));
        if (!a.accumulate_kv) {
            std::fill_n(a.dk_all + src, kv, S(0));
            std::fill_n(a.dv_all + src, kv, S(0));
        }
        ref::attention_backward(a);
    }
    void swiglu_forward(const SwiGLUArgs<S>& a) override { ref::swiglu_forward(a); }
    void swiglu_backward(const SwiGLUArgs<S>& a) override {
        std::fill_n(a.dgate, a.n, S(0));
        std::fill_n(a.dup, a.n, S(0));
        ref::swiglu_backward(a);
    }
    double sum_squares(const S* x, size_t n) override {
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
        return sum;
    }
    void adamw_update(const AdamWArgs<S, S>& a) override { ref::adamw_update(a); }
    void cross_entropy_forward(const CrossEntropyArgs<S, S>& a) override { ref::cross_entropy_forward(a); }
    void fused_classifier(const CrossEntropyArgs<S, S>& a) override { ref::fused_classifier(a); }

private:
    // Room for n values, kept between calls (a fused operation's intermediate; the steps of a
    // run ask for the same sizes, so it is allocated once).
    S* scratch(size_t n) {
        if (scratch_.size() < n) scratch_.resize(n);
        return scratch_.data();
    }
    std::vector<S> scratch_;
};

}  // namespace rkv
