// AdamW (Loshchilov & Hutter), the update rkv's optimizers compute, for n contiguous
// parameters at step t >= 1:
//   g = grad * grad_scale                       (grad_scale: clipping, 1 when off)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p -= lr * ( (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p )
// Weight decay is decoupled from the gradient and scaled by lr, as in llm.c and PyTorch.
#pragma once
#include <cmath>
#include <cstddef>

namespace rkv::ref {

struct AdamWStep {
    double lr, beta1, beta2, eps, weight_decay, grad_scale;
    long t;   // 1-based
};

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, size_t n, const AdamWStep& s) {
    const double c1 = 1.0 - std::pow(s.beta1, double(s.t)), c2 = 1.0 - std::pow(s.beta2, double(s.t));
    for (size_t i = 0; i < n; i++) {
        const T g = grad[i] * T(s.grad_scale);
        m[i] = T(s.beta1) * m[i] + T(1 - s.beta1) * g;
        v[i] = T(s.beta2) * v[i] + T(1 - s.beta2) * g * g;
        const T mhat = m[i] / T(c1), vhat = v[i] / T(c2);
        param[i] -= T(s.lr) * (mhat / (std::sqrt(vhat) + T(s.eps)) + T(s.weight_decay) * param[i]);
    }
}

}  // namespace rkv::ref
