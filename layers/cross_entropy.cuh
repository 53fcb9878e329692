// Softmax cross-entropy on the GPU: the kernels of ref/cross_entropy.h, and the fused classifier
// that turns the logits into their gradient in place.
//   logits, dlogits (N, V), rows ld >= V apart (the columns past V are never touched), of the
//   storage type T (float or __nv_bfloat16, layers/common.cuh);
//   targets (N); losses (N) float. Target -1 is skipped. All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// losses[n] = -log softmax(logits[n])[targets[n]], 0 where skipped.
template <class T>
void cross_entropy_forward(float* losses, const T* logits, const int* targets, int N, int V, int ld,
                           cudaStream_t stream);
// dlogits[n] += (softmax(logits[n]) - onehot(targets[n])) * dloss, nothing where skipped.
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int* targets, float dloss, int N, int V, int ld,
                            cudaStream_t stream);
// Both in one: losses as cross_entropy_forward, and each logits row overwritten with
// (softmax - onehot(target)) * dloss (not accumulated); skipped rows get loss 0 and dlogits 0.
template <class T>
void fused_classifier(T* logits_dlogits, float* losses, const int* targets, float dloss, int N, int V, int ld,
                      cudaStream_t stream);

}  // namespace rkv::cuda
