// LayerOps on the GPU: every layer is its kernel in layers/ (or cuBLASLt), on one stream.
// T is the storage type, __nv_bfloat16 or float (src/storage.h); Master is float either way.
// In an emulator build the same kernels run on the CPU (cuda/emu).
#pragma once
#include "cuda/compat.cuh"
#include "layers/activations.cuh"
#include "layers/attention.cuh"
#include "layers/attention_cached.cuh"
#include "layers/attention_tc.cuh"
#include "layers/attention_wgmma.cuh"
#include "layers/cast.cuh"
#include "layers/cross_entropy.cuh"
#include "layers/embedding.cuh"
#include "layers/layernorm.cuh"
#include "layers/linear.cuh"
#include "layers/qk_norm_rope.cuh"
#include "layers/rmsnorm.cuh"
#include "layers/rope.cuh"
#include "optim/adamw.cuh"
#include "src/layer_ops.h"
#include "src/event_profile.h"

#include <stdexcept>
#include <string>
#include <type_traits>

namespace rkv {

template <class T>
struct CudaOps final : LayerOps<T> {
    using Master = master_t<T>;
    static_assert(std::is_same_v<Master, float>, "the CUDA path stores float or bf16");
    const cudaStream_t stream = nullptr;  // every operation's (and the profile's events')

    // The attention kernel (--attention): "wgmma" (layers/attention_wgmma.cu, Hopper) or "mma"
    // (mma.sync, layers/attention_tc.cu) where they apply, bf16 at head dims 64 and 128, and the
    // plain kernel (layers/attention.cu) elsewhere; or "plain" everywhere. "auto" is wgmma where
    // the build and the GPU have it (attention_wgmma_supported), else mma.
    explicit CudaOps(const std::string& attention = "auto") : attention_(choose(attention)) {}

    void* alloc_bytes(size_t bytes) override {
        void* p = nullptr;
        cuda_check(cudaMalloc(&p, bytes));
        return p;
    }
    void free_bytes(void* p) override { cuda_check(cudaFree(p)); }
    void zero_bytes(void* p, size_t bytes) override {
        const auto timed = profile_.time(__func__);
        cuda_check(cudaMemsetAsync(p, 0, bytes, stream));
    }
    void copy_bytes(void* dst, const void* src, size_t bytes) override {
        const auto timed = profile_.time(__func__);
        cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
        cuda_check(cudaStreamSynchronize(stream));
    }
    void to_working(T* out, const float* x, size_t n) override {
        const auto timed = profile_.time(__func__);
        cuda::cast(out, x, n, stream);
    }
    void to_working_stochastic(T* out, const float* x, size_t n, uint64_t seed) override {
        const auto timed = profile_.time(__func__);
        cuda::cast_stochastic(out, x, n, seed, stream);
    }

