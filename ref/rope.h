// Rotary position embedding, Hugging Face Llama's rotate-half convention: the head vector
// is split in halves (x1, x2) and pair i rotates by angle t * theta^(-2i / HS):
//   out1 = x1 cos - x2 sin,   out2 = x2 cos + x1 sin
//   inp, out (B, T, H, HS); position t is the index in the sequence, plus pos0 in the
//   forward of new tokens after pos0 cached ones (inference, ref/attention_cached.h).
#pragma once
#include <cmath>
#include <cstddef>

namespace rkv::ref {

// The angle of pair i at position t, computed in double whatever T is.
inline double rope_angle(int t, int i, int HS, double theta) {
    return double(t) * std::pow(theta, -2.0 * i / HS);
}

template <class T>
void rope_forward(T* out, const T* inp, int B, int Tn, int H, int HS, double theta, int pos0 = 0) {
    const int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tn; t++)
            for (int h = 0; h < H; h++) {
                const size_t base = ((size_t(b) * Tn + t) * H + h) * HS;
                const T* x = inp + base;
                T* o = out + base;
                for (int i = 0; i < half; i++) {
                    const double a = rope_angle(pos0 + t, i, HS, theta);
                    const T c = T(std::cos(a)), s = T(std::sin(a));
                    const T x1 = x[i], x2 = x[i + half];
                    o[i] = x1 * c - x2 * s;
                    o[i + half] = x2 * c + x1 * s;
                }
            }
}

// The rotation's transpose: rotate by -angle, accumulated into dinp.
template <class T>
void rope_backward(T* dinp, const T* dout, int B, int Tn, int H, int HS, double theta) {
    const int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tn; t++)
            for (int h = 0; h < H; h++) {
                const size_t base = ((size_t(b) * Tn + t) * H + h) * HS;
                const T* d = dout + base;
                T* dx = dinp + base;
                for (int i = 0; i < half; i++) {
                    const double a = rope_angle(t, i, HS, theta);
                    const T c = T(std::cos(a)), s = T(std::sin(a));
                    dx[i] += d[i] * c + d[i + half] * s;
                    dx[i + half] += d[i + half] * c - d[i] * s;
                }
            }
}

}  // namespace rkv::ref
