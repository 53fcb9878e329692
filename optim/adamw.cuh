// AdamW and the global gradient norm on the GPU: the kernels of ref/adamw.h.
// All pointers are device memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/compat.cuh"
#include "ref/adamw.h"

namespace rkv::cuda {

// One AdamW step over n parameters (ref/adamw.h's AdamWArgs): grad, m, v, master (n) float,
// param (n) of the storage type S. The weights are master's when it is not null, else param's;
// they are updated exactly as ref::adamw_update updates a float param. param gets the new
// weights rounded to S, stochastically for bf16: element i as cast_stochastic (layers/cast.cuh)
// rounds it with a.seed, so the rounding is unbiased, the same on every run, and new with a new
// seed. With S = float and master null this is ref::adamw_update on param.
template <class S>
void adamw_update(const AdamWArgs<S, float>& a, cudaStream_t stream);

// sum(grads^2) over n elements, summed in a fixed order (the same on every run);
// synchronizes the stream to return it.
double grad_norm_sq(const float* grads, size_t n, cudaStream_t stream);

}  // namespace rkv::cuda
