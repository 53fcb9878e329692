// DataLoader: windows of the concatenated shard stream, or rows of row files (semantics in loader.h).
#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "data/rng.h"

namespace rkv {

void to_json(nlohmann::json& j, const LoaderState& s) { j = {{"epoch", s.epoch}, {"batch", s.batch}}; }

void from_json(const nlohmann::json& j, LoaderState& s) {
    j.at("epoch").get_to(s.epoch);
    j.at("batch").get_to(s.batch);
}

DataLoader::DataLoader(const LoaderOptions& opts) : opts_(opts) {
    if (opts.B <= 0 || opts.T <= 0 || opts.world <= 0 || opts.rank < 0 || opts.rank >= opts.world ||
        opts.vocab_size <= 0)
        throw std::invalid_argument(fmt::format("DataLoader: bad options B={} T={} rank={} world={} vocab_size={}",
                                                opts.B, opts.T, opts.rank, opts.world, opts.vocab_size));

    // One kind per pattern, told by the first file's magic.
    const std::vector<std::string> files = expand_glob(opts.pattern);
    const bool rows = is_sft_file(files[0]);  // of row files
    start_.push_back(0);
    for (const std::string& path : files) {
        if (is_sft_file(path) != rows)
            data_fail(path, "{} among the {} of {} (the first is {}): the files of one pattern must be of one kind",
                      rows ? "not a fine-tuning row file" : "a fine-tuning row file",
                      rows ? "row files" : "token shards", opts.pattern, files[0]);
        if (rows) {
            row_files_.emplace_back(path, opts.vocab_size);
            if (row_files_.back().T() != opts.T)
                data_fail(path,
                          "rows of {} tokens, but the sequence length is {}: a row file serves the length it "
                          "was written for",
                          row_files_.back().T(), opts.T);
            start_.push_back(start_.back() + row_files_.back().rows());
        } else {
            shards_.emplace_back(path, opts.vocab_size);
            start_.push_back(start_.back() + shards_.back().size());
        }
    }

    // A window of B*T tokens reads one more for its last target; a row is one sequence.
    per_ = rows ? opts.B : 1;
    units_ = rows ? start_.back() : std::max<int64_t>(start_.back() - 1, 0) / (int64_t(opts.B) * opts.T);
    batches_per_epoch_ = units_ / (per_ * opts.world);
    if (batches_per_epoch_ == 0)
        throw DataError(
            rows ? fmt::format("{}: {} rows in {} file(s), too few for one batch of B*world = {}x{} rows", opts.pattern,
                               units_, row_files_.size(), opts.B, opts.world)
                 : fmt::format("{}: {} tokens in {} shard(s), too few for one batch of B*T*world + 1 = {}x{}x{} + 1 "
                               "tokens",
                               opts.pattern, num_tokens(), shards_.size(), opts.B, opts.T, opts.world));
}

int64_t DataLoader::num_tokens() const { return rows() ? start_.back() * opts_.T : start_.back(); }

std::string DataLoader::summary() const {
    if (!rows()) return fmt::format("{} tokens", num_tokens());
    int64_t loss = 0;
    for (const SftFile& f : row_files_) loss += f.loss_tokens();
    return fmt::format("{} rows of {} tokens, {} carry loss", start_.back(), opts_.T, loss);
}

void DataLoader::restore(const LoaderState& s) {
    if (s.epoch < 0 || s.batch < 0 || s.batch >= batches_per_epoch_)
        throw DataError(
            fmt::format("{}: cannot resume at epoch {} batch {}: an epoch has {} batches (did the data, B, T or "
                        "world change?)",
                        opts_.pattern, s.epoch, s.batch, batches_per_epoch_));
    pos_ = s;
}

int64_t DataLoader::unit(int64_t i) {
    if (!opts_.shuffle) return i;
    if (order_epoch_ != pos_.epoch) {
        // Fisher-Yates with a stream of its own per epoch: any epoch's order can be drawn
        // directly, which is what restore() needs, and every rank draws the same one.
        // It permutes every unit, whatever the world size, so that ranks x micro-batches
        // splits of one global batch read the same units; an epoch serves the first
        // batches_per_epoch * world * per of them.
        order_.resize(units_);
        std::iota(order_.begin(), order_.end(), int64_t(0));
        SplitMix64 rng(stream_seed(opts_.seed, uint64_t(pos_.epoch)));
        for (int64_t i = int64_t(order_.size()) - 1; i > 0; i--)
            std::swap(order_[i], order_[rng.below(uint64_t(i) + 1)]);
        order_epoch_ = pos_.epoch;
    }
    return order_[i];
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
    const int64_t slot = pos_.batch * opts_.world + opts_.rank;
    const int64_t T = opts_.T, n = opts_.B * T;
    if (rows()) {
        for (int64_t b = 0; b < opts_.B; b++) read_row(unit(slot * per_ + b), inputs + b * T, targets + b * T);
    } else {
        const int64_t start = unit(slot) * n;
        // Targets are the inputs shifted by one, plus the token after the window.
        gather(start, n, inputs);
        std::memcpy(targets, inputs + 1, (n - 1) * sizeof(int32_t));
        gather(start + n, 1, targets + n - 1);
    }
    if (++pos_.batch == batches_per_epoch_) pos_ = {pos_.epoch + 1, 0};
}

void DataLoader::read_row(int64_t r, int32_t* inputs, int32_t* targets) const {
    // The file holding row r: the last one that begins at or before it.
    size_t f = std::upper_bound(start_.begin(), start_.end(), r) - start_.begin() - 1;
    row_files_[f].row(r - start_[f], inputs, targets);
}

void DataLoader::gather(int64_t start, int64_t n, int32_t* out) const {
    // The shard holding token `start`: the last one that begins at or before it
    // (empty shards begin where the next one does, so they are never picked).
    size_t s = std::upper_bound(start_.begin(), start_.end(), start) - start_.begin() - 1;
    for (; n > 0; s++) {
        int64_t offset = start - start_[s];
        int64_t take = std::min(n, shards_[s].size() - offset);
        shards_[s].copy(offset, take, out);
        out += take;
        start += take;
        n -= take;
    }
}

}  // namespace rkv
