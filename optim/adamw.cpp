#include "optim/adamw.h"

#include <cmath>

#include "ref/adamw.h"

namespace rkv {

AdamW::AdamW(const ParamTable& table, const AdamWConfig& config)
    : m(table.total, 0.0f), v(table.total, 0.0f), table_(table), config_(config) {}

double AdamW::grad_norm(const float* grads, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += double(grads[i]) * grads[i];
    return std::sqrt(sum);
}

void AdamW::step(float* params, const float* grads, double lr, long t, double norm) {
    const double scale = config_.clip > 0 && norm > config_.clip ? config_.clip / norm : 1.0;
    for (const TensorInfo& tensor : table_.tensors) {
        const ref::AdamWStep s{lr, config_.beta1, config_.beta2, config_.eps,
                               decays(tensor, config_.decay_embeddings) ? config_.weight_decay : 0.0, scale, t};
        const size_t o = tensor.offset;
        ref::adamw_update(params + o, grads + o, m.data() + o, v.data() + o, tensor.numel(), s);
    }
}

}  // namespace rkv
