// LayerNorm over the last dimension: out = (x - mean) * rstd * w + bias, x = inp, or
// inp + residual stored to resid_out (the arguments: ref/norm_args.h).
//   inp, out (N, C), w, bias (C), mean, rstd (N): the statistics backward needs.
#pragma once
#include <cmath>
#include <cstddef>

#include "ref/norm_args.h"
#include "ref/residual.h"

namespace rkv::ref {

template <class S>
void layernorm_forward(const NormArgs<S, S>& a) {
    const int N = a.N, C = a.C;
    const S* inp = norm_input(a);
    const S *w = a.w, *b = a.bias;
    S *out = a.out, *mean = a.mean, *rstd = a.rstd;
    for (int n = 0; n < N; n++) {
        const S* x = inp + size_t(n) * C;
        S m = 0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        S var = 0;
        for (int i = 0; i < C; i++) var += (x[i] - m) * (x[i] - m);
        var /= C;
        const S s = S(1) / std::sqrt(var + S(a.eps));
        S* o = out + size_t(n) * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

// With xhat = (x - mean) * rstd and g = dout * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
template <class S>
void layernorm_backward(const NormArgs<S, S>& a) {
    const int N = a.N, C = a.C;
    const S *dout = a.dout, *inp = a.inp, *w = a.w, *mean = a.mean, *rstd = a.rstd;
    S *dinp = a.dinp, *dw = a.dw, *db = a.db;
    for (int n = 0; n < N; n++) {
        const S* x = inp + size_t(n) * C;
        const S* d = dout + size_t(n) * C;
        S g_mean = 0, gx_mean = 0;
        for (int i = 0; i < C; i++) {
            const S xhat = (x[i] - mean[n]) * rstd[n];
            g_mean += d[i] * w[i];
            gx_mean += d[i] * w[i] * xhat;
        }
        g_mean /= C;
        gx_mean /= C;
        S* dx = dinp + size_t(n) * C;
        for (int i = 0; i < C; i++) {
            const S xhat = (x[i] - mean[n]) * rstd[n];
            dw[i] += d[i] * xhat;
            db[i] += d[i];
            dx[i] += rstd[n] * (d[i] * w[i] - g_mean - xhat * gx_mean);
        }
    }
}

}  // namespace rkv::ref
