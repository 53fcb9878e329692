// AdamW and the global gradient norm on the GPU: the kernels of ref/adamw.h.
// All pointers are device memory.
#pragma once

#include <cstddef>

#include "cuda/compat.cuh"
#include "ref/adamw.h"

namespace rkv::cuda {

// One AdamW step over n parameters, exactly ref::adamw_update: param, m, v updated in place.
void adamw_update(float* param, const float* grad, float* m, float* v, size_t n, const ref::AdamWStep& s,
                  cudaStream_t stream);

// sum(grads^2) over n elements, summed in a fixed order (the same on every run);
// synchronizes the stream to return it.
double grad_norm_sq(const float* grads, size_t n, cudaStream_t stream);

}  // namespace rkv::cuda
