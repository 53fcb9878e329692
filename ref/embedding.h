// Token embedding plus, for learned positions, the position embedding.
//   tokens (B, T), wte (V, C), wpe (maxT, C) or null, out (B, T, C)
#pragma once
#include <cstddef>

namespace rkv::ref {

template <class T>
void embedding_forward(T* out, const int* tokens, const T* wte, const T* wpe, int B, int Tn, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tn; t++) {
            T* o = out + (size_t(b) * Tn + t) * C;
            const T* e = wte + size_t(tokens[b * Tn + t]) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + (wpe ? wpe[size_t(t) * C + i] : T(0));
        }
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int* tokens, int B, int Tn, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tn; t++) {
            const T* d = dout + (size_t(b) * Tn + t) * C;
            T* de = dwte + size_t(tokens[b * Tn + t]) * C;
            for (int i = 0; i < C; i++) {
                de[i] += d[i];
                if (dwpe) dwpe[size_t(t) * C + i] += d[i];
            }
        }
}

}  // namespace rkv::ref