    void embedding_forward(T* out, const int* tokens, const T* wte, const T* wpe, int B, int Tn, int C) override {
        const auto timed = profile_.time(__func__);
        cuda::embedding_forward(out, tokens, wte, wpe, B, Tn, C, stream);
    }
    void embedding_backward(float* dwte, float* dwpe, const T* dout, const int* tokens, int B, int Tn,
                            int C) override {
        const auto timed = profile_.time(__func__);
        cuda::embedding_backward(dwte, dwpe, dout, tokens, B, Tn, C, stream);
    }
    void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* w, const T* b, int N, int C,
                           double eps) override {
        const auto timed = profile_.time(__func__);
        cuda::layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps, stream);
    }
    void layernorm_backward(T* dinp, float* dw, float* db, const T* dout, const T* inp, const T* w,
                            const float* mean, const float* rstd, int N, int C) override {
        const auto timed = profile_.time(__func__);
        cuda::layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, stream);
    }
    void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* w, int N, int C, double eps) override {
        const auto timed = profile_.time(__func__);
        cuda::rmsnorm_forward(out, rstd, inp, w, N, C, eps, stream);
    }
    void rmsnorm_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int N,
                          int C) override {
        const auto timed = profile_.time(__func__);
        cuda::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, stream);
    }
    void residual_layernorm_forward(T* resid_out, T* out, float* mean, float* rstd, const T* a, const T* b,
                                    const T* w, const T* bias, int N, int C, double eps) override {
        const auto timed = profile_.time(__func__);
        cuda::residual_layernorm_forward(resid_out, out, mean, rstd, a, b, w, bias, N, C, eps, stream);
    }
    void residual_rmsnorm_forward(T* resid_out, T* out, float* rstd, const T* a, const T* b, const T* w, int N,
                                  int C, double eps) override {
        const auto timed = profile_.time(__func__);
        cuda::residual_rmsnorm_forward(resid_out, out, rstd, a, b, w, N, C, eps, stream);
    }
    void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_forward(out, inp, weight, bias, N, C, OC, OC, stream);
    }
    void linear_gelu_forward(T* out, T* pre, const T* inp, const T* weight, const T* bias, int N, int C,
                             int OC) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_gelu_forward(out, pre, inp, weight, bias, N, C, OC, stream);
    }
    void linear_backward(T* dinp, Grad dinp_grad, float* dweight, float* dbias, const T* dout, const T* inp,
                         const T* weight, int N, int C, int OC) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_backward(dinp, dinp_grad == Grad::add, dweight, dbias, dout, inp, weight, N, C, OC, OC, stream);
    }
    void linear_gelu_backward(T* dpre, float* dweight, float* dbias, const T* dout, const T* inp, const T* weight,
                              const T* pre, int N, int C, int OC) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_gelu_backward(dpre, dweight, dbias, dout, inp, weight, pre, N, C, OC, stream);
    }
    void head_forward(T* logits, const T* inp, const T* weight, int N, int C, int V, int ld) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_forward(logits, inp, weight, nullptr, N, C, V, ld, stream);
    }
    void head_backward(T* dinp, float* dweight, const T* dlogits, const T* inp, const T* weight, int N, int C, int V,
                       int ld) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_backward(dinp, false, dweight, nullptr, dlogits, inp, weight, N, C, V, ld, stream);
    }
    void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, const RopeParams& rope, int pos0) override {
        const auto timed = profile_.time(__func__);
        cuda::rope_forward(out, inp, B, Tn, H, HS, rope, pos0, stream);
    }
    void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, const RopeParams& rope) override {
        const auto timed = profile_.time(__func__);
        cuda::rope_backward(dinp, dout, B, Tn, H, HS, rope, stream);
    }
    void qk_norm_rope_forward(T* out, float* rstd, const T* inp, const T* w, int B, int Tn, int H, int HS, double eps,
                              const RopeParams& rope, int pos0) override {
        const auto timed = profile_.time(__func__);
        cuda::qk_norm_rope_forward(out, rstd, inp, w, B, Tn, H, HS, eps, rope, pos0, stream);
    }
    void qk_norm_rope_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int B,
                               int Tn, int H, int HS, const RopeParams& rope) override {
        const auto timed = profile_.time(__func__);
        cuda::qk_norm_rope_backward(dinp, dw, dout, inp, w, rstd, B, Tn, H, HS, rope, stream);
    }
    void attention_forward(T* out, float* lse, const T* q, const T* k_all, const T* v_all, const int* kv_src,
                           int layer, size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) override {
        const auto timed = profile_.time(__func__);
        if constexpr (std::is_same_v<T, __nv_bfloat16>) {
            switch (attention_for(HS)) {
                case Attention::wgmma:
                    return cuda::attention_wgmma_forward_routed(out, lse, q, k_all, v_all, kv_src, layer, layer_stride,
                                                                B, Tn, NH, NKV, HS, stream);
                case Attention::mma:
                    return cuda::attention_tc_forward_routed(out, lse, q, k_all, v_all, kv_src, layer, layer_stride, B,
                                                             Tn, NH, NKV, HS, stream);
                case Attention::plain: break;
            }
        }
        cuda::attention_forward_routed(out, lse, q, k_all, v_all, kv_src, layer, layer_stride, B, Tn, NH, NKV, HS,
                                       stream);
    }
    void kv_cache_write(T* slot, const T* src, int B, int Tq, int pos0, int Tmax, int width) override {
        const auto timed = profile_.time(__func__);
        cuda::kv_cache_write(slot, src, B, Tq, pos0, Tmax, width, stream);
    }
    void attention_cached(T* out, const T* q, const T* k_cache, const T* v_cache, const int* kv_slot, int layer,
                          size_t slot_stride, int B, int Tq, int pos0, int Tmax, int NH, int NKV, int HS) override {
        const auto timed = profile_.time(__func__);
        cuda::attention_cached_forward(out, q, k_cache, v_cache, kv_slot, layer, slot_stride, B, Tq, pos0, Tmax, NH,
                                       NKV, HS, stream);
    }
    void attention_backward(T* dq, T* dk_all, T* dv_all, Grad dkv_grad, const T* dout, const T* q, const T* k_all,
                            const T* v_all, const T* out, const float* lse, const int* kv_src, int layer,
                            size_t layer_stride, int B, int Tn, int NH, int NKV, int HS) override {
        const auto timed = profile_.time(__func__);
        const bool add = dkv_grad == Grad::add;
        if constexpr (std::is_same_v<T, __nv_bfloat16>) {
            switch (attention_for(HS)) {
                case Attention::wgmma:
                    return cuda::attention_wgmma_backward_routed(dq, dk_all, dv_all, add, dout, q, k_all, v_all, out,
                                                                 lse, kv_src, layer, layer_stride, B, Tn, NH, NKV, HS,
                                                                 stream);
                case Attention::mma:
                    return cuda::attention_tc_backward_routed(dq, dk_all, dv_all, add, dout, q, k_all, v_all, out, lse,
                                                              kv_src, layer, layer_stride, B, Tn, NH, NKV, HS, stream);
                case Attention::plain: break;
            }
        }
        cuda::attention_backward_routed(dq, dk_all, dv_all, add, dout, q, k_all, v_all, out, lse, kv_src, layer,
                                        layer_stride, B, Tn, NH, NKV, HS, stream);
    }
    void swiglu_forward(T* out, const T* gate, const T* up, size_t n) override {
        const auto timed = profile_.time(__func__);
        cuda::swiglu_forward(out, gate, up, n, stream);
    }
    void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n) override {
        const auto timed = profile_.time(__func__);
        cuda::swiglu_backward(dgate, dup, dout, gate, up, n, stream);
    }
    double sum_squares(const float* x, size_t n) override {
        const auto timed = profile_.time(__func__);
        return cuda::grad_norm_sq(x, n, stream);
    }
    void adamw_update(T* param, float* master, const float* grad, float* m, float* v, size_t n,
                      const ref::AdamWStep& step, uint64_t seed) override {
        const auto timed = profile_.time(__func__);
        cuda::adamw_update(param, master, grad, m, v, n, step, seed, stream);
    }
    void cross_entropy_forward(float* losses, const T* logits, const int* targets, int N, int V, int ld) override {
        const auto timed = profile_.time(__func__);
        cuda::cross_entropy_forward(losses, logits, targets, N, V, ld, stream);
    }
    void fused_classifier(T* logits_dlogits, float* losses, const int* targets, float dloss, int N, int V,
                          int ld) override {
        const auto timed = profile_.time(__func__);
        cuda::fused_classifier(logits_dlogits, losses, targets, dloss, N, V, ld, stream);
    }

    // Every operation but allocation is timed under its name while profiling is on.
    OpProfile* profile() override { return &profile_; }

private:
    enum class Attention { wgmma, mma, plain };
    static Attention choose(const std::string& name) {
        if (name == "plain") return Attention::plain;
        if (name == "mma") return Attention::mma;
        if (name != "auto" && name != "wgmma")
            throw std::invalid_argument("--attention " + name + ": not one of auto, wgmma, mma, plain");
        if (cuda::attention_wgmma_supported()) return Attention::wgmma;
        if (name == "wgmma")
            throw std::invalid_argument("--attention wgmma: needs a build for sm_90a "
                                        "(CMAKE_CUDA_ARCHITECTURES=90a) and a GPU of compute capability 9.0");
        return Attention::mma;
    }
    // The tensor-core kernels take bf16 at head dims 64 and 128 only.
    Attention attention_for(int HS) const {
        return std::is_same_v<T, __nv_bfloat16> && (HS == 64 || HS == 128) ? attention_ : Attention::plain;
    }
    const Attention attention_;
    EventProfile profile_{stream};
};

}  // namespace rkv
