#include "src/devices.h"

#include <stdexcept>

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

bool uses_cuda(const std::string& device) { return device == "cuda" || (device == "auto" && have_real_gpu()); }

std::unique_ptr<LayerOps<float>> make_layer_ops(const std::string& device) {
    if (!uses_cuda(device)) return std::make_unique<CpuOps<float>>();
#if RKV_WITH_CUDA
    return std::make_unique<CudaOps>();
#else
    throw std::runtime_error("--device " + device + ": this build has no CUDA path (build with the emulator or nvcc)");
#endif
}

}  // namespace rkv
