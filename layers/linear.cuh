// Linear layer on the GPU: out = inp W^T + b (torch.nn.Linear), GEMMs through cuBLASLt with
// the bias and GELU fused into their epilogues. The CPU reference is ref/linear.h.
// The arguments: ref/linear_args.h, LinearArgs<S, float>.
//   inp, dinp, inp_pre (N, C); weight (OC, C); bias (OC) or null; out, pre, dout (N, OC)
// out and dout in linear_forward and linear_backward have their rows ld >= OC elements apart:
// a stride padded past OC lets every row start 16-byte aligned whatever OC is (the head's
// vocabulary, GPT-2's 50257), which cuBLASLt's fast kernels need. Columns past OC are never
// read or written.
// Storage S (float or __nv_bfloat16, layers/common.cuh) for activations and weights; the
// parameter gradients dweight (OC, C) and dbias (OC) are float. The backward adds to them (+=)
// and writes dinp (or adds to it, on request).
// All pointers are device memory. Any shape is accepted: cuBLASLt is asked for an algorithm that
// fits the pointers' and rows' actual alignment (fastest when C and OC are multiples of 8 and the
// pointers 16-byte aligned), and a GEMM it has none for throws, naming its shape. An epilogue it
// has none for runs as small kernels after the plain GEMM instead.
#pragma once

#include "cuda/compat.cuh"
#include "layers/linear_workspace.h"
#include "ref/linear_args.h"

namespace rkv::cuda {

// Whether GEMMs fuse the bias, GELU and bias gradient into cuBLASLt epilogues (the default)
// or run them as kernels of their own (tests check both; benchmarks may compare them).
void set_linear_epilogues(bool on);

// out = inp W^T + bias.
template <class S>
void linear_forward(const LinearArgs<S, float>& a, cudaStream_t stream);
// pre = inp W^T + bias (kept for the GELU backward), out = GELU(pre), tanh approximation; rows OC apart.
template <class S>
void linear_gelu_forward(const LinearArgs<S, float>& a, cudaStream_t stream);
// dinp = dout W (+= with accumulate_dinp), dweight += dout^T inp, dbias += column sums of dout;
// each skipped when null. dbias needs dweight: it comes out of the weight-gradient GEMM.
template <class S>
void linear_backward(const LinearArgs<S, float>& a, cudaStream_t stream);
// The backward of a linear layer whose input was GELU(inp_pre), inp_pre (N, C): dinp = (dout W) *
// GELU'(inp_pre), written (the GELU's backward fused into the GEMM); dweight, dbias as
// linear_backward; rows OC apart.
template <class S>
void linear_gelu_backward(const LinearArgs<S, float>& a, cudaStream_t stream);

}  // namespace rkv::cuda
