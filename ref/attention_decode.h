// Inference with a KV cache (DESIGN.md section 1, "Inference"): the keys and values of the
// positions already seen stay in a cache, so each new token costs one position's work. Only
// the kept layers own a cache slot; the others read the slot of their route's source.
//
// attention_decode_forward (arguments: ref/attention_args.h): the Tq new queries of each sequence sit at positions
// pos0 .. pos0 + Tq - 1 and attend causally to the cache rows 0 .. their own position
// (rows pos0 .. pos0 + Tq - 1 already hold the new tokens' keys and values):
//   q, out (B, Tq, NH, HS);  k, v (B, Tmax, NKV, HS), pos0 + Tq <= Tmax
//   S = scale Q K^T (Tq, pos0 + Tq), query t masked past key pos0 + t;  O = softmax(S) V
// Query head h reads KV head h / (NH / NKV), as in training (ref/attention.h).
//
// kv_cache_write (arguments: ref/attention_args.h's KvCacheWriteArgs): rows pos0 .. pos0 + Tq - 1
// of each sequence's cache (B, Tmax, width) <- src (B, Tq, width).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "ref/attention.h"
#include "ref/attention_args.h"
#include "ref/gemm.h"

namespace rkv::ref {

// kv_slot (a.kv_slot, host memory here) names the slot a.layer reads.
template <class S>
void attention_decode_forward(const AttentionDecodeArgs<S>& a) {
    const int B = a.B, Tq = a.Tq, pos0 = a.pos0, Tmax = a.Tmax, NH = a.NH, NKV = a.NKV, HS = a.HS;
    const size_t slot = a.kv_slot ? size_t(a.kv_slot[a.layer]) * a.slot_stride : 0;
    const S* k = a.k_cache + slot;
    const S* v = a.v_cache + slot;
    const S scale = S(1) / std::sqrt(S(HS));
    const int Tk = pos0 + Tq;
    std::vector<S> P(size_t(Tq) * Tk);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const S* Q = a.q + (size_t(b) * Tq * NH + h) * HS;
            const size_t kv = (size_t(b) * Tmax * NKV + h / (NH / NKV)) * HS;
            S* O = a.out + (size_t(b) * Tq * NH + h) * HS;
            gemm(false, true, Tq, Tk, HS, scale, Q, NH * HS, k + kv, NKV * HS, S(0), P.data(), Tk);
            causal_softmax<S>(P.data(), nullptr, Tq, Tk, pos0);
            gemm(false, false, Tq, HS, Tk, S(1), P.data(), Tk, v + kv, NKV * HS, S(0), O, NH * HS);
        }
}

template <class S>
void kv_cache_write(const KvCacheWriteArgs<S>& a) {
    const size_t row = size_t(a.Tq) * a.width;  // one sequence's new elements
    for (int b = 0; b < a.B; b++) std::copy_n(a.src + b * row, row, a.cache + (size_t(b) * a.Tmax + a.pos0) * a.width);
}

}  // namespace rkv::ref
