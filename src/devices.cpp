#include "src/devices.h"

#include <stdexcept>
#include <type_traits>

#include "src/cpu_ops.h"
#if RKV_WITH_CUDA
#include "src/cuda_ops.h"
#endif

namespace rkv {

namespace {

bool have_real_gpu() {
#if RKV_WITH_CUDA && !defined(RKV_EMU)
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
    return false;
#endif
}

}  // namespace

std::vector<std::string> attention_names() {
    std::vector<std::string> names{"auto"};
#if RKV_WITH_CUDA
    for (const cuda::AttentionKernel& k : cuda::attention_kernels()) names.push_back(k.name);
#endif
    return names;
}

bool uses_cuda(const std::string& device) { return device == "cuda" || (device == "auto" && have_real_gpu()); }

template <class S>
std::unique_ptr<LayerOps<S>> make_layer_ops(const std::string& device, const std::string& attention) {
    if (!uses_cuda(device)) {
        if constexpr (std::is_same_v<S, float>)
            return std::make_unique<CpuOps<float>>();
        else
            throw std::logic_error("the CPU path computes in fp32");
    }
#if RKV_WITH_CUDA
    return std::make_unique<CudaOps<S>>(attention);
#else
    throw std::runtime_error("--device " + device +
                             ": this build has no CUDA path (CMake found no CUDA toolkit, "
                             "or RKV_CUDA_PATH=OFF); the CPU path is --device cpu");
#endif
}

template std::unique_ptr<LayerOps<float>> make_layer_ops(const std::string&, const std::string&);
#if RKV_WITH_CUDA
template std::unique_ptr<LayerOps<__nv_bfloat16>> make_layer_ops(const std::string&, const std::string&);
#endif

}  // namespace rkv
