#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rkv {

AdamW::AdamW(const ParamTable& table, const AdamWConfig& config, LayerOps<float>& ops, size_t begin, size_t size)
    : table_(table), config_(config), ops_(ops), begin_(begin), size_(size ? size : table.total) {
    m_ = static_cast<float*>(ops_.alloc_bytes(size_ * sizeof(float)));
    v_ = static_cast<float*>(ops_.alloc_bytes(size_ * sizeof(float)));
    ops_.zero(m_, size_);
    ops_.zero(v_, size_);
}

AdamW::~AdamW() {
    ops_.free_bytes(m_);
    ops_.free_bytes(v_);
}

double AdamW::grad_sq(const float* grads) {
    const size_t end = std::min(begin_ + size_, table_.total);
    return end > begin_ ? ops_.sum_squares(grads + begin_, end - begin_) : 0.0;
}

void AdamW::step(float* params, const float* grads, double lr, long t, double norm) {
    const double scale = config_.clip > 0 && norm > config_.clip ? config_.clip / norm : 1.0;
    for (const TensorInfo& tensor : table_.tensors) {
        // The part of this tensor inside the shard.
        const size_t lo = std::max(tensor.offset, begin_);
        const size_t hi = std::min(tensor.offset + tensor.numel(), begin_ + size_);
        if (lo >= hi) continue;
        const ref::AdamWStep s{lr, config_.beta1, config_.beta2, config_.eps,
                               decays(tensor, config_.decay_embeddings) ? config_.weight_decay : 0.0, scale, t};
        ops_.adamw_update(params + lo, grads + lo, m_ + (lo - begin_), v_ + (lo - begin_), hi - lo, s);
    }
}

std::vector<float> AdamW::m() const {
    std::vector<float> host(size_);
    ops_.download(host.data(), m_, size_);
    return host;
}

std::vector<float> AdamW::v() const {
    std::vector<float> host(size_);
    ops_.download(host.data(), v_, size_);
    return host;
}

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v) {
    if (m.size() != size_ || v.size() != size_)
        throw std::invalid_argument("AdamW state does not match the optimizer's shard");
    ops_.upload(m_, m.data(), size_);
    ops_.upload(v_, v.data(), size_);
}

}  // namespace rkv
