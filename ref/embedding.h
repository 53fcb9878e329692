// Token embedding plus, for learned positions, the position embedding.
//   tokens (B, T), wte (V, C), wpe (T, C) or null, out (B, T, C)
#pragma once
#include <cstddef>

namespace rkv {

// The arguments of the embedding, forward and backward, one struct carried unchanged from the
// model driver (src/model.h) through LayerOps (src/layer_ops.h) to ref/ and the kernels, as
// ref/attention_args.h for attention. S is the storage type, M that of the parameter gradients
// (float for bf16 storage); pointers are in the implementation's memory. wpe and dwpe start at
// the first position embedded (pos0 in inference), and are null without learned positions.
template <class S, class M>
struct EmbeddingArgs {
    int B = 0, T = 0, C = 0;
    const int* tokens = nullptr;  // (B, T)
    const S* wte = nullptr;       // (V, C)
    const S* wpe = nullptr;       // (T, C), or null
    S* out = nullptr;             // (B, T, C)
    // The backward's.
    const S* dout = nullptr;  // (B, T, C)
    M* dwte = nullptr;        // (V, C)
    M* dwpe = nullptr;        // (T, C), or null
};

}  // namespace rkv

namespace rkv::ref {

template <class S>
void embedding_forward(const EmbeddingArgs<S, S>& a) {
    const int B = a.B, T = a.T, C = a.C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            S* o = a.out + (size_t(b) * T + t) * C;
            const S* e = a.wte + size_t(a.tokens[b * T + t]) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + (a.wpe ? a.wpe[size_t(t) * C + i] : S(0));
        }
}

template <class S>
void embedding_backward(const EmbeddingArgs<S, S>& a) {
    const int B = a.B, T = a.T, C = a.C;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const S* d = a.dout + (size_t(b) * T + t) * C;
            S* de = a.dwte + size_t(a.tokens[b * T + t]) * C;
            for (int i = 0; i < C; i++) {
                de[i] += d[i];
                if (a.dwpe) a.dwpe[size_t(t) * C + i] += d[i];
            }
        }
}

}  // namespace rkv::ref
