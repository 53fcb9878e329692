// The training attention kernels, one row each: what `--attention` calls it, what it takes
// (storage types, head dims, the GPU it needs) and its launchers. CudaOps (src/cuda_ops.h), the
// --attention flag, bench/attention_bench.cu and tests/kernels/test_attention_kernels.cpp all
// iterate this table: a new kernel is its file (layers/attention_<name>.cu) and a row in
// layers/attention_kernels.cu (docs/adding-a-kernel.md). Every row computes ref/attention.h with
// the arguments of ref/attention_args.h, its lse the natural-log one, so any backward takes any
// forward's out and lse.
#pragma once

#include <span>
#include <string>

#include "cuda/compat.cuh"
#include "ref/attention_args.h"

namespace rkv::cuda {

template <class S>
using AttentionFn = void (*)(const AttentionArgs<S, float>& a, cudaStream_t stream);

struct AttentionKernel {
    const char* name;  // --attention's name for it, and its file layers/attention_<name>.cu
    // Head dims it takes: hs_min, hs_min + hs_step, ..., hs_max.
    int hs_min, hs_max, hs_step;
    // Forward and backward per storage type; null where it does not take the type.
    AttentionFn<float> forward_f32, backward_f32;
    AttentionFn<__nv_bfloat16> forward_bf16, backward_bf16;
    // Whether this build and GPU run it, and what that needs (shown when it is asked for and does
    // not run); null: wherever the build's architectures (sm_80 and later) are.
    bool (*available)();
    const char* needs;

    bool takes_head_dim(int HS) const { return HS >= hs_min && HS <= hs_max && (HS - hs_min) % hs_step == 0; }
    bool runs_here() const { return !available || available(); }
    bool takes(const float*) const { return forward_f32 != nullptr; }
    bool takes(const __nv_bfloat16*) const { return forward_bf16 != nullptr; }
    // Whether it runs here on storage S at head dim HS.
    template <class S>
    bool runs(int HS) const {
        return takes(static_cast<const S*>(nullptr)) && takes_head_dim(HS) && runs_here();
    }
    void forward(const AttentionArgs<float, float>& a, cudaStream_t s) const { forward_f32(a, s); }
    void forward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t s) const { forward_bf16(a, s); }
    void backward(const AttentionArgs<float, float>& a, cudaStream_t s) const { backward_f32(a, s); }
    void backward(const AttentionArgs<__nv_bfloat16, float>& a, cudaStream_t s) const { backward_bf16(a, s); }
};

// Every kernel, in the order `auto` prefers them; the last (plain) takes every storage type
// and head dims 1 .. 128 and runs everywhere: the fallback.
std::span<const AttentionKernel> attention_kernels();

// The row `name` names; throws std::invalid_argument when no row does (listing the names) or
// when it does not run here (saying what it needs).
const AttentionKernel& attention_kernel(const std::string& name);

// The kernel that runs for storage S at head dim HS: `chosen` where it runs (null: auto, the
// first row that runs), else the fallback; throws std::invalid_argument when none runs (a head
// dim no row takes).
template <class S>
const AttentionKernel& attention_kernel_for(const AttentionKernel* chosen, int HS);

}  // namespace rkv::cuda
