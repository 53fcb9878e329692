#include "cuda/emu/gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/emu/runtime.h"

namespace emu {

std::size_t element_size(cudaDataType_t t) {
    switch (t) {
        case CUDA_R_32F: return 4;
        case CUDA_R_64F: return 8;
        case CUDA_R_16BF:
        case CUDA_R_16F: return 2;
        default: return 0;
    }
}

double load(const void* p, cudaDataType_t t, std::int64_t i) {
    switch (t) {
        case CUDA_R_32F: return static_cast<const float*>(p)[i];
        case CUDA_R_64F: return static_cast<const double*>(p)[i];
        case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
        default: return 0;
    }
}

void store(void* p, cudaDataType_t t, std::int64_t i, double v) {
    switch (t) {
        case CUDA_R_32F: static_cast<float*>(p)[i] = static_cast<float>(v); break;
        case CUDA_R_64F: static_cast<double*>(p)[i] = v; break;
        case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(static_cast<float>(v)); break;
        case CUDA_R_16F: static_cast<__half*>(p)[i] = __float2half(static_cast<float>(v)); break;
        default: break;
    }
}

void check_inside(const char* api, const char* name, const Matrix& m, std::int64_t batch) {
    if (m.rows == 0 || m.cols == 0 || batch == 0) return;
    const std::int64_t size = static_cast<std::int64_t>(element_size(m.type));
    const std::int64_t extent = ((m.cols - 1) * m.ld + m.rows) * size;  // bytes of one batch
    const auto describe = [&] {
        return std::string("emu: ") + api + ": " + name + " (" + std::to_string(m.rows) + " x " +
               std::to_string(m.cols) + ", ld " + std::to_string(m.ld) +
               (batch > 1 ? ", batch stride " + std::to_string(m.stride) + " x " + std::to_string(batch)
                          : std::string()) +
               ")";
    };
    const auto a = allocation_of(m.data);
    if (!a) throw kernel_error(describe() + " is not in device memory");
    const auto* first = static_cast<const std::byte*>(m.data);
    const std::int64_t last_batch = (batch - 1) * m.stride * size;
    const auto* lo = first + std::min<std::int64_t>(0, last_batch);
    const auto* hi = first + std::max<std::int64_t>(0, last_batch) + extent;
    const auto* end = a->base + a->size;
    if (lo < a->base)
        throw kernel_error(describe() + " starts " + std::to_string(a->base - lo) + " bytes before its allocation");
    if (hi > end)
        throw kernel_error(describe() + " ends " + std::to_string(hi - end) +
                           " bytes past the end of its allocation of " + std::to_string(a->size) +
                           " bytes: wrong transpose, leading dimension or batch stride?");
}

}  // namespace emu
