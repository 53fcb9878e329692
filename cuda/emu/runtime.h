// The CUDA runtime on the host: what cuda_runtime_api.h declares is defined
// in runtime.cpp (device memory is host memory, streams run in order on the
// calling thread, events read the host clock); the C++ overloads come from
// the real cuda_runtime.h. This header adds what the emulator itself needs:
// the registry of device allocations, the launch checks, and the launch of a
// kernel onto block.h's scheduler.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <optional>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda/emu/block.h"

namespace emu {

// A block of memory the device can reach: cudaMalloc'ed or pinned host memory.
struct Allocation {
    const std::byte* base;
    std::size_t size;
    bool pinned;
    bool contains(const void* p, std::size_t bytes) const {
        const auto* b = static_cast<const std::byte*>(p);
        return b >= base && bytes <= size && static_cast<std::size_t>(b - base) <= size - bytes;
    }
};

// The allocation that `p` points into (one past its end counts, as in C++).
std::optional<Allocation> allocation_of(const void* p);

// Device bytes cudaMalloc'ed (and cudaMallocAsync'ed) now, and the most at once since the
// start or the last reset_peak_device_bytes(); pinned host memory is not counted.
struct DeviceBytes {
    std::size_t current, peak;
};
DeviceBytes device_bytes();
void reset_peak_device_bytes();

// What a GPU returns for this launch configuration (cudaSuccess if none).
cudaError_t check_launch(const void* kernel, dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream);

// Sets what cudaGetLastError returns next, as a failing runtime call does.
cudaError_t record(cudaError_t e);

// Every pointer argument must point into device memory: a host pointer or a
// stale one passed to a kernel is the commonest CUDA bug.
template <class Tuple>
void check_pointer_arguments(const Tuple& params, std::source_location where) {
    std::apply(
        [&](const auto&... p) {
            int index = 0;
            const auto check = [&](const auto& v) {
                using V = std::remove_cvref_t<decltype(v)>;
                if constexpr (std::is_pointer_v<V> && !std::is_function_v<std::remove_pointer_t<V>>) {
                    if (v != nullptr && !allocation_of(v))
                        throw kernel_error("emu: kernel launched at " + std::string(where.file_name()) + ":" +
                                           std::to_string(where.line()) + ": argument " + std::to_string(index) +
                                           " points outside every device allocation (host or freed memory?)");
                }
                ++index;
            };
            (check(p), ...);
        },
        params);
}

// Runs `kernel` on the grid now (the emulator's streams are synchronous).
// A bad configuration is recorded for cudaGetLastError, as <<<>>> does.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
            std::source_location where, Args&&... args) {
    if (const cudaError_t e = check_launch(reinterpret_cast<const void*>(kernel), grid, block, smem, stream);
        e != cudaSuccess) {
        record(e);
        return;
    }
    struct Call {
        void (*kernel)(Params...);
        std::tuple<std::remove_cvref_t<Params>...> params;
    };
    const Call call{kernel, {std::forward<Args>(args)...}};
    check_pointer_arguments(call.params, where);
    Launch l;
    l.grid = grid;
    l.block = block;
    l.dynamic_smem = smem;
    l.invoke = [](const void* c) {
        const Call& call = *static_cast<const Call*>(c);
        std::apply(call.kernel, call.params);  // each thread gets its own copies
    };
    l.params = &call;
    l.where = where;
    run_grid(l);
}

}  // namespace emu

// cuda_runtime.h declares these overloads for nvcc only.
template <class V>
cudaError_t cudaMemcpyToSymbol(const V& symbol, const void* src, std::size_t count, std::size_t offset = 0,
                               cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    return cudaMemcpyToSymbol(static_cast<const void*>(&symbol), src, count, offset, kind);
}
template <class V>
cudaError_t cudaMemcpyFromSymbol(void* dst, const V& symbol, std::size_t count, std::size_t offset = 0,
                                 cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    return cudaMemcpyFromSymbol(dst, static_cast<const void*>(&symbol), count, offset, kind);
}
template <class F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
