// LocalComm's copy on the CUDA path, whose buffers are device memory (dist/comm.h). Built
// into rkv_dist with the CUDA path (RKV_DIST_CUDA), with or without MPI.
#pragma once

#include <cstddef>

namespace rkv {

// cudaMemcpy between any two buffers, host or device.
void device_copy(void* dst, const void* src, size_t bytes);

}  // namespace rkv
