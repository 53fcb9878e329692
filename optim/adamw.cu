// AdamW update and sum of squared gradients (ref/adamw.h).
//   grad, m, v, master (n) float; param (n) of the storage type T
//   g = grad * grad_scale;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * ((m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p)
//   p is master when there is one (then param = p rounded stochastically), else param.
// The step's constants are rounded to float on the host exactly where ref rounds them,
// so the float update is ref's operation for operation.
//
// The gradient norm must not depend on scheduling: a fixed grid of kNormBlocks blocks
// strides over the gradients, each thread summing its elements in double, each block
// reducing its threads in a fixed tree into partials (kNormBlocks); one more block sums
// the partials the same way.
#include "optim/adamw.cuh"

#include <cmath>

#include "layers/cast.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kNormBlocks = 256;  // == kBlock: the final block takes one partial per thread

struct AdamWConstants {
    float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, c1, c2, eps, weight_decay, grad_scale;
};

template <class T>
__global__ void adamw_kernel(T* param, float* master, const float* grad, float* m, float* v, size_t n,
                             AdamWConstants k, uint64_t seed) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float g = grad[i] * k.grad_scale;
    const float mi = k.beta1 * m[i] + k.one_minus_beta1 * g;
    const float vi = k.beta2 * v[i] + k.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / k.c1, vhat = vi / k.c2;
    const float p = master ? master[i] : to_float(param[i]);
    const float p_new = p - k.lr * (mhat / (sqrtf(vhat) + k.eps) + k.weight_decay * p);
    if (master) master[i] = p_new;
    param[i] = round_stochastic<T>(p_new, seed, i);
}

__global__ void sum_squares_kernel(double* partials, const float* x, size_t n) {
    double acc = 0.0;
    const size_t stride = size_t(gridDim.x) * blockDim.x;
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double xi = x[i];
        acc += xi * xi;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(double* out, const double* partials) {
    const double total = block_sum(partials[threadIdx.x]);
    if (threadIdx.x == 0) *out = total;
}

}  // namespace

template <class T>
void adamw_update(T* param, float* master, const float* grad, float* m, float* v, size_t n, const ref::AdamWStep& s,
                  uint64_t seed, cudaStream_t stream) {
    if (n == 0) return;
    const AdamWConstants k{float(s.lr),
                           float(s.beta1),
                           float(1 - s.beta1),
                           float(s.beta2),
                           float(1 - s.beta2),
                           float(1.0 - std::pow(s.beta1, double(s.t))),
                           float(1.0 - std::pow(s.beta2, double(s.t))),
                           float(s.eps),
                           float(s.weight_decay),
                           float(s.grad_scale)};
    launch_kernel(adamw_kernel<T>, unsigned(ceil_div<size_t>(n, kBlock)), kBlock, 0, stream, param, master, grad, m,
                  v, n, k, seed);
}

template void adamw_update<float>(float*, float*, const float*, float*, float*, size_t, const ref::AdamWStep&,
                                  uint64_t, cudaStream_t);
template void adamw_update<__nv_bfloat16>(__nv_bfloat16*, float*, const float*, float*, float*, size_t,
                                          const ref::AdamWStep&, uint64_t, cudaStream_t);

double grad_norm_sq(const float* grads, size_t n, cudaStream_t stream) {
    if (n == 0) return 0.0;
    StreamScratch<double> scratch(kNormBlocks + 1, stream);  // partials, then the total
    double* partials = scratch.get();
    double* total = partials + kNormBlocks;
    launch_kernel(sum_squares_kernel, kNormBlocks, kBlock, 0, stream, partials, grads, n);
    launch_kernel(sum_partials_kernel, 1, kNormBlocks, 0, stream, total, partials);
    double result = 0.0;
    cuda_check(cudaMemcpyAsync(&result, total, sizeof(double), cudaMemcpyDeviceToHost, stream));
    cuda_check(cudaStreamSynchronize(stream));
    return result;
}

}  // namespace rkv::cuda
