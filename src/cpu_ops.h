// LayerOps on the CPU: every layer is its ref/ implementation.
#pragma once
#include <cstdlib>
#include <cstring>
#include <new>

#include "ref/activations.h"
#include "ref/adamw.h"
#include "ref/attention.h"
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
    void* alloc_bytes(size_t bytes) override {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    void free_bytes(void* p) override { std::free(p); }
    void zero(T* p, size_t n) override { std::memset(p, 0, n * sizeof(T)); }
    void upload(T* dst, const T* host, size_t n) override { std::memcpy(dst, host, n * sizeof(T)); }
    void upload(int* dst, const int* host, size_t n) override { std::memcpy(dst, host, n * sizeof(int)); }
    void download(T* host, const T* src, size_t n) override { std::memcpy(host, src, n * sizeof(T)); }

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
    void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) override {
        ref::linear_forward(out, inp, weight, bias, N, C, OC);
    }
    void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, int N, int C,
                         int OC) override {
        ref::linear_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
    }
    void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, double theta) override {
        ref::rope_forward(out, inp, B, Tn, H, HS, theta);
    }
    void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, double theta) override {
        ref::rope_backward(dinp, dout, B, Tn, H, HS, theta);
    }
    void attention_forward(T* out, T* lse, const T* q, const T* k_all, const T* v_all, const int* kv_src, int layer,
                           size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) override {
        const size_t src = size_t(kv_src[layer]) * layer_stride;
        ref::attention_forward(out, lse, q, k_all + src, v_all + src, B, Tn, NH, NKV, HS);
    }
    void attention_backward(T* dq, T* dk_all, T* dv_all, const T* dout, const T* q, const T* k_all, const T* v_all,
                            const T* out, const T* lse, const int* kv_src, int layer, size_t layer_stride, int B,
                            int Tn, int NH, int NKV, int HS) override {
        const size_t src = size_t(kv_src[layer]) * layer_stride;
        ref::attention_backward(dq, dk_all + src, dv_all + src, dout, q, k_all + src, v_all + src, out, lse, B, Tn, NH,
                                NKV, HS);
    }
    void gelu_forward(T* out, const T* x, size_t n) override { ref::gelu_forward(out, x, n); }
    void gelu_backward(T* dx, const T* dout, const T* x, size_t n) override { ref::gelu_backward(dx, dout, x, n); }
    void swiglu_forward(T* out, const T* gate, const T* up, size_t n) override {
        ref::swiglu_forward(out, gate, up, n);
    }
    void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) override {
        ref::swiglu_backward(dgate, dup, dout, gate, up, n);
    }
    void residual_forward(T* out, const T* a, const T* b, size_t n) override { ref::residual_forward(out, a, b, n); }
    double sum_squares(const T* x, size_t n) override {
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
        return sum;
    }
    void adamw_update(T* param, const T* grad, T* m, T* v, size_t n, const ref::AdamWStep& step) override {
        ref::adamw_update(param, grad, m, v, n, step);
    }
    void cross_entropy_forward(T* losses, const T* logits, const int* targets, int N, int V) override {
        ref::cross_entropy_forward(losses, logits, targets, N, V);
    }
    void cross_entropy_backward(T* dlogits, const T* logits, const int* targets, T dloss, int N, int V) override {
        ref::cross_entropy_backward(dlogits, logits, targets, dloss, N, V);
    }
};

}  // namespace rkv
