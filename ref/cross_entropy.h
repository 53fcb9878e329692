// Softmax cross-entropy over the vocabulary, one row per token; target -1 is skipped.
//   logits (N, V), targets (N), losses (N): logsumexp(row) - row[target], 0 where skipped
//   dlogits (N, V) += (softmax - onehot(target)) * dloss, nothing on skipped rows
// The model's loss is the mean over non-skipped tokens, so the driver passes
// dloss = 1 / (number of non-skipped tokens).
#pragma once
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

}  // namespace rkv::ref
