// Token (+ learned position) embedding on the GPU: the kernels of ref/embedding.h.
//   tokens (B, T), wte (V, C), wpe (maxT, C) or null, out/dout (B, T, C)
// All pointers are device memory.
#pragma once

#include "cuda/compat.cuh"

namespace rkv::cuda {

// out (B,T,C) = wte[tokens] (+ wpe[t] when wpe is not null)
void embedding_forward(float* out, const int* tokens, const float* wte, const float* wpe, int B, int Tn, int C,
                       cudaStream_t stream);
// dwte += scatter of dout by token; dwpe (when not null) += dout summed over the batch.
// Deterministic; synchronizes the stream (it reads the tokens back to the host).
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int* tokens, int B, int Tn, int C,
                        cudaStream_t stream);

}  // namespace rkv::cuda
