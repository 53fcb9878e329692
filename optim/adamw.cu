// AdamW update and sum of squared gradients (ref/adamw.h).
//   grad, m, v, master (n) float; param (n) of the storage type S
//   g = grad * grad_scale;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr * ((m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p)
//   p is master when there is one (then param = p rounded stochastically), else param.
// The step's constants are rounded to float on the host exactly where ref rounds them,
// so the float update is ref's operation for operation.
//
// The update and the norm move 16-byte packs of the float arrays where n and the pointers
// allow (layers/common.cuh), else single elements.
//
// The gradient norm must not depend on scheduling: a fixed grid of kNormBlocks blocks
// strides over the gradients, each thread summing its elements in double, each block
// reducing its threads in a fixed tree into partials (kNormBlocks); one more block sums
// the partials the same way. The order depends on n and on whether packs are used.
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

// Thread t updates elements [t W, t W + W): W = kPack<float> (16 bytes of each float
// array) when n and every pointer allow it, else 1. Each element is updated on its own, so
// both give the same bits. Optimizer state, master and gradient are touched once a step:
// streaming accesses.
template <class S, int W>
__global__ void adamw_kernel(S* param, float* master, const float* grad, float* m, float* v, size_t n, AdamWConstants k,
                             uint64_t seed) {
    const size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * W;
    if (i >= n) return;  // n is a multiple of W
    const Pack<float, W> grads = load_pack_cs<W>(grad + i);
    Pack<float, W> ms = load_pack_cs<W>(m + i), vs = load_pack_cs<W>(v + i), ps;
    if (master) {
        ps = load_pack_cs<W>(master + i);
    } else {
        const Pack<S, W> params = load_pack<W>(param + i);
        for (int j = 0; j < W; j++) ps[j] = to_float(params[j]);
    }
    Pack<S, W> rounded;
    for (int j = 0; j < W; j++) {
        const float g = grads[j] * k.grad_scale;
        ms[j] = k.beta1 * ms[j] + k.one_minus_beta1 * g;
        vs[j] = k.beta2 * vs[j] + k.one_minus_beta2 * g * g;
        const float mhat = ms[j] / k.c1, vhat = vs[j] / k.c2;
        const float p = ps[j];
        ps[j] = p - k.lr * (mhat / (sqrtf(vhat) + k.eps) + k.weight_decay * p);
        rounded[j] = round_stochastic<S>(ps[j], seed, i + j);
    }
    store_pack_cs(m + i, ms);
    store_pack_cs(v + i, vs);
    if (master) store_pack_cs(master + i, ps);
    store_pack(param + i, rounded);
}

// Packs of W as adamw_kernel; the order of additions is fixed by n and W.
template <int W>
__global__ void sum_squares_kernel(double* partials, const float* x, size_t n) {
    double acc = 0.0;
    const size_t stride = size_t(gridDim.x) * blockDim.x * W;
    for (size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; i < n; i += stride) {
        const Pack<float, W> xs = load_pack<W>(x + i);  // not streaming: AdamW reads it next
        for (int j = 0; j < W; j++) {
            const double xj = xs[j];
            acc += xj * xj;
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(double* out, const double* partials) {
    const double total = block_sum(partials[threadIdx.x]);
    if (threadIdx.x == 0) *out = total;
}

}  // namespace

template <class S>
void adamw_update(const AdamWArgs<S, float>& a, cudaStream_t stream) {
    const size_t n = a.n;
    const ref::AdamWStep& s = a.step;
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
    constexpr int W = kPack<float>;
    if (whole_packs<float>(n, a.param, a.master, a.grad, a.m, a.v))
        launch_kernel(adamw_kernel<S, W>, unsigned(ceil_div<size_t>(n / W, kBlock)), kBlock, 0, stream, a.param,
                      a.master, a.grad, a.m, a.v, n, k, a.seed);
    else
        launch_kernel(adamw_kernel<S, 1>, unsigned(ceil_div<size_t>(n, kBlock)), kBlock, 0, stream, a.param, a.master,
                      a.grad, a.m, a.v, n, k, a.seed);
}

template void adamw_update<float>(const AdamWArgs<float, float>&, cudaStream_t);
template void adamw_update<__nv_bfloat16>(const AdamWArgs<__nv_bfloat16, float>&, cudaStream_t);

double grad_norm_sq(const float* grads, size_t n, cudaStream_t stream) {
    if (n == 0) return 0.0;
    StreamScratch<double> scratch(kNormBlocks + 1, stream);  // partials, then the total
    double* partials = scratch.get();
    double* total = partials + kNormBlocks;
    const auto sum_squares = whole_packs<float>(n, grads) ? sum_squares_kernel<kPack<float>> : sum_squares_kernel<1>;
    launch_kernel(sum_squares, kNormBlocks, kBlock, 0, stream, partials, grads, n);
    launch_kernel(sum_partials_kernel, 1, kNormBlocks, 0, stream, total, partials);
    double result = 0.0;
    cuda_check(cudaMemcpyAsync(&result, total, sizeof(double), cudaMemcpyDeviceToHost, stream));
    cuda_check(cudaStreamSynchronize(stream));
    return result;
}

}  // namespace rkv::cuda
