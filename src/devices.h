// Where the model runs: the layer implementations behind --device.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "src/layer_ops.h"

namespace rkv {

// "cpu": ref/ on the host, in float. "cuda": the kernels of layers/ (on the GPU, or on the
// CPU through the emulator in an emulator build), storing S, attention on the kernel named by
// `attention` (src/cuda_ops.h). "auto": cuda when a real GPU is there.
template <class S>
std::unique_ptr<LayerOps<S>> make_layer_ops(const std::string& device, const std::string& attention = "auto");
// What --attention takes: "auto" and the names of layers/attention_kernels.cuh's table (only
// "auto" in a build without the CUDA path).
std::vector<std::string> attention_names();
// Whether --device runs the CUDA path (so memory that collectives touch is device memory).
bool uses_cuda(const std::string& device);

}  // namespace rkv
