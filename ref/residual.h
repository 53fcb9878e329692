// Residual add: out = a + b, all (N). Backward sends dout to both branches.
#pragma once
#include <cstddef>

#include "ref/norm_args.h"

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

// The rows a norm reads (ref/norm_args.h): inp, or with a residual, resid_out = inp + residual.
template <class T>
const T* norm_input(const NormArgs<T, T>& a) {
    if (!a.residual) return a.inp;
    residual_forward(a.resid_out, a.inp, a.residual, size_t(a.N) * a.C);
    return a.resid_out;
}

}  // namespace rkv::ref
