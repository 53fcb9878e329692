// Causal scaled-dot-product attention with GQA, as the fused kernels compute it: the
// forward saves the log-sum-exp of each query row, the backward recomputes the
// probabilities from it. Under a route, k and v are the source layer's.
//   q (B, T, NH, HS), k, v (B, T, NKV, HS), out (B, T, NH, HS), lse (B, NH, T)
// Query head h reads KV head h / (NH / NKV). Per (batch, head), with a (T, T) scratch:
//   S = scale Q K^T,  P = softmax(causal(S)),  O = P V,  lse = log rowsum exp(causal(S))
// The head's rows are strided inside the (B, T, heads, HS) tensors, which the GEMMs
// take as their leading dimensions.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "ref/gemm.h"

namespace rkv::ref {

// The head's first element and the row stride (leading dimension) of one head's (T, HS) slice.
struct HeadView {
    size_t offset;
    int ld;
};
inline HeadView head(int b, int h, int Tn, int heads, int HS) {
    return {(size_t(b) * Tn * heads + h) * HS, heads * HS};
}

// P (rows, cols) = softmax over j <= pos0 + t of the scores in row t of P; the entries past
// it become 0. lse (rows), when not null, gets each row's log-sum-exp. Training: square, pos0
// 0; inference over a cache: the new rows after pos0 cached ones (ref/attention_cached.h).
template <class T>
void causal_softmax(T* P, T* lse, int rows, int cols, int pos0 = 0) {
    for (int t = 0; t < rows; t++) {
        T* row = P + size_t(t) * cols;
        const int seen = pos0 + t + 1;
        const T m = *std::max_element(row, row + seen);
        T sum = 0;
        for (int j = 0; j < seen; j++) sum += (row[j] = std::exp(row[j] - m));
        for (int j = 0; j < seen; j++) row[j] /= sum;
        std::fill(row + seen, row + cols, T(0));
        if (lse) lse[t] = m + std::log(sum);
    }
}

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int B, int Tn, int NH, int NKV, int HS) {
    const T scale = T(1) / std::sqrt(T(HS));
    std::vector<T> P(size_t(Tn) * Tn);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const HeadView Q = head(b, h, Tn, NH, HS), KV = head(b, h / (NH / NKV), Tn, NKV, HS);
            gemm(false, true, Tn, Tn, HS, scale, q + Q.offset, Q.ld, k + KV.offset, KV.ld, T(0), P.data(), Tn);
            causal_softmax(P.data(), lse + (size_t(b) * NH + h) * Tn, Tn, Tn);
            gemm(false, false, Tn, HS, Tn, T(1), P.data(), Tn, v + KV.offset, KV.ld, T(0), out + Q.offset, Q.ld);
        }
}

// With dP = dO V^T and D = rowsum(dO * O):
//   dS = P (dP - D),  dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO
// dq, dk, dv accumulate (+=): several query layers may share one source's dk, dv.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, int B, int Tn, int NH, int NKV, int HS) {
    const T scale = T(1) / std::sqrt(T(HS));
    std::vector<T> P(size_t(Tn) * Tn), dS(size_t(Tn) * Tn);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const HeadView Q = head(b, h, Tn, NH, HS), KV = head(b, h / (NH / NKV), Tn, NKV, HS);
            const T* l = lse + (size_t(b) * NH + h) * Tn;
            // P from the saved log-sum-exp, causal entries only.
            gemm(false, true, Tn, Tn, HS, scale, q + Q.offset, Q.ld, k + KV.offset, KV.ld, T(0), P.data(), Tn);
            for (int t = 0; t < Tn; t++)
                for (int j = 0; j < Tn; j++) {
                    T& p = P[size_t(t) * Tn + j];
                    p = j <= t ? std::exp(p - l[t]) : T(0);
                }
            gemm(false, true, Tn, Tn, HS, T(1), dout + Q.offset, Q.ld, v + KV.offset, KV.ld, T(0), dS.data(), Tn);
            for (int t = 0; t < Tn; t++) {
                const T* o = out + Q.offset + size_t(t) * Q.ld;
                const T* d = dout + Q.offset + size_t(t) * Q.ld;
                T D = 0;
                for (int i = 0; i < HS; i++) D += d[i] * o[i];
                for (int j = 0; j < Tn; j++) {
                    const size_t tj = size_t(t) * Tn + j;
                    dS[tj] = P[tj] * (dS[tj] - D);
                }
            }
            gemm(false, false, Tn, HS, Tn, scale, dS.data(), Tn, k + KV.offset, KV.ld, T(1), dq + Q.offset, Q.ld);
            gemm(true, false, Tn, HS, Tn, scale, dS.data(), Tn, q + Q.offset, Q.ld, T(1), dk + KV.offset, KV.ld);
            gemm(true, false, Tn, HS, Tn, T(1), P.data(), Tn, dout + Q.offset, Q.ld, T(1), dv + KV.offset, KV.ld);
        }
}

}  // namespace rkv::ref
