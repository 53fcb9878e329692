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

template <class S>
void rmsnorm_forward(const NormArgs<S, S>& a) {
    const int N = a.N, C = a.C;
    const S* inp = norm_input(a);
    const S* w = a.w;
    S *out = a.out, *rstd = a.rstd;
    for (int n = 0; n < N; n++) {
        const S* x = inp + size_t(n) * C;
        S ms = 0;
        for (int i = 0; i < C; i++) ms += x[i] * x[i];
        ms /= C;
        const S s = S(1) / std::sqrt(ms + S(a.eps));
        S* o = out + size_t(n) * C;
        for (int i = 0; i < C; i++) o[i] = x[i] * s * w[i];
        rstd[n] = s;
    }
}

// With xhat = x * rstd and g = dout * w:  dx = rstd * (g - xhat * mean(g * xhat))
template <class S>
void rmsnorm_backward(const NormArgs<S, S>& a) {
    const int N = a.N, C = a.C;
    const S *dout = a.dout, *inp = a.inp, *w = a.w, *rstd = a.rstd;
    S *dinp = a.dinp, *dw = a.dw;
    for (int n = 0; n < N; n++) {
        const S* x = inp + size_t(n) * C;
        const S* d = dout + size_t(n) * C;
        S gx_mean = 0;
        for (int i = 0; i < C; i++) gx_mean += d[i] * w[i] * x[i] * rstd[n];
        gx_mean /= C;
        S* dx = dinp + size_t(n) * C;
        for (int i = 0; i < C; i++) {
            const S xhat = x[i] * rstd[n];
            dw[i] += d[i] * xhat;
            dx[i] += rstd[n] * (d[i] * w[i] - xhat * gx_mean);
        }
    }
}

}  // namespace rkv::ref
