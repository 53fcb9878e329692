// The arguments of the linear layers (ref/linear.h; layers/linear.cu), forward and backward, one
// struct carried unchanged from the model driver (src/model.h) through LayerOps (src/layer_ops.h)
// to ref/ and the kernels, as ref/attention_args.h for attention. The head (logits = inp W^T) is
// one too, with OC = V and no bias.
//
// S is the storage type of the activations and weights; M that of the parameter gradients
// (float for bf16 storage, master_t in src/layer_ops.h). Pointers are in the implementation's
// memory (host for ref/, device for the kernels).
#pragma once

namespace rkv {

// out (N, OC) = inp (N, C) weight (OC, C)^T + bias, N = B * T rows. out's and dout's rows are
// ld >= OC elements apart (0: OC): the head pads the logits' rows past V (GPT-2's 50257) so that
// each starts 16-byte aligned, as the GPU's fast GEMMs need; columns past OC are never read or
// written. The backward adds to dweight and dbias, and writes dinp or adds to it
// (accumulate_dinp: where several layers read one input, the first writes, the others add).
// The GELU fused at either side of a GEMM (the GPT-2 MLP): linear_gelu_forward keeps
// pre = inp weight^T + bias and writes out = gelu(pre); linear_gelu_backward is the backward of
// the layer after it, whose inp was gelu(inp_pre), and writes dinp as the gradient of inp_pre.
template <class S, class M>
struct LinearArgs {
    int N = 0, C = 0, OC = 0;
    int ld = 0;                  // out's and dout's row stride; 0: OC
    const S* inp = nullptr;      // (N, C)
    const S* weight = nullptr;   // (OC, C)
    const S* bias = nullptr;     // (OC), or null
    S* out = nullptr;            // (N, OC), rows ld apart
    S* pre = nullptr;            // (N, OC): linear_gelu_forward's GEMM output before the GELU
    const S* inp_pre = nullptr;  // (N, C): linear_gelu_backward's inp before the GELU
    // The backward's.
    const S* dout = nullptr;       // (N, OC), rows ld apart
    S* dinp = nullptr;             // (N, C), or null
    bool accumulate_dinp = false;  // add to dinp instead of writing it
    M* dweight = nullptr;          // (OC, C), or null
    M* dbias = nullptr;            // (OC), or null
    int row_stride() const { return ld ? ld : OC; }
};

}  // namespace rkv
