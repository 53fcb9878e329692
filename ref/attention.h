// Causal scaled-dot-product attention with GQA, as the fused kernels compute it: the
// forward saves the log-sum-exp of each query row, the backward recomputes the
// probabilities from it. Under a route, k and v are the source layer's block of k_all, v_all
// (ref/attention_args.h, which states the arguments):
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

#include "ref/attention_args.h"
#include "ref/gemm.h"

namespace rkv::ref {

// The head's first element and the row stride (leading dimension) of one head's (T, HS) slice.
struct HeadView {
    size_t offset;
    int ld;
};
inline HeadView head(int b, int h, int T, int heads, int HS) { return {(size_t(b) * T * heads + h) * HS, heads * HS}; }

// P (rows, cols) = softmax over j <= pos0 + t of the scores in row t of P; the entries past
// it become 0. lse (rows), when not null, gets each row's log-sum-exp. Training: square, pos0
// 0; inference over a cache: the new rows after pos0 cached ones (ref/attention_decode.h).
template <class S>
void causal_softmax(S* P, S* lse, int rows, int cols, int pos0 = 0) {
    for (int t = 0; t < rows; t++) {
        S* row = P + size_t(t) * cols;
        const int seen = pos0 + t + 1;
        const S m = *std::max_element(row, row + seen);
        S sum = 0;
        for (int j = 0; j < seen; j++) sum += (row[j] = std::exp(row[j] - m));
        for (int j = 0; j < seen; j++) row[j] /= sum;
        std::fill(row + seen, row + cols, S(0));
        if (lse) lse[t] = m + std::log(sum);
    }
}

// Where layer a.layer's K/V block starts in a.k_all, a.v_all (kv_src in host memory here).
template <class S, class M>
size_t kv_block(const AttentionArgs<S, M>& a) {
    return a.kv_src ? size_t(a.kv_src[a.layer]) * a.layer_stride : 0;
}

template <class S>
void attention_forward(const AttentionArgs<S, S>& a) {
    const int B = a.B, T = a.T, NH = a.NH, NKV = a.NKV, HS = a.HS;
    const S* k = a.k_all + kv_block(a);
    const S* v = a.v_all + kv_block(a);
    const S scale = S(1) / std::sqrt(S(HS));
    std::vector<S> P(size_t(T) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const HeadView Q = head(b, h, T, NH, HS), KV = head(b, h / (NH / NKV), T, NKV, HS);
            gemm(false, true, T, T, HS, scale, a.q + Q.offset, Q.ld, k + KV.offset, KV.ld, S(0), P.data(), T);
            causal_softmax(P.data(), a.lse + (size_t(b) * NH + h) * T, T, T);
            gemm(false, false, T, HS, T, S(1), P.data(), T, v + KV.offset, KV.ld, S(0), a.out + Q.offset, Q.ld);
        }
}

// With dP = dO V^T and D = rowsum(dO * O):
//   dS = P (dP - D),  dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO
// dq and the source block of dk_all, dv_all accumulate (+=) whatever accumulate_kv says:
// several query layers may share one source's dk, dv (CpuOps zeroes what is to be written).
template <class S>
void attention_backward(const AttentionArgs<S, S>& a) {
    const int B = a.B, T = a.T, NH = a.NH, NKV = a.NKV, HS = a.HS;
    const size_t src = kv_block(a);
    const S *k = a.k_all + src, *v = a.v_all + src, *q = a.q, *dout = a.dout, *out = a.out;
    S *dk = a.dk_all + src, *dv = a.dv_all + src, *dq = a.dq;
    const S scale = S(1) / std::sqrt(S(HS));
    std::vector<S> P(size_t(T) * T), dS(size_t(T) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const HeadView Q = head(b, h, T, NH, HS), KV = head(b, h / (NH / NKV), T, NKV, HS);
            const S* l = a.lse + (size_t(b) * NH + h) * T;
            // P from the saved log-sum-exp, causal entries only.
            gemm(false, true, T, T, HS, scale, q + Q.offset, Q.ld, k + KV.offset, KV.ld, S(0), P.data(), T);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < T; j++) {
                    S& p = P[size_t(t) * T + j];
                    p = j <= t ? std::exp(p - l[t]) : S(0);
                }
            gemm(false, true, T, T, HS, S(1), dout + Q.offset, Q.ld, v + KV.offset, KV.ld, S(0), dS.data(), T);
            for (int t = 0; t < T; t++) {
                const S* o = out + Q.offset + size_t(t) * Q.ld;
                const S* d = dout + Q.offset + size_t(t) * Q.ld;
                S D = 0;
                for (int i = 0; i < HS; i++) D += d[i] * o[i];
                for (int j = 0; j < T; j++) {
                    const size_t tj = size_t(t) * T + j;
                    dS[tj] = P[tj] * (dS[tj] - D);
                }
            }
            gemm(false, false, T, HS, T, scale, dS.data(), T, k + KV.offset, KV.ld, S(1), dq + Q.offset, Q.ld);
            gemm(true, false, T, HS, T, scale, dS.data(), T, q + Q.offset, Q.ld, S(1), dk + KV.offset, KV.ld);
            gemm(true, false, T, HS, T, S(1), P.data(), T, dout + Q.offset, Q.ld, S(1), dv + KV.offset, KV.ld);
        }
}

}  // namespace rkv::ref
