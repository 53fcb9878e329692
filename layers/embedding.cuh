// Token (+ learned position) embedding on the GPU: the kernels of ref/embedding.h.
// The arguments: ref/embedding.h's EmbeddingArgs<T, float>.
//   tokens (B, T); wte (V, C), wpe (T, C) or null, out, dout (B, T, C) of the storage
//   type T; dwte, dwpe in float, as every parameter gradient (layers/common.cuh)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"
#include "ref/embedding.h"

namespace rkv::cuda {

// out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null)
template <class T>
void embedding_forward(const EmbeddingArgs<T, float>& a, cudaStream_t stream);
// dwte += scatter of dout by token; dwpe (when not null) += dout summed over the batch.
// Deterministic; synchronizes the stream (it reads the tokens back to the host).
template <class T>
void embedding_backward(const EmbeddingArgs<T, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
