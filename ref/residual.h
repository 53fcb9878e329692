// Residual add: out = a + b, all (N). Backward sends dout to both branches.
#pragma once
#include <cstddef>

#include "ref/norm_args.h"

namespace rkv::ref {

template <class S>
void residual_forward(S* out, const S* a, const S* b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

template <class S>
void residual_backward(S* da, S* db, const S* dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

// The rows a norm reads (ref/norm_args.h): inp, or with a residual, resid_out = inp + residual.
template <class S>
const S* norm_input(const NormArgs<S, S>& a) {
    if (!a.residual) return a.inp;
    residual_forward(a.resid_out, a.inp, a.residual, size_t(a.N) * a.C);
    return a.resid_out;
}

}  // namespace rkv::ref
