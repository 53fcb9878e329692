#include "dist/device_copy.h"

#include "cuda/compat.cuh"

namespace rkv {

void device_copy(void* dst, const void* src, size_t bytes) {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

}  // namespace rkv
