// Sample kernels exercising barriers, warp shuffles and votes, static and
// dynamic shared memory, atomics, templates, bf16 and the math intrinsics.
#include "tests/emu/sample_kernels.h"

#include <cmath>

namespace emu_sample {
namespace {

constexpr unsigned kFull = 0xffffffffu;

struct Max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Sum {
    __device__ float operator()(float a, float b) const { return a + b; }
};

// Reduces v over the block (blockDim.x a multiple of 32); every thread gets
// the result. `scratch` holds one float per warp.
template <class Op>
__device__ float block_reduce(float v, float* scratch, Op op) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(kFull, v, offset));
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
    for (unsigned w = 1; w < warps; ++w) v = op(v, scratch[w]);
    __syncthreads();  // scratch is reused by the next call
    return v;
}

// One block per row; the row is staged in dynamic shared memory.
__global__ void softmax_rows_kernel(const float* __restrict__ in, float* __restrict__ out, int cols) {
    __shared__ float scratch[32];
    float* row = rkv::dynamic_smem<float>();
    const float* x = in + static_cast<size_t>(blockIdx.x) * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        row[c] = __ldg(x + c);
        m = fmaxf(m, row[c]);
    }
    m = block_reduce(m, scratch, Max{});
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        row[c] = __expf(row[c] - m);
        s += row[c];
    }
    s = block_reduce(s, scratch, Sum{});
    float* y = out + static_cast<size_t>(blockIdx.x) * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[c] = __fdividef(row[c], s);
}

// Counts in shared memory first, so global atomics are one per bin per block.
__global__ void histogram_kernel(const int* values, int n, unsigned* bins) {
    __shared__ unsigned local[64];
    for (unsigned b = threadIdx.x; b < 64; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[values[i] % 64], 1u);
    __syncthreads();
    for (unsigned b = threadIdx.x; b < 64; b += blockDim.x)
        if (local[b]) atomicAdd(&bins[b], local[b]);
}

__device__ float to_float(float x) { return x; }
__device__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class S>
__device__ S from_float(float x);
template <>
__device__ float from_float<float>(float x) {
    return x;
}
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}

template <class S>
__global__ void gelu_kernel(const S* in, S* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float x = to_float(in[i]);
    const float inner = 0.7978845608f * (x + 0.044715f * x * x * x);
    out[i] = from_float<S>(0.5f * x * (1.0f + tanhf(inner)));
}

// Stream compaction of one 256-element chunk per block: each warp ballots
// its positives, lanes find their slot by popcount, warps by a shared scan.
__global__ void compact_kernel(const float* in, int n, float* out, int* counts) {
    __shared__ int warp_offset[8];
    const int i = blockIdx.x * 256 + threadIdx.x;
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const float v = i < n ? in[i] : 0.0f;
    const bool keep = v > 0.0f;
    const unsigned votes = __ballot_sync(kFull, keep);
    if (lane == 0) warp_offset[warp] = __popc(votes);
    const int total = __syncthreads_count(keep);
    if (threadIdx.x == 0) {
        int sum = 0;
        for (int w = 0; w < 8; ++w) {
            const int c = warp_offset[w];
            warp_offset[w] = sum;
            sum += c;
        }
    }
    __syncthreads();
    if (keep) out[blockIdx.x * 256 + warp_offset[warp] + __popc(votes & ((1u << lane) - 1))] = v;
    if (threadIdx.x == 0) counts[blockIdx.x] = total;
}

}  // namespace

void softmax_rows(const float* in, float* out, int rows, int cols, cudaStream_t stream) {
    const size_t smem = static_cast<size_t>(cols) * sizeof(float);
    if (smem > 48 * 1024)
        rkv::cuda_check(cudaFuncSetAttribute(softmax_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
    rkv::launch_kernel(softmax_rows_kernel, rows, 256, smem, stream, in, out, cols);
}

void histogram(const int* values, int n, unsigned* bins, cudaStream_t stream) {
    rkv::launch_kernel(histogram_kernel, 8, 128, 0, stream, values, n, bins);
}

void gelu(const float* in, float* out, int n, cudaStream_t stream) {
    rkv::launch_kernel(gelu_kernel<float>, (n + 127) / 128, 128, 0, stream, in, out, n);
}

void gelu(const __nv_bfloat16* in, __nv_bfloat16* out, int n, cudaStream_t stream) {
    rkv::launch_kernel(gelu_kernel<__nv_bfloat16>, (n + 127) / 128, 128, 0, stream, in, out, n);
}

void compact_positive(const float* in, int n, float* out, int* counts, cudaStream_t stream) {
    rkv::launch_kernel(compact_kernel, (n + 255) / 256, 256, 0, stream, in, n, out, counts);
}

}  // namespace emu_sample
