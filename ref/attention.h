// Causal scaled-dot-product attention with GQA, as the fused kernels compute it:
// the forward saves the log-sum-exp of each query row, the backward recomputes the
// probabilities from it. Under a route, k and v are the source layer's.
//   q (B, T, NH, HS), k, v (B, T, NKV, HS), out (B, T, NH, HS), lse (B, NH, T)
// Query head h reads KV head h / (NH / NKV).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace rkv::ref {

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int B, int Tn, int NH, int NKV, int HS) {
    const T scale = T(1) / std::sqrt(T(HS));
    const int group = NH / NKV;
    std::vector<T> s(Tn);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int kvh = h / group;
            for (int t = 0; t < Tn; t++) {
                const T* qt = q + ((size_t(b) * Tn + t) * NH + h) * HS;
                T m = -std::numeric_limits<T>::infinity();
                for (int j = 0; j <= t; j++) {
                    const T* kj = k + ((size_t(b) * Tn + j) * NKV + kvh) * HS;
                    T dot = 0;
                    for (int i = 0; i < HS; i++) dot += qt[i] * kj[i];
                    s[j] = dot * scale;
                    m = std::max(m, s[j]);
                }
                T sum = 0;
                for (int j = 0; j <= t; j++) sum += (s[j] = std::exp(s[j] - m));
                T* ot = out + ((size_t(b) * Tn + t) * NH + h) * HS;
                std::fill(ot, ot + HS, T(0));
                for (int j = 0; j <= t; j++) {
                    const T* vj = v + ((size_t(b) * Tn + j) * NKV + kvh) * HS;
                    const T p = s[j] / sum;
                    for (int i = 0; i < HS; i++) ot[i] += p * vj[i];
                }
                lse[(size_t(b) * NH + h) * Tn + t] = m + std::log(sum);
            }
        }
}

// With P = exp(S - lse), dP = dout V^T, D = rowsum(dout * out):
//   dS = P (dP - D),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dout
// dq, dk, dv accumulate (+=): several query layers may share one source's dk, dv.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, int B, int Tn, int NH, int NKV, int HS) {
    const T scale = T(1) / std::sqrt(T(HS));
    const int group = NH / NKV;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int kvh = h / group;
            for (int t = 0; t < Tn; t++) {
                const size_t qi = ((size_t(b) * Tn + t) * NH + h) * HS;
                const T* qt = q + qi;
                const T* dot_ = dout + qi;
                T D = 0;
                for (int i = 0; i < HS; i++) D += dot_[i] * out[qi + i];
                const T l = lse[(size_t(b) * NH + h) * Tn + t];
                for (int j = 0; j <= t; j++) {
                    const size_t ki = ((size_t(b) * Tn + j) * NKV + kvh) * HS;
                    T s = 0, dp = 0;
                    for (int i = 0; i < HS; i++) {
                        s += qt[i] * k[ki + i];
                        dp += dot_[i] * v[ki + i];
                    }
                    const T p = std::exp(s * scale - l);
                    const T ds = p * (dp - D) * scale;
                    for (int i = 0; i < HS; i++) {
                        dq[qi + i] += ds * k[ki + i];
                        dk[ki + i] += ds * qt[i];
                        dv[ki + i] += p * dot_[i];
                    }
                }
            }
        }
}

}  // namespace rkv::ref
