// cuBLASLt's workspace (layers/linear.cu): allocated once, on the first matmul, for the life of
// the process; what its Hopper kernels may ask for. A plain header: the memory plan counts it.
#pragma once
#include <cstddef>

namespace rkv::cuda {

constexpr size_t kLinearWorkspaceBytes = size_t(32) << 20;

}  // namespace rkv::cuda
