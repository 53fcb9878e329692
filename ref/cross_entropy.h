// Softmax cross-entropy over the vocabulary, one row per token; target -1 is skipped.
//   logits (N, V), targets (N), losses (N): -log softmax(logits)[target], 0 where skipped
//   dlogits (N, V) = (softmax - onehot(target)) * dloss, 0 on skipped rows
// The model's loss is the mean over non-skipped tokens, so the driver passes
// dloss = 1 / (number of non-skipped tokens).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

namespace rkv::ref {

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const int* targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) {
            losses[n] = 0;
            continue;
        }
        const T* x = logits + size_t(n) * V;
        const T m = *std::max_element(x, x + V);
        T sum = 0;
        for (int i = 0; i < V; i++) sum += std::exp(x[i] - m);
        losses[n] = m + std::log(sum) - x[targets[n]];
    }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const int* targets, T dloss, int N, int V) {
    for (int n = 0; n < N; n++) {
        T* d = dlogits + size_t(n) * V;
        if (targets[n] < 0) continue;
        const T* x = logits + size_t(n) * V;
        const T m = *std::max_element(x, x + V);
        T sum = 0;
        for (int i = 0; i < V; i++) sum += std::exp(x[i] - m);
        for (int i = 0; i < V; i++) d[i] += std::exp(x[i] - m) / sum * dloss;
        d[targets[n]] -= dloss;
    }
}

}  // namespace rkv::ref
