// RMSNorm over the last dimension: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), x = inp,
// or inp + residual stored to resid_out (the arguments: ref/norm_args.h).
//   inp, out (N, C), w (C), rstd (N)
// QK-norm is this same function over rows of one head: N = B * T * NH, C = HS.
#pragma once
#include <cmath>
#include <cstddef>

#include "ref/norm_args.h"
#include "ref/residual.h"

namespace rkv::ref {

template <class T>
void rmsnorm_forward(const NormArgs<T, T>& a) {
    const int N = a.N, C = a.C;
    const T* inp = norm_input(a);
    const T* w = a.w;
    T *out = a.out, *rstd = a.rstd;
    for (int n = 0; n < N; n++) {
        const T* x = inp + size_t(n) * C;
        T ms = 0;
        for (int i = 0; i < C; i++) ms += x[i] * x[i];
        ms /= C;
        const T s = T(1) / std::sqrt(ms + T(a.eps));
        T* o = out + size_t(n) * C;
        for (int i = 0; i < C; i++) o[i] = x[i] * s * w[i];
        rstd[n] = s;
    }
}

// With xhat = x * rstd and g = dout * w:  dx = rstd * (g - xhat * mean(g * xhat))
template <class T>
void rmsnorm_backward(const NormArgs<T, T>& a) {
    const int N = a.N, C = a.C;
    const T *dout = a.dout, *inp = a.inp, *w = a.w, *rstd = a.rstd;
    T *dinp = a.dinp, *dw = a.dw;
    for (int n = 0; n < N; n++) {
        const T* x = inp + size_t(n) * C;
        const T* d = dout + size_t(n) * C;
        T gx_mean = 0;
        for (int i = 0; i < C; i++) gx_mean += d[i] * w[i] * x[i] * rstd[n];
        gx_mean /= C;
        T* dx = dinp + size_t(n) * C;
        for (int i = 0; i < C; i++) {
            const T xhat = x[i] * rstd[n];
            dw[i] += d[i] * xhat;
            dx[i] += rstd[n] * (d[i] * w[i] - xhat * gx_mean);
        }
    }
}

}  // namespace rkv::ref
