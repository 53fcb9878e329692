// What layers/layernorm.cu and layers/rmsnorm.cu share: the residual add their fused
// forward starts with, and the weight (and bias) gradients, whose second stage
// (finish_kernel) layers/qk_norm_rope.cu uses too.
//
// residual_row: one warp's row of resid_out = a + b, rounded to the storage type S; the
// norm then reads the stored row, so the fused forward gives the bits of a separate
// residual_forward followed by the norm.
//
// norm_weight_grad: the gradients summed over rows in a fixed order (no float atomics):
//   dw[c] += sum_n dout[n, c] * xhat[n, c],   db[c] += sum_n dout[n, c]
// with xhat = (inp - mean[n]) * rstd[n], or inp * rstd[n] when mean is null (RMSNorm).
//   dout, inp (N, C) of S; mean, rstd (N) and dw, db (C) in float, db may be null.
//
// Two stages. First, the rows are cut into G chunks of kRowsPerChunk; block (j, g)
// sums chunk g for 32 W columns from j*32 W, its 32 x 8 threads each taking W columns of
// every 8th row and then adding their 8 partial sums in order, into partials (G, C) in
// scratch. Second, one thread per column adds its G partials in order. Both orders depend
// only on N, C and W, so the result is the same on every run.
//
// W is the pack width (layers/common.cuh): kPack<S> where C and the pointers allow, else 1.
// residual_row gets it from the norm's forward kernel; norm_weight_grad picks its own.
#pragma once

#include <algorithm>

#include "layers/common.cuh"

namespace rkv::cuda {

// The row at offset `row` that the norm reads, as one warp sees it: a's when b is null (a
// plain norm), else resid_out's, set to a + b. A lane writes the packs lane, lane + 32, ...,
// the only ones it reads back, so no barrier is needed. a and b are read once: streaming.
template <int W, class S>
__device__ __forceinline__ const S* residual_row(S* resid_out, const S* a, const S* b, size_t row, int lane, int C) {
    if (!b) return a + row;
    S* r = resid_out + row;
    for (int i = lane * W; i < C; i += 32 * W) {
        const Pack<S, W> as = load_pack_cs<W>(a + row + i), bs = load_pack_cs<W>(b + row + i);
        Pack<S, W> x;
        for (int k = 0; k < W; k++) x[k] = from_float<S>(to_float(as[k]) + to_float(bs[k]));
        store_pack(r + i, x);
    }
    return r;
}

namespace norm_grad {

constexpr int kCols = 32, kRowThreads = 8, kRowsPerChunk = 256;

template <class S, int W>
__global__ void partials_kernel(float* pdw, float* pdb, const S* dout, const S* inp, const float* mean,
                                const float* rstd, int N, int C, int rows_per_chunk) {
    __shared__ float sdw[kRowThreads][kCols * W], sdb[kRowThreads][kCols * W];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = (blockIdx.x * kCols + tx) * W, g = blockIdx.y;  // columns [c, c + W)
    const int row_end = min(N, (g + 1) * rows_per_chunk);
    float dw[W] = {}, db[W] = {};
    if (c < C)
        for (int n = g * rows_per_chunk + ty; n < row_end; n += kRowThreads) {
            const Pack<S, W> d = load_pack<W>(dout + size_t(n) * C + c), x = load_pack<W>(inp + size_t(n) * C + c);
            for (int k = 0; k < W; k++) {
                const float xhat = (mean ? to_float(x[k]) - mean[n] : to_float(x[k])) * rstd[n];
                dw[k] += to_float(d[k]) * xhat;
                db[k] += to_float(d[k]);
            }
        }
    for (int k = 0; k < W; k++) {
        sdw[ty][tx * W + k] = dw[k];
        sdb[ty][tx * W + k] = db[k];
    }
    __syncthreads();
    if (ty == 0 && c < C)
        for (int k = 0; k < W; k++) {
            for (int r = 1; r < kRowThreads; r++) {
                dw[k] += sdw[r][tx * W + k];
                db[k] += sdb[r][tx * W + k];
            }
            pdw[size_t(g) * C + c + k] = dw[k];
            if (pdb) pdb[size_t(g) * C + c + k] = db[k];
        }
}

// static: no template, so each file that includes this header gets its own copy.
static __global__ void finish_kernel(float* dw, float* db, const float* pdw, const float* pdb, int G, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int g = 0; g < G; g++) {
        sw += pdw[size_t(g) * C + c];
        if (db) sb += pdb[size_t(g) * C + c];
    }
    dw[c] += sw;
    if (db) db[c] += sb;
}

}  // namespace norm_grad

template <class S>
void norm_weight_grad(float* dw, float* db, const S* dout, const S* inp, const float* mean, const float* rstd, int N,
                      int C, cudaStream_t stream) {
    using namespace norm_grad;
    const bool packs = whole_packs<S>(C, dout, inp);
    const int W = packs ? kPack<S> : 1;
    // A block of packs covers W times the columns: chunks a quarter as long keep enough blocks
    // to fill the GPU. Grid y is limited to 65535 chunks: longer chunks for (very) many rows.
    const int rows_per_chunk = std::max(packs ? kRowsPerChunk / 4 : kRowsPerChunk, ceil_div(N, 65535));
    const int G = ceil_div(N, rows_per_chunk);
    StreamScratch<float> partials(size_t(db ? 2 : 1) * G * C, stream);
    float* pdw = partials.get();
    float* pdb = db ? pdw + size_t(G) * C : nullptr;
    launch_kernel(packs ? partials_kernel<S, kPack<S>> : partials_kernel<S, 1>, dim3(ceil_div(C, kCols * W), G),
                  dim3(kCols, kRowThreads), 0, stream, pdw, pdb, dout, inp, mean, rstd, N, C, rows_per_chunk);
    launch_kernel(finish_kernel, ceil_div(C, 256), 256, 0, stream, dw, db, pdw, pdb, G, C);
}

}  // namespace rkv::cuda
