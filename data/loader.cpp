// DataLoader: windows of the concatenated shard stream (semantics in loader.h).
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "data/rng.h"

namespace rkv {

void to_json(nlohmann::json& j, const LoaderState& s) {
    j = {{"epoch", s.epoch}, {"batch", s.batch}};
}

void from_json(const nlohmann::json& j, LoaderState& s) {
    j.at("epoch").get_to(s.epoch);
    j.at("batch").get_to(s.batch);
}

DataLoader::DataLoader(const LoaderOptions& opts) : opts_(opts) {
    if (opts.B <= 0 || opts.T <= 0 || opts.world <= 0 || opts.rank < 0 || opts.rank >= opts.world ||
        opts.vocab_size <= 0)
        throw std::invalid_argument(
            fmt::format("DataLoader: bad options B={} T={} rank={} world={} vocab_size={}", opts.B, opts.T,
                        opts.rank, opts.world, opts.vocab_size));

    shard_start_.push_back(0);
    for (const std::string& path : expand_glob(opts.pattern)) {
        shards_.emplace_back(path, opts.vocab_size);
        shard_start_.push_back(shard_start_.back() + shards_.back().size());
    }

    // Each global batch reads B*T*world tokens plus one for the last target.
    int64_t global_tokens = int64_t(opts.B) * opts.T * opts.world;
    batches_per_epoch_ = std::max<int64_t>(num_tokens() - 1, 0) / global_tokens;
    if (batches_per_epoch_ == 0)
        throw DataError(
            fmt::format("{}: {} tokens in {} shard(s), too few for one batch of B*T*world + 1 = {}x{}x{} + 1 "
                        "tokens",
                        opts.pattern, num_tokens(), shards_.size(), opts.B, opts.T, opts.world));
}

void DataLoader::restore(const LoaderState& s) {
    if (s.epoch < 0 || s.batch < 0 || s.batch >= batches_per_epoch_)
        throw DataError(fmt::format(
            "{}: cannot resume at epoch {} batch {}: an epoch has {} batches (did the data, B, T or "
            "world change?)",
            opts_.pattern, s.epoch, s.batch, batches_per_epoch_));
    pos_ = s;
}

int64_t DataLoader::current_window() {
    int64_t slot = pos_.batch * opts_.world + opts_.rank;
    if (!opts_.shuffle) return slot;
    if (order_epoch_ != pos_.epoch) {
        // Fisher-Yates with a stream of its own per epoch: any epoch's order can be drawn
        // directly, which is what restore() needs, and every rank draws the same one.
        // It permutes every whole window of the stream, whatever the world size, so that
        // ranks x micro-batches splits of one global batch read the same windows; an epoch
        // serves the first batches_per_epoch * world of them.
        order_.resize((num_tokens() - 1) / (int64_t(opts_.B) * opts_.T));
        std::iota(order_.begin(), order_.end(), int64_t(0));
        SplitMix64 rng(stream_seed(opts_.seed, uint64_t(pos_.epoch)));
        for (int64_t i = int64_t(order_.size()) - 1; i > 0; i--)
            std::swap(order_[i], order_[rng.below(uint64_t(i) + 1)]);
        order_epoch_ = pos_.epoch;
    }
    return order_[slot];
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
    int64_t n = int64_t(opts_.B) * opts_.T;
    int64_t start = current_window() * n;
    // Targets are the inputs shifted by one, plus the token after the window.
    gather(start, n, inputs);
    std::memcpy(targets, inputs + 1, (n - 1) * sizeof(int32_t));
    gather(start + n, 1, targets + n - 1);

    if (++pos_.batch == batches_per_epoch_) pos_ = {pos_.epoch + 1, 0};
}

void DataLoader::gather(int64_t start, int64_t n, int32_t* out) const {
    // The shard holding token `start`: the last one that begins at or before it
    // (empty shards begin where the next one does, so they are never picked).
    size_t s = std::upper_bound(shard_start_.begin(), shard_start_.end(), start) - shard_start_.begin() - 1;
    for (; n > 0; s++) {
        int64_t offset = start - shard_start_[s];
        int64_t take = std::min(n, shards_[s].size() - offset);
        shards_[s].copy(offset, take, out);
        out += take;
        start += take;
        n -= take;
    }
}

}  // namespace rkv
