// LayerOps on the CPU: every layer is its ref/ implementation; fused operations are their
// parts one after the other. T is float or double, its own master type. ref/ accumulates
// every gradient; a gradient LayerOps writes is zeroed first.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <new>
#include <vector>

#include "ref/activations.h"
#include "ref/adamw.h"
#include "ref/attention.h"
#include "ref/attention_cached.h"
#include "ref/cross_entropy.h"
#include "ref/embedding.h"
#include "ref/layernorm.h"
#include "ref/linear.h"
#include "ref/residual.h"
#include "ref/rmsnorm.h"
#include "ref/rope.h"
#include "src/layer_ops.h"

namespace rkv {

template <class T>
struct CpuOps : LayerOps<T> {
    static_assert(std::is_same_v<master_t<T>, T>, "the CPU path computes in float or double");

    void* alloc_bytes(size_t bytes) override {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    void free_bytes(void* p) override { std::free(p); }
    void zero_bytes(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
    void copy_bytes(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void to_working(T* out, const T* x, size_t n) override { std::memcpy(out, x, n * sizeof(T)); }
    void to_working_stochastic(T* out, const T* x, size_t n, uint64_t) override { to_working(out, x, n); }

    void embedding_forward(T* out, const int* tokens, const T* wte, const T* wpe, int B, int Tn, int C) override {
        ref::embedding_forward(out, tokens, wte, wpe, B, Tn, C);
    }
    void embedding_backward(T* dwte, T* dwpe, const T* dout, const int* tokens, int B, int Tn, int C) override {
        ref::embedding_backward(dwte, dwpe, dout, tokens, B, Tn, C);
    }
    void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N, int C,
                           double eps) override {
        ref::layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
    }
    void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, const T* mean,
                            const T* rstd, int N, int C) override {
        ref::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    }
    void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) override {
        ref::rmsnorm_forward(out, rstd, inp, w, N, C, eps);
    }
    void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                          int C) override {
        ref::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
    }
    void residual_layernorm_forward(T* resid_out, T* out, T* mean, T* rstd, const T* a, const T* b, const T* w,
                                    const T* bias, int N, int C, double eps) override {
        ref::residual_forward(resid_out, a, b, size_t(N) * C);
        ref::layernorm_forward(out, mean, rstd, resid_out, w, bias, N, C, eps);
    }
    void residual_rmsnorm_forward(T* resid_out, T* out, T* rstd, const T* a, const T* b, const T* w, int N, int C,
                                  double eps) override {
        ref::residual_forward(resid_out, a, b, size_t(N) * C);
        ref::rmsnorm_forward(out, rstd, resid_out, w, N, C, eps);
    }
    void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) override {
        ref::linear_forward(out, inp, weight, bias, N, C, OC);
    }
    void linear_gelu_forward(T* out, T* pre, const T* inp, const T* weight, const T* bias, int N, int C,
                             int OC) override {
        ref::linear_forward(pre, inp, weight, bias, N, C, OC);
        ref::gelu_forward(out, pre, size_t(N) * OC);
    }
    void linear_backward(T* dinp, Grad dinp_grad, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                         int N, int C, int OC) override {
        if (dinp_grad == Grad::write) std::fill_n(dinp, size_t(N) * C, T(0));
        ref::linear_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
    }
    void linear_gelu_backward(T* dpre, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                              const T* pre, int N, int C, int OC) override {
        const size_t n = size_t(N) * C;
        T* dinp = scratch(n);
        std::fill_n(dinp, n, T(0));  // ref accumulates
        ref::linear_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
        std::fill_n(dpre, n, T(0));
        ref::gelu_backward(dpre, dinp, pre, n);
    }
    // ref/linear.h's GEMMs with the logits' row stride.
    void head_forward(T* logits, const T* inp, const T* weight, int N, int C, int V, int ld) override {
        ref::gemm(false, true, N, V, C, T(1), inp, C, weight, C, T(0), logits, ld);
    }
    void head_backward(T* dinp, T* dweight, const T* dlogits, const T* inp, const T* weight, int N, int C, int V,
                       int ld) override {
        ref::gemm(false, false, N, C, V, T(1), dlogits, ld, weight, C, T(0), dinp, C);
        ref::gemm(true, false, V, C, N, T(1), dlogits, ld, inp, C, T(1), dweight, C);
    }
    void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, const RopeParams& rope, int pos0) override {
        ref::rope_forward(out, inp, B, Tn, H, HS, rope, pos0);
    }
    void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, const RopeParams& rope) override {
        std::fill_n(dinp, size_t(B) * Tn * H * HS, T(0));
        ref::rope_backward(dinp, dout, B, Tn, H, HS, rope);
    }
    // Through a (B,T,H,HS) scratch: the normed values forward, their gradient backward.
    void qk_norm_rope_forward(T* out, T* rstd, const T* inp, const T* w, int B, int Tn, int H, int HS, double eps,
                              const RopeParams& rope, int pos0) override {
        T* normed = scratch(size_t(B) * Tn * H * HS);
        ref::rmsnorm_forward(normed, rstd, inp, w, B * Tn * H, HS, eps);
        ref::rope_forward(out, normed, B, Tn, H, HS, rope, pos0);
    }
    void qk_norm_rope_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int B, int Tn,
                               int H, int HS, const RopeParams& rope) override {
        const size_t n = size_t(B) * Tn * H * HS;
        T* dnormed = scratch(n);
        std::fill_n(dnormed, n, T(0));  // ref accumulates
        ref::rope_backward(dnormed, dout, B, Tn, H, HS, rope);
        std::fill_n(dinp, n, T(0));
        ref::rmsnorm_backward(dinp, dw, dnormed, inp, w, rstd, B * Tn * H, HS);
    }
    void attention_forward(T* out, T* lse, const T* q, const T* k_all, const T* v_all, const int* kv_src, int layer,
                           size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) override {
        const size_t src = size_t(kv_src[layer]) * layer_stride;
        ref::attention_forward(out, lse, q, k_all + src, v_all + src, B, Tn, NH, NKV, HS);
    }
    void kv_cache_write(T* slot, const T* src, int B, int Tq, int pos0, int Tmax, int width) override {
        ref::kv_cache_write(slot, src, B, Tq, pos0, Tmax, width);
    }
    void attention_cached(T* out, const T* q, const T* k_cache, const T* v_cache, const int* kv_slot, int layer,
                          size_t slot_stride, int B, int Tq, int pos0, int Tmax, int NH, int NKV, int HS) override {
        const size_t slot = size_t(kv_slot[layer]) * slot_stride;
        ref::attention_cached_forward(out, q, k_cache + slot, v_cache + slot, B, Tq, pos0, Tmax, NH, NKV, HS);
    }
    void attention_backward(T* dq, T* dk_all, T* dv_all, Grad dkv_grad, const T* dout, const T* q, const T* k_all,
                            const T* v_all, const T* out, const T* lse, const int* kv_src, int layer,
                            size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) override {
        const size_t src = size_t(kv_src[layer]) * layer_stride, kv = size_t(B) * Tn * NKV * HS;
        std::fill_n(dq, size_t(B) * Tn * NH * HS, T(0));
        if (dkv_grad == Grad::write) {
            std::fill_n(dk_all + src, kv, T(0));
            std::fill_n(dv_all + src, kv, T(0));
        }
        ref::attention_backward(dq, dk_all + src, dv_all + src, dout, q, k_all + src, v_all + src, out, lse, B, Tn, NH,
                                NKV, HS);
    }
    void swiglu_forward(T* out, const T* gate, const T* up, size_t n) override {
        ref::swiglu_forward(out, gate, up, n);
    }
    void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) override {
        std::fill_n(dgate, n, T(0));
        std::fill_n(dup, n, T(0));
        ref::swiglu_backward(dgate, dup, dout, gate, up, n);
    }
    double sum_squares(const T* x, size_t n) override {
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
        return sum;
    }
    void adamw_update(T* param, T* master, const T* grad, T* m, T* v, size_t n, const ref::AdamWStep& step,
                      uint64_t seed) override {
        ref::adamw_update(param, grad, m, v, n, step);
    }
    // The rows are independent: the threads share them out, with the same results for any number.
    void cross_entropy_forward(T* losses, const T* logits, const int* targets, int N, int V, int ld) override {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) ref::cross_entropy_forward(losses + n, logits + size_t(n) * ld, targets + n, 1, V);
    }
    void fused_classifier(T* logits_dlogits, T* losses, const int* targets, T dloss, int N, int V, int ld) override {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            ref::cross_entropy_fused_row(logits_dlogits + size_t(n) * ld, losses + n, targets[n], dloss, V);
    }

private:
    // Room for n values, kept between calls (a fused operation's intermediate; the steps of a
    // run ask for the same sizes, so it is allocated once).
    T* scratch(size_t n) {
        if (scratch_.size() < n) scratch_.resize(n);
        return scratch_.data();
    }
    std::vector<T> scratch_;
};

}  // namespace rkv
