// Softmax cross-entropy on the GPU: the kernels of ref/cross_entropy.h, and the fused classifier
// that turns the logits into their gradient in place. The arguments: ref/cross_entropy.h's
// CrossEntropyArgs<S, float>.
//   logits, dlogits (N, V), rows ld >= V apart (the columns past V are never touched), of the
//   storage type S (float or __nv_bfloat16, layers/common.cuh);
//   targets (N); losses (N) float. Target -1 is skipped. All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/cross_entropy_args.h"

namespace rkv::cuda {

// losses[n] = -log softmax(logits[n])[targets[n]], 0 where skipped.
template <class S>
void cross_entropy_forward(const CrossEntropyArgs<S, float>& a, cudaStream_t stream);
// dlogits[n] += (softmax(logits[n]) - onehot(targets[n])) * dloss, nothing where skipped.
template <class S>
void cross_entropy_backward(const CrossEntropyArgs<S, float>& a, cudaStream_t stream);
// Both in one: losses as cross_entropy_forward, and each row of dlogits, the logits on entry,
// overwritten with (softmax - onehot(target)) * dloss (not accumulated); skipped rows get loss
// 0 and dlogits 0.
template <class S>
void fused_classifier(const CrossEntropyArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
