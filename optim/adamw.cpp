#include "optim/adamw.h"

#include <cmath>
#include <stdexcept>

namespace rkv {

AdamW::AdamW(const ParamTable& table, const AdamWConfig& config, LayerOps<float>& ops)
    : table_(table), config_(config), ops_(ops) {
    m_ = static_cast<float*>(ops_.alloc_bytes(table.total * sizeof(float)));
    v_ = static_cast<float*>(ops_.alloc_bytes(table.total * sizeof(float)));
    ops_.zero(m_, table.total);
    ops_.zero(v_, table.total);
}

AdamW::~AdamW() {
    ops_.free_bytes(m_);
    ops_.free_bytes(v_);
}

double AdamW::grad_norm(const float* grads) { return std::sqrt(ops_.sum_squares(grads, table_.total)); }

void AdamW::step(float* params, const float* grads, double lr, long t, double norm) {
    const double scale = config_.clip > 0 && norm > config_.clip ? config_.clip / norm : 1.0;
    for (const TensorInfo& tensor : table_.tensors) {
        const ref::AdamWStep s{lr, config_.beta1, config_.beta2, config_.eps,
                               decays(tensor, config_.decay_embeddings) ? config_.weight_decay : 0.0, scale, t};
        const size_t o = tensor.offset;
        ops_.adamw_update(params + o, grads + o, m_ + o, v_ + o, tensor.numel(), s);
    }
}

std::vector<float> AdamW::m() const {
    std::vector<float> host(table_.total);
    ops_.download(host.data(), m_, table_.total);
    return host;
}

std::vector<float> AdamW::v() const {
    std::vector<float> host(table_.total);
    ops_.download(host.data(), v_, table_.total);
    return host;
}

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v) {
    if (m.size() != table_.total || v.size() != table_.total)
        throw std::invalid_argument("AdamW state does not match the parameter table");
    ops_.upload(m_, m.data(), table_.total);
    ops_.upload(v_, v.data(), table_.total);
}

}  // namespace rkv
