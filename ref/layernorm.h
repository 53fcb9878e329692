// LayerNorm over the last dimension: out = (x - mean) * rstd * w + b.
//   inp (N, C), w (C), b (C), out (N, C), mean (N), rstd (N): the statistics backward needs.
#pragma once
#include <cmath>
#include <cstddef>

namespace rkv::ref {

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const T* x = inp + size_t(n) * C;
        T m = 0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        T var = 0;
        for (int i = 0; i < C; i++) var += (x[i] - m) * (x[i] - m);
        var /= C;
        const T s = T(1) / std::sqrt(var + T(eps));
        T* o = out + size_t(n) * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

// With xhat = (x - mean) * rstd and g = dout * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
template <class T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, const T* mean,
                        const T* rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const T* x = inp + size_t(n) * C;
        const T* d = dout + size_t(n) * C;
        T g_mean = 0, gx_mean = 0;
        for (int i = 0; i < C; i++) {
            const T xhat = (x[i] - mean[n]) * rstd[n];
            g_mean += d[i] * w[i];
            gx_mean += d[i] * w[i] * xhat;
        }
        g_mean /= C;
        gx_mean /= C;
        T* dx = dinp + size_t(n) * C;
        for (int i = 0; i < C; i++) {
            const T xhat = (x[i] - mean[n]) * rstd[n];
            dw[i] += d[i] * xhat;
            db[i] += d[i];
            dx[i] += rstd[n] * (d[i] * w[i] - g_mean - xhat * gx_mean);
        }
    }
}

}  // namespace rkv::ref
