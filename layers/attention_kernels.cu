// The table of training attention kernels (layers/attention_kernels.cuh): one row per kernel.
#include "layers/attention_kernels.cuh"

#include <stdexcept>

#include "layers/attention_mma.cuh"
#include "layers/attention_plain.cuh"
#include "layers/attention_wgmma.cuh"

namespace rkv::cuda {

namespace {

using bf16 = __nv_bfloat16;

const AttentionKernel kKernels[] = {
    // Hopper's warpgroup tensor cores (wgmma), FlashAttention-3 style.
    {.name = "wgmma",
     .hs_min = 64,
     .hs_max = 128,
     .hs_step = 64,
     .forward_f32 = nullptr,
     .backward_f32 = nullptr,
     .forward_bf16 = attention_wgmma_forward,
     .backward_bf16 = attention_wgmma_backward,
     .available = attention_wgmma_supported,
     .needs = "a build for sm_90a (CMAKE_CUDA_ARCHITECTURES=90a) and a GPU of compute capability 9.0"},
    // mma.sync m16n8k16 tensor cores (sm_80 and later), FlashAttention-2 style.
    {.name = "mma",
     .hs_min = 64,
     .hs_max = 128,
     .hs_step = 64,
     .forward_f32 = nullptr,
     .backward_f32 = nullptr,
     .forward_bf16 = attention_mma_forward,
     .backward_bf16 = attention_mma_backward,
     .available = nullptr,
     .needs = nullptr},
    // Plain CUDA, fp32 math: every storage type and head dim up to 128.
    {.name = "plain",
     .hs_min = 1,
     .hs_max = 128,
     .hs_step = 1,
     .forward_f32 = attention_plain_forward<float>,
     .backward_f32 = attention_plain_backward<float>,
     .forward_bf16 = attention_plain_forward<bf16>,
     .backward_bf16 = attention_plain_backward<bf16>,
     .available = nullptr,
     .needs = nullptr},
};

}  // namespace

std::span<const AttentionKernel> attention_kernels() { return kKernels; }

const AttentionKernel& attention_kernel(const std::string& name) {
    std::string names;
    for (const AttentionKernel& k : kKernels) {
        if (name == k.name) {
            if (!k.runs_here()) throw std::invalid_argument("--attention " + name + ": needs " + k.needs);
            return k;
        }
        names += std::string(", ") + k.name;
    }
    throw std::invalid_argument("--attention " + name + ": not one of auto" + names);
}

template <class S>
const AttentionKernel& attention_kernel_for(const AttentionKernel* chosen, int HS) {
    if (chosen && chosen->runs<S>(HS)) return *chosen;
    if (!chosen)
        for (const AttentionKernel& k : kKernels)
            if (k.runs<S>(HS)) return k;
    const AttentionKernel& fallback = kKernels[std::size(kKernels) - 1];
    if (fallback.runs<S>(HS)) return fallback;
    throw std::invalid_argument("attention: no kernel takes head dim " + std::to_string(HS));
}

template const AttentionKernel& attention_kernel_for<float>(const AttentionKernel*, int);
template const AttentionKernel& attention_kernel_for<bf16>(const AttentionKernel*, int);

}  // namespace rkv::cuda
