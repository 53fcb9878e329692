// Residual add: out = a + b, all (N). Backward sends dout to both branches.
#pragma once
#include <cstddef>

namespace rkv::ref {

template <class T>
void residual_forward(T* out, const T* a, const T* b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

template <class T>
void residual_backward(T* da, T* db, const T* dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

}  // namespace rkv::ref
