#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "layers/splitmix.h"

namespace rkv {

namespace {
// The weights' fp32 truth is a separate master copy when the storage is not its own master.
template <class S>
constexpr bool kHasMaster = !std::is_same_v<master_t<S>, S>;
}  // namespace

template <class S>
AdamW<S>::AdamW(const ParamTable& table, const AdamWConfig& config, LayerOps<S>& ops, size_t begin, size_t size)
    : table_(table), config_(config), ops_(ops), begin_(begin), size_(size ? size : table.total) {
    static_assert(std::is_same_v<master_t<S>, float>, "AdamW keeps fp32 state");
    auto state = [&] {
        auto* p = static_cast<float*>(ops_.alloc_bytes(size_ * sizeof(float)));
        ops_.zero(p, size_);
        return p;
    };
    m_ = state();
    v_ = state();
    if constexpr (kHasMaster<S>) master_ = state();
}

template <class S>
AdamW<S>::~AdamW() {
    ops_.free_bytes(m_);
    ops_.free_bytes(v_);
    if (master_) ops_.free_bytes(master_);
}

template <class S>
double AdamW<S>::grad_sq(const float* shard_grads) {
    const size_t end = std::min(begin_ + size_, table_.total);
    return end > begin_ ? ops_.sum_squares(shard_grads, end - begin_) : 0.0;
}

template <class S>
template <class F>
void AdamW<S>::for_each_piece(F f) const {
    for (const TensorInfo& tensor : table_.tensors) {
        const size_t lo = std::max(tensor.offset, begin_);
        const size_t hi = std::min(tensor.offset + tensor.numel(), begin_ + size_);
        if (lo < hi) f(tensor, lo, hi);
    }
}

// Where the random sequence of step t's rounding starts for the piece at lo: element j of the
// whole buffer takes position j of one sequence per step (layers/splitmix.h), whichever
// piece, and so whichever split of the buffer over the ranks, it falls in.
inline uint64_t rounding_seed(long t, size_t lo) { return mix64(uint64_t(t)) + lo * kWeyl; }

template <class S>
void AdamW<S>::step(S* params, const float* shard_grads, double lr, long t, double norm) {
    const double scale = config_.clip > 0 && norm > config_.clip ? config_.clip / norm : 1.0;
    for_each_piece([&](const TensorInfo& tensor, size_t lo, size_t hi) {
        const ref::AdamWStep s{lr,
                               config_.beta1,
                               config_.beta2,
                               config_.eps,
                               decays(tensor, config_.decay_embeddings) ? config_.weight_decay : 0.0,
                               scale,
                               t};
        const size_t i = lo - begin_;
        ops_.adamw_update({.n = hi - lo,
                           .param = params + lo,
                           .master = master_ ? master_ + i : nullptr,
                           .grad = shard_grads + i,
                           .m = m_ + i,
                           .v = v_ + i,
                           .step = s,
                           .seed = rounding_seed(t, lo)});
    });
}

template <class S>
void AdamW<S>::set_weights(S* params, const std::vector<float>& whole, long t) {
    if (whole.size() != table_.total) throw std::invalid_argument("AdamW::set_weights: not the whole parameter table");
    if constexpr (!kHasMaster<S>) {
        ops_.upload(params, whole.data(), whole.size());
    } else {
        upload_shard(master_, whole);
        // Through a bounded staging buffer: a whole fp32 copy on the device (4 bytes a parameter)
        // would be the largest allocation of a run, if only while loading.
        const size_t chunk = std::min(whole.size(), kStagingElements);
        auto* staged = static_cast<float*>(ops_.alloc_bytes(chunk * sizeof(float)));
        for (size_t i = 0; i < whole.size(); i += chunk) {
            const size_t n = std::min(chunk, whole.size() - i);
            ops_.upload(staged, whole.data() + i, n);
            ops_.to_working(params + i, staged, n);
        }
        ops_.free_bytes(staged);
        round_shard(params, t);
    }
}

template <class S>
void AdamW<S>::round_shard(S* params, long t) {
    // After step t the shard's working copy is what that step's rounding made of the master.
    if (t > 0)
        for_each_piece([&](const TensorInfo&, size_t lo, size_t hi) {
            ops_.to_working_stochastic(params + lo, master_ + (lo - begin_), hi - lo, rounding_seed(t, lo));
        });
}

template <class S>
std::vector<float> AdamW<S>::weights(const S* params) const {
    std::vector<float> host(size_);
    if constexpr (!kHasMaster<S>)
        ops_.download(host.data(), params + begin_, size_);
    else
        ops_.download(host.data(), master_, size_);
    return host;
}

template <class S>
std::vector<float> AdamW<S>::m() const {
    std::vector<float> host(size_);
    ops_.download(host.data(), m_, size_);
    return host;
}

template <class S>
std::vector<float> AdamW<S>::v() const {
    std::vector<float> host(size_);
    ops_.download(host.data(), v_, size_);
    return host;
}

template <class S>
void AdamW<S>::set_state(const std::vector<float>& m, const std::vector<float>& v) {
    if (m.size() != size_ || v.size() != size_)
        throw std::invalid_argument("AdamW::set_state: m and v are not the shard's");
    ops_.upload(m_, m.data(), size_);
    ops_.upload(v_, v.data(), size_);
}

template <class S>
void AdamW<S>::set_master(S* params, const std::vector<float>& master, long t) {
    if (!master_) throw std::invalid_argument("AdamW::set_master: this storage keeps no master weights");
    if (master.size() != size_) throw std::invalid_argument("AdamW::set_master: not the shard's master weights");
    ops_.upload(master_, master.data(), size_);
    round_shard(params, t);
}

template <class S>
void AdamW<S>::upload_shard(float* dst, const std::vector<float>& whole) {
    std::vector<float> shard(size_, 0.0f);  // zeros past the table: the padding
    for (size_t i = 0; i < size_ && begin_ + i < whole.size(); i++) shard[i] = whole[begin_ + i];
    ops_.upload(dst, shard.data(), size_);
}

template class AdamW<float>;
#if RKV_WITH_CUDA
template class AdamW<__nv_bfloat16>;
#endif

}  // namespace rkv
