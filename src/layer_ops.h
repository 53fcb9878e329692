// The interface between the model driver and the layer implementations. The driver
// (src/model.h) is written once against it; ref/ implements it on the CPU (src/cpu_ops.h)
// and the CUDA kernels implement it on the GPU. Pointers are in the implementation's
// memory (host or device). Every backward accumulates (+=) into its gradient outputs.
// Shapes: N = B * T rows; C hidden; H heads of size HS.
#pragma once
#include <cstddef>

#include "ref/adamw.h"

namespace rkv {

template <class T>
struct LayerOps {
    virtual ~LayerOps() = default;

    // Memory.
    virtual void* alloc_bytes(size_t bytes) = 0;
    virtual void free_bytes(void* p) = 0;
    virtual void zero(T* p, size_t n) = 0;
    virtual void upload(T* dst, const T* host, size_t n) = 0;
    virtual void upload(int* dst, const int* host, size_t n) = 0;
    virtual void download(T* host, const T* src, size_t n) = 0;

    // out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null)
    virtual void embedding_forward(T* out, const int* tokens, const T* wte, const T* wpe, int B, int Tn, int C) = 0;
    virtual void embedding_backward(T* dwte, T* dwpe, const T* dout, const int* tokens, int B, int Tn, int C) = 0;

    // inp, out (N,C); w, b (C); mean, rstd (N)
    virtual void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N, int C,
                                   double eps) = 0;
    virtual void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, const T* mean,
                                    const T* rstd, int N, int C) = 0;
    // inp, out (N,C); w (C); rstd (N). QK-norm is this with N = B*T*H, C = HS.
    virtual void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) = 0;
    virtual void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                                  int C) = 0;

    // out (N,OC) = inp (N,C) weight (OC,C)^T + bias (OC, may be null)
    virtual void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) = 0;
    virtual void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, int N,
                                 int C, int OC) = 0;

    // inp, out (B,T,H,HS)
    virtual void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, double theta) = 0;
    virtual void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, double theta) = 0;

    // Routed attention: layer `layer` attends with q to the K/V of layer kv_src[layer].
    // q, out (B,T,NH,HS); k_all, v_all, dk_all, dv_all (L,B,T,NKV,HS), layers layer_stride
    // apart; lse (B,NH,T); kv_src (L) in the implementation's memory: the route is data,
    // so a new route needs no new launch. dk_all, dv_all accumulate across readers.
    virtual void attention_forward(T* out, T* lse, const T* q, const T* k_all, const T* v_all, const int* kv_src,
                                   int layer, size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) = 0;
    virtual void attention_backward(T* dq, T* dk_all, T* dv_all, const T* dout, const T* q, const T* k_all,
                                    const T* v_all, const T* out, const T* lse, const int* kv_src, int layer,
                                    size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) = 0;

    // all (n)
    virtual void gelu_forward(T* out, const T* x, size_t n) = 0;
    virtual void gelu_backward(T* dx, const T* dout, const T* x, size_t n) = 0;
    virtual void swiglu_forward(T* out, const T* gate, const T* up, size_t n) = 0;
    virtual void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) = 0;
    virtual void residual_forward(T* out, const T* a, const T* b, size_t n) = 0;

    // The optimizer's two steps (optim/adamw.h): the sum of squares of x (n), accumulated
    // in a fixed order so it is the same every run, and AdamW on n contiguous values.
    virtual double sum_squares(const T* x, size_t n) = 0;
    virtual void adamw_update(T* param, const T* grad, T* m, T* v, size_t n, const ref::AdamWStep& step) = 0;

    // logits, dlogits (N,V); targets, losses (N); target -1 skipped
    virtual void cross_entropy_forward(T* losses, const T* logits, const int* targets, int N, int V) = 0;
    virtual void cross_entropy_backward(T* dlogits, const T* logits, const int* targets, T dloss, int N, int V) = 0;
};

}  // namespace rkv
