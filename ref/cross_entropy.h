// Softmax cross-entropy over the vocabulary, one row per token; target -1 is skipped.
//   logits (N, V), targets (N), losses (N): logsumexp(row) - row[target], 0 where skipped
//   dlogits (N, V) += (softmax - onehot(target)) * dloss, nothing on skipped rows
// The model's loss is the mean over non-skipped tokens, so the driver passes
// dloss = 1 / (number of non-skipped tokens). cross_entropy_fused_row is both for one row, in
// place: the CPU path's classifier (src/cpu_ops.h), one exp per logit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace rkv::ref {

// log sum_i exp(x_i) of one row, shifted by its max for range.
template <class T>
T logsumexp(const T* x, int V) {
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
    T sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp(x[i] - m);
    return m + std::log(sum);
}

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const int* targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        const T* x = logits + size_t(n) * V;
        losses[n] = targets[n] < 0 ? T(0) : logsumexp(x, V) - x[targets[n]];
    }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int* targets, T dloss, int N, int V) {
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const T* x = logits + size_t(n) * V;
        T* d = dlogits + size_t(n) * V;
        const T lse = logsumexp(x, V);
        for (int i = 0; i < V; i++) d[i] += std::exp(x[i] - lse) * dloss;
        d[targets[n]] -= dloss;
    }
}

// One row's loss and gradient in one pass, the gradient written over the logits: row (V) holds
// the logits on entry and (softmax - onehot(target)) * dloss on return (zeros when target is -1).
// exp(x - max) is computed once per logit, kept in the row and scaled by dloss / sum. The loss,
// logsumexp(row) - row[target], is log1p(rest) + (max - row[target]), rest the sum without the
// max's own 1: a row its target dominates keeps its small loss to full relative precision,
// where log(sum) would round it to the spacing of numbers near 1.
template <class T>
void cross_entropy_fused_row(T* row, T* loss, int target, T dloss, int V) {
    if (target < 0) {
        *loss = T(0);
        for (int i = 0; i < V; i++) row[i] = T(0);
        return;
    }
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
    const int top = int(std::find(row, row + V, m) - row);
    const T margin = m - row[target];
    T rest = 0;
    for (int i = 0; i < V; i++) {
        row[i] = std::exp(row[i] - m);
        if (i != top) rest += row[i];
    }
    *loss = std::log1p(rest) + margin;
    const T scale = dloss / (T(1) + rest);
#pragma omp simd
    for (int i = 0; i < V; i++) row[i] *= scale;
    row[target] -= dloss;
}

}  // namespace rkv::ref
