// LayerOps on the GPU: every layer is its kernel in layers/ (or cuBLAS), on one stream.
// In an emulator build the same kernels run on the CPU (cuda/emu).
#pragma once
#include "cuda/compat.cuh"
#include "layers/activations.cuh"
#include "layers/attention.cuh"
#include "layers/cross_entropy.cuh"
#include "layers/embedding.cuh"
#include "layers/layernorm.cuh"
#include "layers/linear.cuh"
#include "layers/rmsnorm.cuh"
#include "layers/rope.cuh"
#include "optim/adamw.cuh"
#include "src/layer_ops.h"

namespace rkv {

struct CudaOps final : LayerOps<float> {
    cudaStream_t stream = nullptr;

    void* alloc_bytes(size_t bytes) override {
        void* p = nullptr;
        cuda_check(cudaMalloc(&p, bytes));
        return p;
    }
    void free_bytes(void* p) override { cuda_check(cudaFree(p)); }
    void zero(float* p, size_t n) override { cuda_check(cudaMemsetAsync(p, 0, n * sizeof(float), stream)); }
    void upload(float* dst, const float* host, size_t n) override { copy(dst, host, n * sizeof(float)); }
    void upload(int* dst, const int* host, size_t n) override { copy(dst, host, n * sizeof(int)); }
    void download(float* host, const float* src, size_t n) override { copy(host, src, n * sizeof(float)); }

    void embedding_forward(float* out, const int* tokens, const float* wte, const float* wpe, int B, int Tn,
                           int C) override {
        cuda::embedding_forward(out, tokens, wte, wpe, B, Tn, C, stream);
    }
    void embedding_backward(float* dwte, float* dwpe, const float* dout, const int* tokens, int B, int Tn,
                            int C) override {
        cuda::embedding_backward(dwte, dwpe, dout, tokens, B, Tn, C, stream);
    }
    void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                           int N, int C, double eps) override {
        cuda::layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps, stream);
    }
    void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                            const float* mean, const float* rstd, int N, int C) override {
        cuda::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, stream);
    }
    void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C,
                         double eps) override {
        cuda::rmsnorm_forward(out, rstd, inp, w, N, C, eps, stream);
    }
    void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                          const float* rstd, int N, int C) override {
        cuda::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, stream);
    }
    void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                        int OC) override {
        cuda::linear_forward(out, inp, weight, bias, N, C, OC, stream);
    }
    void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, int N, int C, int OC) override {
        cuda::linear_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, stream);
    }
    void rope_forward(float* out, const float* inp, int B, int Tn, int H, int HS, double theta) override {
        cuda::rope_forward(out, inp, B, Tn, H, HS, theta, stream);
    }
    void rope_backward(float* dinp, const float* dout, int B, int Tn, int H, int HS, double theta) override {
        cuda::rope_backward(dinp, dout, B, Tn, H, HS, theta, stream);
    }
    void attention_forward(float* out, float* lse, const float* q, const float* k_all, const float* v_all,
                           const int* kv_src, int layer, size_t layer_stride, int B, int Tn, int NH, int NKV,
                           int HS) override {
        cuda::attention_forward_routed(out, lse, q, k_all, v_all, kv_src, layer, layer_stride, B, Tn, NH, NKV, HS,
                                       stream);
    }
    void attention_backward(float* dq, float* dk_all, float* dv_all, const float* dout, const float* q,
                            const float* k_all, const float* v_all, const float* out, const float* lse,
                            const int* kv_src, int layer, size_t layer_stride, int B, int Tn, int NH, int NKV,
                            int HS) override {
        cuda::attention_backward_routed(dq, dk_all, dv_all, dout, q, k_all, v_all, out, lse, kv_src, layer,
                                        layer_stride, B, Tn, NH, NKV, HS, stream);
    }
    void gelu_forward(float* out, const float* x, size_t n) override { cuda::gelu_forward(out, x, n, stream); }
    void gelu_backward(float* dx, const float* dout, const float* x, size_t n) override {
        cuda::gelu_backward(dx, dout, x, n, stream);
    }
    void swiglu_forward(float* out, const float* gate, const float* up, size_t n) override {
        cuda::swiglu_forward(out, gate, up, n, stream);
    }
    void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                         size_t n) override {
        cuda::swiglu_backward(dgate, dup, dout, gate, up, n, stream);
    }
    void residual_forward(float* out, const float* a, const float* b, size_t n) override {
        cuda::residual_forward(out, a, b, n, stream);
    }
    double sum_squares(const float* x, size_t n) override { return cuda::grad_norm_sq(x, n, stream); }
    void adamw_update(float* param, const float* grad, float* m, float* v, size_t n,
                      const ref::AdamWStep& step) override {
        cuda::adamw_update(param, grad, m, v, n, step, stream);
    }
    void cross_entropy_forward(float* losses, const float* logits, const int* targets, int N, int V) override {
        cuda::cross_entropy_forward(losses, logits, targets, N, V, stream);
    }
    void cross_entropy_backward(float* dlogits, const float* logits, const int* targets, float dloss, int N,
                                int V) override {
        cuda::cross_entropy_backward(dlogits, logits, targets, dloss, N, V, stream);
    }

private:
    void copy(void* dst, const void* src, size_t bytes) {
        cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
        cuda_check(cudaStreamSynchronize(stream));
    }
};

}  // namespace rkv
