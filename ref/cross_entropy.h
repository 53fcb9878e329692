// Softmax cross-entropy over the vocabulary, one row per token; target -1 is skipped.
//   logits (N, V), targets (N), losses (N): logsumexp(row) - row[target], 0 where skipped
//   dlogits (N, V) += (softmax - onehot(target)) * dloss, nothing on skipped rows
// The model's loss is the mean over non-skipped tokens, so the driver passes
// dloss = 1 / (number of non-skipped tokens). fused_classifier is both in place, a row at a time
// (cross_entropy_fused_row): the CPU path's classifier (src/cpu_ops.h), one exp per logit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "ref/cross_entropy_args.h"

namespace rkv::ref {

// log sum_i exp(x_i) of one row, shifted by its max for range.
template <class S>
S logsumexp(const S* x, int V) {
    S m = -std::numeric_limits<S>::infinity();
#pragma omp simd reduction(max : m)
    for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
    S sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp(x[i] - m);
    return m + std::log(sum);
}

// The rows are independent: threads share them out, with the same results for any number.
template <class S>
void cross_entropy_forward(const CrossEntropyArgs<S, S>& a) {
    const int V = a.V;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < a.N; n++) {
        const S* x = a.logits + size_t(n) * a.row_stride();
        a.losses[n] = a.targets[n] < 0 ? S(0) : logsumexp(x, V) - x[a.targets[n]];
    }
}

template <class S>
void cross_entropy_backward(const CrossEntropyArgs<S, S>& a) {
    const int V = a.V;
    for (int n = 0; n < a.N; n++) {
        if (a.targets[n] < 0) continue;
        const S* x = a.logits + size_t(n) * a.row_stride();
        S* d = a.dlogits + size_t(n) * a.row_stride();
        const S lse = logsumexp(x, V);
        for (int i = 0; i < V; i++) d[i] += std::exp(x[i] - lse) * a.dloss;
        d[a.targets[n]] -= a.dloss;
    }
}

// One row's loss and gradient in one pass, the gradient written over the logits: row (V) holds
// the logits on entry and (softmax - onehot(target)) * dloss on return (zeros when target is -1).
// exp(x - max) is computed once per logit, kept in the row and scaled by dloss / sum. The loss,
// logsumexp(row) - row[target], is log1p(rest) + (max - row[target]), rest the sum without the
// max's own 1: a row its target dominates keeps its small loss to full relative precision,
// where log(sum) would round it to the spacing of numbers near 1.
template <class S>
void cross_entropy_fused_row(S* row, S* loss, int target, S dloss, int V) {
    if (target < 0) {
        *loss = S(0);
        for (int i = 0; i < V; i++) row[i] = S(0);
        return;
    }
    S m = -std::numeric_limits<S>::infinity();
#pragma omp simd reduction(max : m)
    for (int i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
    const int top = int(std::find(row, row + V, m) - row);
    const S margin = m - row[target];
    S rest = 0;
    for (int i = 0; i < V; i++) {
        row[i] = std::exp(row[i] - m);
        if (i != top) rest += row[i];
    }
    *loss = std::log1p(rest) + margin;
    const S scale = dloss / (S(1) + rest);
#pragma omp simd
    for (int i = 0; i < V; i++) row[i] *= scale;
    row[target] -= dloss;
}

template <class S>
void fused_classifier(const CrossEntropyArgs<S, S>& a) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < a.N; n++)
        cross_entropy_fused_row(a.dlogits + size_t(n) * a.row_stride(), a.losses + n, a.targets[n], a.dloss, a.V);
}

}  // namespace rkv::ref
