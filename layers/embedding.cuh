// Token (+ learned position) embedding on the GPU: the kernels of ref/embedding.h.
// The arguments: ref/embedding.h's EmbeddingArgs<S, float>.
//   tokens (B, T); wte (V, C), wpe (T, C) or null, out, dout (B, T, C) of the storage
//   type S; dwte, dwpe in float, as every parameter gradient (layers/common.cuh)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/embedding.h"

namespace rkv::cuda {

// out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null)
template <class S>
void embedding_forward(const EmbeddingArgs<S, float>& a, cudaStream_t stream);
// dwte += scatter of dout by token; dwpe (when not null) += dout summed over the batch.
// Deterministic; synchronizes the stream (it reads the tokens back to the host).
template <class S>
void embedding_backward(const EmbeddingArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
