// Softmax cross-entropy on the GPU: the kernels of ref/cross_entropy.h.
//   logits, dlogits (N, V); targets, losses (N); target -1 is skipped.
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// losses[n] = -log softmax(logits[n])[targets[n]], 0 where skipped.
void cross_entropy_forward(float* losses, const float* logits, const int* targets, int N, int V,
                           cudaStream_t stream);
// dlogits[n] += (softmax(logits[n]) - onehot(targets[n])) * dloss, nothing where skipped.
void cross_entropy_backward(float* dlogits, const float* logits, const int* targets, float dloss, int N, int V,
                            cudaStream_t stream);

}  // namespace rkv::cuda
