// The one header every kernel file includes.
//
// Under nvcc it is the CUDA runtime. In a target linked with rkv_emu (which
// defines RKV_EMU) the host compiler gets the emulator (cuda/emu) instead: the
// same kernel source then runs on the CPU, block after block, the threads of
// a block as fibers, so that barriers, warp shuffles and shared memory behave
// as on the GPU (DESIGN.md section 3).
//
// Kernel source stays CUDA with two conventions:
//   * launches are written  rkv::launch_kernel(kernel, grid, block, smem,
//     stream, args...)  instead of  kernel<<<grid, block, smem, stream>>>(args...);
//   * dynamic shared memory is  float* p = rkv::dynamic_smem<float>();  instead of
//     extern __shared__ float p[];  (C++ has no way to give such a declaration
//     its per-launch size on the host).
#pragma once

// Which CUDA: nvcc's; the emulator's where RKV_EMU is defined (targets that
// link rkv_emu get it); otherwise, in host code of a GPU build, the runtime
// API alone (such code calls launchers in .cu files, never kernels).
#if defined(__CUDACC__) || !defined(RKV_EMU)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#else
#include "cuda/emu/kernel.h"
#include "cuda/emu/runtime.h"
#endif

#include <cstddef>
#include <source_location>
#include <stdexcept>
#include <string>
#include <utility>

// Loops over a thread's register arrays are unrolled, so that the arrays stay in registers. The
// emulator has no registers to keep them in: there the host compiler decides (a forced unroll
// made the emulator build of layers/attention_mma.cu take minutes and the tests no faster:
// bench/RESULTS.md, "Editing one kernel").
#if defined(__CUDACC__)
#define RKV_UNROLL _Pragma("unroll")
#else
#define RKV_UNROLL
#endif

namespace rkv {

// A failed CUDA runtime call, with where it was made.
struct cuda_error : std::runtime_error {
    cudaError_t code;
    cuda_error(cudaError_t e, const std::source_location& at)
        : std::runtime_error(std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ") at " +
                             at.file_name() + ":" + std::to_string(at.line())),
          code(e) {}
};

inline void cuda_check(cudaError_t e, std::source_location at = std::source_location::current()) {
    if (e != cudaSuccess) throw cuda_error(e, at);
}

// The grid of a launch, carrying the place of the launch_kernel call (a
// default argument of a constructor is evaluated at the caller).
struct LaunchGrid {
    dim3 dim;
    std::source_location where;
    LaunchGrid(dim3 d, std::source_location w = std::source_location::current()) : dim(d), where(w) {}
    LaunchGrid(unsigned x, std::source_location w = std::source_location::current()) : dim(x), where(w) {}
};

#if defined(__CUDACC__) || defined(RKV_EMU)

// Launches `kernel` and throws cuda_error if the launch is refused (too many
// threads, too much shared memory, a bad stream). Under the emulator the
// kernel has run when this returns, and a bug it found (a deadlock, a
// divergent barrier, a host pointer argument) is thrown as emu::kernel_error.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), LaunchGrid grid, dim3 block, std::size_t smem, cudaStream_t stream,
                   Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
#if defined(__CUDACC__)
    kernel<<<grid.dim, block, smem, stream>>>(std::forward<Args>(args)...);
#else
    emu::launch(kernel, grid.dim, block, smem, stream, grid.where, std::forward<Args>(args)...);
#endif
    cuda_check(cudaGetLastError(), grid.where);
}

// The block's dynamic shared memory, as sized by the launch.
template <class E>
__device__ __forceinline__ E* dynamic_smem() {
#if defined(__CUDACC__)
    extern __shared__ __align__(16) unsigned char rkv_dynamic_smem[];
    return reinterpret_cast<E*>(rkv_dynamic_smem);
#else
    return reinterpret_cast<E*>(emu::here.dynamic_smem);
#endif
}

#endif  // __CUDACC__ || RKV_EMU

}  // namespace rkv
