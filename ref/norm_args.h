// The arguments of the norms, LayerNorm (ref/layernorm.h) and RMSNorm (ref/rmsnorm.h), forward
// and backward, one struct carried unchanged from the model driver (src/model.h) through LayerOps
// (src/layer_ops.h) to ref/ and the kernels of layers/, as ref/attention_args.h for attention.
//
// S is the storage type of the rows and the weights; M that of the statistics and the weight
// gradients (float for bf16 storage, master_t in src/layer_ops.h). Pointers are in the
// implementation's memory (host for ref/, device for the kernels).
#pragma once

namespace rkv {

// A norm over the last dimension of N rows of C: the model's norms have N = B * T rows of C,
// QK-norm N = B * T * NH rows of C = HS (one per head). RMSNorm has no mean, bias or db.
// With residual set the forward first adds the residual stream, resid_out = inp + residual
// (stored, then read back: the bits of a separate add), and normalizes resid_out; resid_out may
// be inp or residual (in place). The backward adds to dinp, dw and db.
template <class S, class M>
struct NormArgs {
    int N = 0, C = 0;
    double eps = 0;
    const S* inp = nullptr;   // (N, C)
    const S* w = nullptr;     // (C)
    const S* bias = nullptr;  // (C), LayerNorm's
    S* out = nullptr;         // (N, C)
    M* mean = nullptr;        // (N), LayerNorm's
    M* rstd = nullptr;        // (N)
    // The forward's fused residual add: null for a plain norm.
    const S* residual = nullptr;  // (N, C)
    S* resid_out = nullptr;       // (N, C)
    // The backward's (its inp is the forward's input: resid_out for a fused forward).
    const S* dout = nullptr;  // (N, C)
    S* dinp = nullptr;        // (N, C)
    M* dw = nullptr;          // (C)
    M* db = nullptr;          // (C), LayerNorm's
};

}  // namespace rkv
