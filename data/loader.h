// DataLoader: serves (B, T) micro-batches of inputs and next-token targets from a set
// of token shards, split across ranks, optionally shuffled, resumable.
//
// The shards matching the pattern, in sorted order, form one token stream of N tokens.
// It is cut into windows of B*T tokens: window w holds inputs [w*B*T, (w+1)*B*T) and
// reads one token past its end for the last target, so windows may span shards.
// A global batch is `world` consecutive windows, one per rank; an epoch is the
// batches_per_epoch = (N - 1) / (B*T*world) global batches that fit, and the tail
// that does not fit is skipped. Global batch k of an epoch, rank r, reads window
//   shuffle off: k*world + r, i.e. tokens [k*B*T*world + r*B*T, ... + B*T]
//   shuffle on:  order[k*world + r], order a permutation of all the stream's whole
//                windows drawn from (seed, epoch): the same on every rank and platform,
//                and for every world size.
// After the last batch of an epoch the next one starts again at the beginning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/shard.h"

namespace rkv {

struct LoaderOptions {
    std::string pattern;   // glob(3) of shard files, concatenated in sorted name order
    int B = 0;             // sequences per micro-batch
    int T = 0;             // tokens per sequence
    int rank = 0;          // this rank reads the rank-th window of each global batch
    int world = 1;         // ranks sharing the global batch
    bool shuffle = false;  // permute the window order each epoch
    uint64_t seed = 0;     // of the permutations
    int vocab_size = 0;    // every token id must be below this; required
};

// The exact position of a loader: the next batch it serves. Saved in checkpoints.
struct LoaderState {
    int64_t epoch = 0;
    int64_t batch = 0;  // global batch within the epoch, in [0, batches_per_epoch)
    bool operator==(const LoaderState&) const = default;
};
void to_json(nlohmann::json& j, const LoaderState& s);
void from_json(const nlohmann::json& j, LoaderState& s);

class DataLoader {
public:
    // Opens and checks every shard (throws DataError); too few tokens for one global
    // batch is an error too.
    explicit DataLoader(const LoaderOptions& opts);

    // inputs, targets: (B, T) row-major; targets[i] is the token after inputs[i].
    void next_batch(int32_t* inputs, int32_t* targets);

    void reset() { restore({}); }  // back to the first batch of epoch 0
    LoaderState state() const { return pos_; }
    void restore(const LoaderState& s);  // the next batch is the one served at state s

    int64_t num_tokens() const { return shard_start_.back(); }
    int64_t batches_per_epoch() const { return batches_per_epoch_; }
    const LoaderOptions& options() const { return opts_; }
    const std::vector<Shard>& shards() const { return shards_; }

private:
    // out[0..n) = tokens [start, start + n) of the concatenated stream.
    void gather(int64_t start, int64_t n, int32_t* out) const;
    // The window that batch pos_ of this rank reads.
    int64_t current_window();

    LoaderOptions opts_;
    std::vector<Shard> shards_;
    std::vector<int64_t> shard_start_;  // (num_shards + 1,) stream offset of each shard; back() = N
    int64_t batches_per_epoch_ = 0;
    LoaderState pos_;
    std::vector<int64_t> order_;  // shuffle only: (batches_per_epoch * world,) serving order
    int64_t order_epoch_ = -1;    // the epoch order_ was drawn for
};

}  // namespace rkv
