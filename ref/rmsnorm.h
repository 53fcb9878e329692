// RMSNorm over the last dimension: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
//   inp (N, C), w (C), out (N, C), rstd (N)
// QK-norm is this same function over rows of one head: N = B * T * heads, C = head_dim.
#pragma once
#include <cmath>
#include <cstddef>

namespace rkv::ref {

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const T* x = inp + size_t(n) * C;
        T ms = 0;
        for (int i = 0; i < C; i++) ms += x[i] * x[i];
        ms /= C;
        const T s = T(1) / std::sqrt(ms + T(eps));
        T* o = out + size_t(n) * C;
        for (int i = 0; i < C; i++) o[i] = x[i] * s * w[i];
        rstd[n] = s;
    }
}

// With xhat = x * rstd and g = dout * w:  dx = rstd * (g - xhat * mean(g * xhat))
template <class T>
void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N, int C) {
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
