// The KV cache of inference with depth-wise sharing (DESIGN.md section 1, "Inference"). Under
// an inference route only the layers that some layer reads (the kept layers, K of them) compute keys and
// values; each owns a slot that holds them for every position seen so far, and every layer
// attends to the slot of its source kv_src[l]. The cache is K / L of a full one: the memory
// that R-CLA saves when serving.
//
// Memory (the implementation's, through LayerOps):
//   k, v      (K, B, max_len, NKV, HS): slot s is kept layer kept_layers()[s]
//   kv_slot   (L): the slot layer l reads, the attention kernel's data (like kv_src in training)
// All B sequences advance together: `length` positions of each are filled.
#pragma once
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "src/config.h"
#include "src/layer_ops.h"
#include "src/route.h"

namespace rkv {

template <class S>
class KvCache {
public:
    const Route route;
    const int B, max_len;
    const int width;           // one position's keys (or values) in a slot: NKV * HS
    const size_t slot_stride;  // elements of one slot: B * max_len * width
    int length = 0;            // positions filled in every sequence

    KvCache(LayerOps<S>& ops, const ModelConfig& c, const Route& r, int B_, int max_len_)
        : route(r),
          B(B_),
          max_len(max_len_),
          width(c.kv_dim()),
          slot_stride(size_t(B_) * max_len_ * width),
          ops_(ops),
          kept_(r.kept_layers()),
          slot_of_(c.num_hidden_layers, -1) {
        validate_route(route, c.num_hidden_layers);
        if (B < 1 || max_len < 1) throw std::invalid_argument(fmt::format("KV cache of {} x {} is empty", B, max_len));
        if (max_len > c.max_position_embeddings)
            throw std::invalid_argument(fmt::format("KV cache length {} exceeds max_position_embeddings {}", max_len,
                                                    c.max_position_embeddings));
        for (int s = 0; s < slots(); s++) slot_of_[kept_[s]] = s;
        std::vector<int> reads(c.num_hidden_layers);
        for (int l = 0; l < c.num_hidden_layers; l++) reads[l] = slot_of_[route.kv_src[l]];
        const size_t n = slots() * slot_stride;
        arena_ = ops_.alloc_bytes(2 * n * sizeof(S) + reads.size() * sizeof(int));
        k_ = static_cast<S*>(arena_);
        v_ = k_ + n;
        kv_slot_ = reinterpret_cast<int*>(v_ + n);
        ops_.upload(kv_slot_, reads.data(), reads.size());
    }
    ~KvCache() { ops_.free_bytes(arena_); }
    KvCache(const KvCache&) = delete;
    KvCache& operator=(const KvCache&) = delete;

    int slots() const { return int(kept_.size()); }
    const std::vector<int>& kept_layers() const { return kept_; }
    // The slot kept layer `layer` writes: (B, max_len, NKV, HS).
    S* k_slot(int layer) const { return k_ + size_t(slot_of_[layer]) * slot_stride; }
    S* v_slot(int layer) const { return v_ + size_t(slot_of_[layer]) * slot_stride; }
    const S* k() const { return k_; }
    const S* v() const { return v_; }
    const int* kv_slot() const { return kv_slot_; }
    // Keys and values one position of one sequence adds, and what the whole cache holds.
    size_t bytes_per_token() const { return 2 * size_t(slots()) * width * sizeof(S); }
    size_t bytes() const { return bytes_per_token() * size_t(B) * max_len; }

private:
    LayerOps<S>& ops_;
    std::vector<int> kept_;     // (K) ascending
    std::vector<int> slot_of_;  // (L): a kept layer's slot, -1 for the others
    void* arena_ = nullptr;
    S* k_ = nullptr;
    S* v_ = nullptr;
    int* kv_slot_ = nullptr;
};

}  // namespace rkv
