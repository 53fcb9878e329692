// LayerOps on the GPU: every layer is its kernel in layers/ (or cuBLASLt), on one stream.
// S is the storage type, __nv_bfloat16 or float (src/storage.h); Master is float either way.
// In an emulator build the same kernels run on the CPU (cuda/emu).
#pragma once
#include "cuda/compat.cuh"
#include "layers/activations.cuh"
#include "layers/attention_decode.cuh"
#include "layers/attention_kernels.cuh"
#include "layers/cast.cuh"
#include "layers/cross_entropy.cuh"
#include "layers/embedding.cuh"
#include "layers/layernorm.cuh"
#include "layers/linear.cuh"
#include "layers/qk_norm_rope.cuh"
#include "layers/rmsnorm.cuh"
#include "layers/rope.cuh"
#include "optim/adamw.cuh"
#include "src/event_profile.h"
#include "src/layer_ops.h"

#include <stdexcept>
#include <string>
#include <type_traits>

namespace rkv {

template <class S>
struct CudaOps final : LayerOps<S> {
    using Master = master_t<S>;
    static_assert(std::is_same_v<Master, float>, "the CUDA path stores float or bf16");
    const cudaStream_t stream = nullptr;  // every operation's (and the profile's events')

    // The attention kernel (--attention): a row of layers/attention_kernels.cuh's table where it
    // takes the storage type and head dim, else the table's fallback (plain); "auto" is the
    // first row that does.
    explicit CudaOps(const std::string& attention = "auto")
        : attention_(attention == "auto" ? nullptr : &cuda::attention_kernel(attention)) {}

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
    void to_working(S* out, const float* x, size_t n) override {
        const auto timed = profile_.time(__func__);
        cuda::cast(out, x, n, stream);
    }
    void to_working_stochastic(S* out, const float* x, size_t n, uint64_t seed) override {
        const auto timed = profile_.time(__func__);
        cuda::cast_stochastic(out, x, n, seed, stream);
    }

    void embedding_forward(const EmbeddingArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::embedding_forward(a, stream);
    }
    void embedding_backward(const EmbeddingArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::embedding_backward(a, stream);
    }
    // A forward with a residual is timed as the fused operation it is.
    void layernorm_forward(const NormArgs<S, float>& a) override {
        const auto timed = profile_.time(a.residual ? "residual_layernorm_forward" : __func__);
        cuda::layernorm_forward(a, stream);
    }
    void layernorm_backward(const NormArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::layernorm_backward(a, stream);
    }
    void rmsnorm_forward(const NormArgs<S, float>& a) override {
        const auto timed = profile_.time(a.residual ? "residual_rmsnorm_forward" : __func__);
        cuda::rmsnorm_forward(a, stream);
    }
    void rmsnorm_backward(const NormArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::rmsnorm_backward(a, stream);
    }
    void linear_forward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_forward(a, stream);
    }
    void linear_gelu_forward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_gelu_forward(a, stream);
    }
    void linear_backward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_backward(a, stream);
    }
    void linear_gelu_backward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_gelu_backward(a, stream);
    }
    void head_forward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_forward(a, stream);
    }
    void head_backward(const LinearArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::linear_backward(a, stream);
    }
    void rope_forward(const RopeArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::rope_forward(a, stream);
    }
    void rope_backward(const RopeArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::rope_backward(a, stream);
    }
    void qk_norm_rope_forward(const RopeArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::qk_norm_rope_forward(a, stream);
    }
    void qk_norm_rope_backward(const RopeArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::qk_norm_rope_backward(a, stream);
    }
    void attention_forward(const AttentionArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::attention_kernel_for<S>(attention_, a.HS).forward(a, stream);
    }
    void kv_cache_write(const KvCacheWriteArgs<S>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::kv_cache_write(a, stream);
    }
    void attention_decode(const AttentionDecodeArgs<S>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::attention_decode_forward(a, stream);
    }
    void attention_backward(const AttentionArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::attention_kernel_for<S>(attention_, a.HS).backward(a, stream);
    }
    void swiglu_forward(const SwiGLUArgs<S>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::swiglu_forward(a, stream);
    }
    void swiglu_backward(const SwiGLUArgs<S>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::swiglu_backward(a, stream);
    }
    double sum_squares(const float* x, size_t n) override {
        const auto timed = profile_.time(__func__);
        return cuda::grad_norm_sq(x, n, stream);
    }
    void adamw_update(const AdamWArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::adamw_update(a, stream);
    }
    void cross_entropy_forward(const CrossEntropyArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::cross_entropy_forward(a, stream);
    }
    void fused_classifier(const CrossEntropyArgs<S, float>& a) override {
        const auto timed = profile_.time(__func__);
        cuda::fused_classifier(a, stream);
    }

    // Every operation but allocation is timed under its name while profiling is on.
    OpProfile* profile() override { return &profile_; }

private:
    const cuda::AttentionKernel* const attention_;  // null: auto
    EventProfile profile_{stream};
};

}  // namespace rkv
