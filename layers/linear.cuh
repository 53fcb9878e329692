// Linear layer on the GPU: out = inp W^T + b (torch.nn.Linear), GEMMs through cuBLAS.
//   inp (N, C), weight (OC, C), bias (OC) or null, out (N, OC); backward accumulates (+=).
// The CPU reference is ref/linear.h.
#pragma once
#include "cuda/compat.cuh"

namespace rkv::cuda {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC,
                    cudaStream_t stream);
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, cudaStream_t stream);

}  // namespace rkv::cuda
