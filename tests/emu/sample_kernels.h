// Sample kernels that use the whole emulated kernel language; valid CUDA
// (scripts/nvcc_check.sh compiles them with nvcc) and checked against CPU
// loops under the emulator in test_sample.cpp. All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace emu_sample {

// out[r, :] = softmax(in[r, :]) for each of `rows` rows of `cols` floats.
void softmax_rows(const float* in, float* out, int rows, int cols, cudaStream_t stream);

// bins[v % 64] += 1 for each of the n values (bins zeroed by the caller).
void histogram(const int* values, int n, unsigned* bins, cudaStream_t stream);

// GELU, tanh approximation, in fp32 or bf16 (computed in fp32).
void gelu(const float* in, float* out, int n, cudaStream_t stream);
void gelu(const __nv_bfloat16* in, __nv_bfloat16* out, int n, cudaStream_t stream);

// Keeps the positive values of each chunk of 256 inputs, in order:
// out[256 * b + i] for i < counts[b] are those of chunk b.
void compact_positive(const float* in, int n, float* out, int* counts, cudaStream_t stream);

}  // namespace emu_sample
