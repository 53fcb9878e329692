// The weight (and bias) gradients of LayerNorm and RMSNorm, summed over rows in a fixed
// order (no float atomics), shared by layers/layernorm.cu and layers/rmsnorm.cu:
//   dw[c] += sum_n dout[n, c] * xhat[n, c],   db[c] += sum_n dout[n, c]
// with xhat = (inp - mean[n]) * rstd[n], or inp * rstd[n] when mean is null (RMSNorm).
//   dout, inp (N, C); mean, rstd (N); dw, db (C), db may be null.
//
// Two stages. First, the rows are cut into G chunks of kRowsPerChunk; block (j, g)
// sums chunk g for 32 columns from j*32, its 32 x 8 threads each taking every 8th row
// and then adding their 8 partial sums in order, into partials (G, C) in scratch.
// Second, one thread per column adds its G partials in order. Both orders depend only
// on N and C, so the result is the same on every run.
#pragma once

#include <algorithm>

#include "layers/common.cuh"

namespace rkv::cuda {

namespace norm_grad {

constexpr int kCols = 32, kRowThreads = 8, kRowsPerChunk = 256;

template <class T>
__global__ void partials_kernel(float* pdw, float* pdb, const T* dout, const T* inp, const T* mean, const T* rstd,
                                int N, int C, int rows_per_chunk) {
    __shared__ float sdw[kRowThreads][kCols], sdb[kRowThreads][kCols];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * kCols + tx, g = blockIdx.y;
    const int row_end = min(N, (g + 1) * rows_per_chunk);
    float dw = 0.0f, db = 0.0f;
    if (c < C)
        for (int n = g * rows_per_chunk + ty; n < row_end; n += kRowThreads) {
            const float d = to_float(dout[size_t(n) * C + c]);
            const float x = to_float(inp[size_t(n) * C + c]);
            const float xhat = (mean ? x - to_float(mean[n]) : x) * to_float(rstd[n]);
            dw += d * xhat;
            db += d;
        }
    sdw[ty][tx] = dw;
    sdb[ty][tx] = db;
    __syncthreads();
    if (ty == 0 && c < C) {
        for (int r = 1; r < kRowThreads; r++) {
            dw += sdw[r][tx];
            db += sdb[r][tx];
        }
        pdw[size_t(g) * C + c] = dw;
        if (pdb) pdb[size_t(g) * C + c] = db;
    }
}

template <class T>
__global__ void finish_kernel(T* dw, T* db, const float* pdw, const float* pdb, int G, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int g = 0; g < G; g++) {
        sw += pdw[size_t(g) * C + c];
        if (db) sb += pdb[size_t(g) * C + c];
    }
    dw[c] = from_float<T>(to_float(dw[c]) + sw);
    if (db) db[c] = from_float<T>(to_float(db[c]) + sb);
}

}  // namespace norm_grad

template <class T>
void norm_weight_grad(T* dw, T* db, const T* dout, const T* inp, const T* mean, const T* rstd, int N, int C,
                      cudaStream_t stream) {
    using namespace norm_grad;
    // Grid y is limited to 65535 chunks: longer chunks for (very) many rows.
    const int rows_per_chunk = std::max(kRowsPerChunk, ceil_div(N, 65535));
    const int G = ceil_div(N, rows_per_chunk);
    StreamScratch<float> partials(size_t(db ? 2 : 1) * G * C, stream);
    float* pdw = partials.get();
    float* pdb = db ? pdw + size_t(G) * C : nullptr;
    launch_kernel(partials_kernel<T>, dim3(ceil_div(C, kCols), G), dim3(kCols, kRowThreads), 0, stream, pdw, pdb,
                  dout, inp, mean, rstd, N, C, rows_per_chunk);
    launch_kernel(finish_kernel<T>, ceil_div(C, 256), 256, 0, stream, dw, db, pdw, pdb, G, C);
}

}  // namespace rkv::cuda
