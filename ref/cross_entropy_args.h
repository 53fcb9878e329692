// Apart from the CPU reference (ref/cross_entropy.h), so that the kernels include the struct
// without the reference's OpenMP pragmas.
#pragma once

namespace rkv {

// The arguments of the cross-entropy and the fused classifier, one struct carried unchanged from
// the model driver (src/model.h) through LayerOps (src/layer_ops.h) to ref/ and the kernels, as
// ref/attention_args.h for attention. S is the storage type of the logits, M that of the losses
// (float for bf16 storage); pointers are in the implementation's memory. N = B * T rows, rows of
// logits and dlogits ld >= V elements apart (0: V), as the head writes them (ref/linear_args.h);
// columns past V are never read or written. The fused classifier works in place: dlogits holds the
// logits on entry and their gradient on return (logits is not read).
template <class S, class M>
struct CrossEntropyArgs {
    int N = 0, V = 0;
    int ld = 0;                    // logits' and dlogits' row stride; 0: V
    const S* logits = nullptr;     // (N, V), rows ld apart
    const int* targets = nullptr;  // (N), -1 skipped
    M* losses = nullptr;           // (N)
    // The backward's.
    M dloss = 0;
    S* dlogits = nullptr;  // (N, V), rows ld apart
    int row_stride() const { return ld ? ld : V; }
};

}  // namespace rkv
