// The reference GEMM behind the emulated cuBLASLt: column-major,
// as the libraries define it, after the checks that make a wrong transpose,
// leading dimension or batch stride fail on the CPU instead of reading
// whatever lies next to the operand.
#pragma once

#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace emu {

// A column-major matrix as stored: `rows` x `cols` with leading dimension
// `ld`; batch b starts `stride` elements after batch b - 1.
struct Matrix {
    const void* data = nullptr;
    cudaDataType_t type = CUDA_R_32F;
    std::int64_t rows = 0, cols = 0, ld = 0, stride = 0;
};

// Bytes per element of the real types the engine uses; 0 for others.
std::size_t element_size(cudaDataType_t t);

double load(const void* p, cudaDataType_t t, std::int64_t i);
void store(void* p, cudaDataType_t t, std::int64_t i, double v);

// Throws kernel_error unless every one of `batch` batches of `m` lies inside
// a single device allocation. `api` and `name` say which call and operand.
void check_inside(const char* api, const char* name, const Matrix& m, std::int64_t batch);

// The product P = op(A) op(B) of one batch: m x n, accumulated in Acc (float
// for the fp32 compute types, as on the GPU; double for fp64), handed to
// `emit(i, j, value)` element by element.
template <class Acc, class Emit>
void product(const Matrix& a, bool trans_a, const Matrix& b, bool trans_b, std::int64_t m, std::int64_t n,
             std::int64_t k, std::int64_t batch, Emit emit) {
    // Copy op(A) by rows and op(B) by columns, so every dot product below runs
    // over contiguous memory.
    std::vector<Acc> at(static_cast<std::size_t>(m * k)), bt(static_cast<std::size_t>(n * k));
    const std::int64_t a0 = batch * a.stride, b0 = batch * b.stride;
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t p = 0; p < k; ++p)
            at[i * k + p] = static_cast<Acc>(load(a.data, a.type, a0 + (trans_a ? p + i * a.ld : i + p * a.ld)));
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t p = 0; p < k; ++p)
            bt[j * k + p] = static_cast<Acc>(load(b.data, b.type, b0 + (trans_b ? j + p * b.ld : p + j * b.ld)));
    for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t i = 0; i < m; ++i) {
            const Acc* x = &at[i * k];
            const Acc* y = &bt[j * k];
            Acc s[4] = {0, 0, 0, 0};  // four chains: the adds need not wait on each other
            std::int64_t p = 0;
            for (; p + 4 <= k; p += 4)
                for (int q = 0; q < 4; ++q) s[q] += x[p + q] * y[p + q];
            for (; p < k; ++p) s[0] += x[p] * y[p];
            emit(i, j, (s[0] + s[1]) + (s[2] + s[3]));
        }
}

}  // namespace emu
