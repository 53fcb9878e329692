// AdamW (Loshchilov & Hutter), the update rkv's optimizers compute, for n contiguous
// parameters at step t >= 1:
//   g = grad * grad_scale                       (grad_scale: clipping, 1 when off)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p -= lr * ( (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p )
// Weight decay is decoupled from the gradient and scaled by lr, as in llm.c and PyTorch.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace rkv::ref {

struct AdamWStep {
    double lr, beta1, beta2, eps, weight_decay, grad_scale;
    long t;  // 1-based
};

}  // namespace rkv::ref

namespace rkv {

// The arguments of one AdamW step over n contiguous parameters, one struct carried unchanged from
// the optimizer (optim/adamw.cpp) through LayerOps (src/layer_ops.h) to ref/ and the kernel
// (optim/adamw.cu), as ref/attention_args.h for attention. S is the storage type of the weights,
// M that of the gradients, moments and master weights (float for bf16 storage); pointers are in
// the implementation's memory. When S is not M, master holds the weights and param gets them
// rounded stochastically, the rounding a function of (seed, element); otherwise master is null
// and the weights are param's.
template <class S, class M>
struct AdamWArgs {
    size_t n = 0;
    S* param = nullptr;       // (n)
    M* master = nullptr;      // (n), or null
    const M* grad = nullptr;  // (n)
    M* m = nullptr;           // (n)
    M* v = nullptr;           // (n)
    ref::AdamWStep step{};
    uint64_t seed = 0;
};

}  // namespace rkv

namespace rkv::ref {

template <class S>
void adamw_update(const AdamWArgs<S, S>& a) {
    const AdamWStep& s = a.step;
    S *param = a.param, *m = a.m, *v = a.v;
    const S* grad = a.grad;
    const double c1 = 1.0 - std::pow(s.beta1, double(s.t)), c2 = 1.0 - std::pow(s.beta2, double(s.t));
    for (size_t i = 0; i < a.n; i++) {
        const S g = grad[i] * S(s.grad_scale);
        m[i] = S(s.beta1) * m[i] + S(1 - s.beta1) * g;
        v[i] = S(s.beta2) * v[i] + S(1 - s.beta2) * g * g;
        const S mhat = m[i] / S(c1), vhat = v[i] / S(c2);
        param[i] -= S(s.lr) * (mhat / (std::sqrt(vhat) + S(s.eps)) + S(s.weight_decay) * param[i]);
    }
}

}  // namespace rkv::ref
