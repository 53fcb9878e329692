// ZeRO-2's gradients (docs/DESIGN.md, "Data parallelism and ZeRO"): each rank keeps, in fp32,
// only the gradients of its shard of the flat buffer (ZeRO-1's even split, so AdamW and the
// checkpoints are ZeRO-1's), summed over the ranks and the micro-batches of the update.
//
// The backward accumulates a micro-batch's gradients into working windows, one for each range
// Model::on_grads_final reports (the final norm and head, each layer, the embeddings). As soon
// as a range is final, each part of it inside some rank's shard is reduced to that rank
// (Comm::reduce_start, overlapping the backward of the layers below), and the owner takes the
// sum into its shard. Accumulating without an add kernel: a window starts as zeros, except its
// part inside this rank's shard, which starts as the shard's sum so far; the backward adds this
// rank's gradients to it, the reduction the other ranks', and the result is copied back.
//
// Two windows take turns: a range's reduction reads one while the next range's backward writes
// the other. The embeddings have a window of their own when the head is tied to them (the head
// writes their gradients first, the embedding lookup last). On the device, a rank then holds its
// shard and two windows of the largest range (plus the tied embeddings), not the whole buffer.
// (LayerOps::copy_bytes waits for the stream, so the host keeps at most one range ahead: each
// range's reduction still runs beside the next range's backward.)
#pragma once
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <vector>

#include "dist/comm.h"
#include "src/layer_ops.h"
#include "src/model.h"
#include "src/params.h"

namespace rkv {

template <class S>
class ShardedGrads {
public:
    using Master = master_t<S>;

    // The working buffer (the Model's grad_capacity, in elements) a table needs.
    static size_t working_elements(const ParamTable& table) {
        const Windows w = windows(table);
        return 2 * w.turn + w.embeddings;
    }

    // Hooks `model`, whose grads hold working_elements(model.table); this rank's shard is
    // [begin, begin + size) of the flat buffer, rank q's [q * size, (q + 1) * size).
    ShardedGrads(Model<S>& model, LayerOps<S>& ops, Comm& comm, size_t begin, size_t size)
        : model_(model), ops_(ops), comm_(comm), begin_(begin), size_(size), w_(windows(model.table)) {
        if (model.grad_capacity < working_elements(model.table))
            throw std::logic_error("ShardedGrads: the model's gradient buffer is smaller than its windows");
        shard_ = static_cast<Master*>(ops_.alloc_bytes(size_ * sizeof(Master)));
        turns_[0] = model.grads;
        turns_[1] = model.grads + w_.turn;
        embeddings_ = w_.embeddings ? model.grads + 2 * w_.turn : nullptr;
        model.grads_window = [this](size_t b, size_t e) { return open(b, e); };
        model.on_grads_final = [this](size_t b, size_t e) { reduce(b, e); };
    }
    ~ShardedGrads() {
        model_.grads_window = nullptr;
        model_.on_grads_final = nullptr;
        ops_.free_bytes(shard_);
    }
    ShardedGrads(const ShardedGrads&) = delete;
    ShardedGrads& operator=(const ShardedGrads&) = delete;

    // Before an update's first micro-batch.
    void zero() { ops_.zero(shard_, size_); }
    // After each micro-batch's backward: its last reduction is taken into the shard.
    void finish() {
        settle();
        if (!open_.empty()) throw std::logic_error("ShardedGrads: a gradient range was never final");
    }
    // (size): the shard's gradients, summed over the ranks and the micro-batches finished.
    const Master* shard() const { return shard_; }

private:
    struct Windows {
        size_t turn = 0;        // elements of each of the two turn-taking windows
        size_t embeddings = 0;  // the tied embeddings' window; 0 when untied
    };
    struct Range {
        size_t begin, end;
        Master* at;  // the window holding [begin, end)
    };

    static Windows windows(const ParamTable& table) {
        const size_t L = table.layers.size();
        auto layer_begin = [&](size_t l) { return l < L ? table.layers[l].ln1_w : table.lnf_w; };
        const size_t embeddings = layer_begin(0);
        const bool tied = table.lm_head < embeddings;
        size_t turn = table.total - table.lnf_w;
        for (size_t l = 0; l < L; l++) turn = std::max(turn, layer_begin(l + 1) - layer_begin(l));
        if (!tied) turn = std::max(turn, embeddings);
        auto rounded = [](size_t n) { return (n + 63) / 64 * 64; };  // windows start 256 bytes apart
        return {rounded(turn), tied ? rounded(embeddings) : 0};
    }

    // The part of [b, e) inside rank q's shard.
    std::pair<size_t, size_t> part(size_t b, size_t e, size_t q) const {
        return {std::max(b, q * size_), std::min(e, (q + 1) * size_)};
    }

    Master* open(size_t b, size_t e) {
        Master* at = embeddings_ && b == 0 ? embeddings_ : turns_[next_++ % 2];
        if (reducing_ && reducing_->at == at) throw std::logic_error("ShardedGrads: a window reused while reduced");
        ops_.zero(at, e - b);
        const auto [lo, hi] = part(b, e, begin_ / size_);
        if (lo < hi) ops_.copy_bytes(at + (lo - b), shard_ + (lo - begin_), (hi - lo) * sizeof(Master));
        open_.push_back({b, e, at});
        return at;
    }

    // [b, e) is final for this micro-batch: the previous range's reduction is taken in, and this
    // one's parts start towards their shards' ranks, in rank order on every rank.
    void reduce(size_t b, size_t e) {
        settle();
        const auto it = std::find_if(open_.begin(), open_.end(), [&](const Range& r) { return r.begin == b; });
        if (it == open_.end() || it->end != e) throw std::logic_error("ShardedGrads: a range final but never open");
        reducing_ = *it;
        open_.erase(it);
        for (int q = 0; q < comm_.world(); q++)
            if (const auto [lo, hi] = part(b, e, q); lo < hi) comm_.reduce_start(reducing_->at + (lo - b), hi - lo, q);
    }

    // The running reduction finished, its sum in this rank's part copied into the shard.
    void settle() {
        if (!reducing_) return;
        comm_.finish_started();
        const auto [b, e, at] = *reducing_;
        const auto [lo, hi] = part(b, e, begin_ / size_);
        if (lo < hi) ops_.copy_bytes(shard_ + (lo - begin_), at + (lo - b), (hi - lo) * sizeof(Master));
        reducing_.reset();
    }

    Model<S>& model_;
    LayerOps<S>& ops_;
    Comm& comm_;
    const size_t begin_, size_;
    const Windows w_;
    Master* shard_ = nullptr;  // (size)
    Master* turns_[2] = {};
    Master* embeddings_ = nullptr;
    size_t next_ = 0;                // which turn the next range takes
    std::vector<Range> open_;        // ranges the backward writes now
    std::optional<Range> reducing_;  // the range whose reduction runs
};

}  // namespace rkv
