// Conversions between storage types (layers/cast.cuh). One thread per element; in, out (n).
//   cast:             out = in, to nearest even when narrowing (float -> bf16)
//   cast_stochastic:  out = round_stochastic(in, seed, i), unbiased (layers/cast.cuh)
#include "layers/cast.cuh"

#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;

template <class Dst, class Src>
__global__ void cast_kernel(Dst* out, const Src* in, size_t n) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = from_float<Dst>(to_float(in[i]));
}

template <class S>
__global__ void cast_stochastic_kernel(S* out, const float* in, size_t n, uint64_t seed) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = round_stochastic<S>(in[i], seed, i);
}

unsigned blocks_for(size_t n) { return unsigned(ceil_div<size_t>(n, kBlock)); }

}  // namespace

template <class Dst, class Src>
void cast(Dst* out, const Src* in, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(cast_kernel<Dst, Src>, blocks_for(n), kBlock, 0, stream, out, in, n);
}

template <class S>
void cast_stochastic(S* out, const float* in, size_t n, uint64_t seed, cudaStream_t stream) {
    if (n == 0) return;
    launch_kernel(cast_stochastic_kernel<S>, blocks_for(n), kBlock, 0, stream, out, in, n, seed);
}

template void cast<__nv_bfloat16, float>(__nv_bfloat16*, const float*, size_t, cudaStream_t);
template void cast<float, __nv_bfloat16>(float*, const __nv_bfloat16*, size_t, cudaStream_t);
template void cast<float, float>(float*, const float*, size_t, cudaStream_t);
template void cast_stochastic<__nv_bfloat16>(__nv_bfloat16*, const float*, size_t, uint64_t, cudaStream_t);
template void cast_stochastic<float>(float*, const float*, size_t, uint64_t, cudaStream_t);

}  // namespace rkv::cuda
