// Token (+ learned position) embedding on the GPU: the kernels of ref/embedding.h.
//   tokens (B, T); wte (V, C), wpe (maxT, C) or null, out, dout (B, T, C) of the storage
//   type T; dwte, dwpe in float, as every parameter gradient (layers/common.cuh)
// All pointers are device memory.
#pragma once

#include <type_traits>

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null)
// (wpe's type is not deduced, so that it may be a plain nullptr.)
template <class T>
void embedding_forward(T* out, const int* tokens, const T* wte, const std::type_identity_t<T>* wpe, int B, int Tn,
                       int C, cudaStream_t stream);
// dwte += scatter of dout by token; dwpe (when not null) += dout summed over the batch.
// Deterministic; synchronizes the stream (it reads the tokens back to the host).
template <class T>
void embedding_backward(float* dwte, float* dwpe, const T* dout, const int* tokens, int B, int Tn, int C,
                        cudaStream_t stream);

}  // namespace rkv::cuda
