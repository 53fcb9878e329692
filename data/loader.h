// DataLoader: serves (B, T) micro-batches of inputs and next-token targets from a set
// of token shards or of fine-tuning row files, split across ranks, optionally shuffled,
// resumable.
//
// Token shards: the shards matching the pattern, in sorted order, form one token stream of
// N tokens. It is cut into windows of B*T tokens: window w holds inputs [w*B*T, (w+1)*B*T)
// and reads one token past its end for the last target, so windows may span shards.
// Row files (data/sft_file.h): the files' rows, in sorted file order, are numbered 0 .. R-1;
// a micro-batch is B rows, each one sequence, with targets of -1 on tokens without loss.
//
// A unit is a window (shards) or a row (row files); a micro-batch reads `per` = 1 window or
// B rows. A global batch is `world` consecutive micro-batches, one per rank; an epoch is the
// batches_per_epoch = units / (per*world) global batches that fit, and the units that do not
// fit are skipped. Micro-batch slot s = k*world + r (global batch k of an epoch, rank r)
// reads units s*per .. s*per + per - 1 of
//   shuffle off: the units in order;
//   shuffle on:  order, a permutation of all the units drawn from (seed, epoch): the same on
//                every rank and platform, and for every world size.
// After the last batch of an epoch the next one starts again at the beginning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/sft_file.h"
#include "data/shard.h"

namespace rkv {

struct LoaderOptions {
    std::string pattern;   // glob(3) of shard files or of row files, in sorted name order
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
    // Opens and checks every file (throws DataError): all shards or all row files, rows of
    // T tokens; too little data for one global batch is an error too.
    explicit DataLoader(const LoaderOptions& opts);

    // inputs, targets: (B, T) row-major; targets[i] is the token after inputs[i], or -1
    // where a row file's mask says it carries no loss.
    void next_batch(int32_t* inputs, int32_t* targets);

    void reset() { restore({}); }  // back to the first batch of epoch 0
    LoaderState state() const { return pos_; }
    void restore(const LoaderState& s);  // the next batch is the one served at state s

    bool rows() const { return !row_files_.empty(); }  // row files, not shards
    int64_t num_tokens() const;                        // in the stream, or in all rows
    std::string summary() const;                       // what it serves, for the user
    int64_t batches_per_epoch() const { return batches_per_epoch_; }
    const LoaderOptions& options() const { return opts_; }
    const std::vector<Shard>& shards() const { return shards_; }
    const std::vector<SftFile>& row_files() const { return row_files_; }

private:
    // out[0..n) = tokens [start, start + n) of the concatenated stream.
    void gather(int64_t start, int64_t n, int32_t* out) const;
    // Row r of the concatenated row files as (T) inputs and targets.
    void read_row(int64_t r, int32_t* inputs, int32_t* targets) const;
    // Unit i of this epoch's serving order.
    int64_t unit(int64_t i);

    LoaderOptions opts_;
    std::vector<Shard> shards_;       // token shards, or
    std::vector<SftFile> row_files_;  // fine-tuning row files
    std::vector<int64_t> start_;      // (num_files + 1,) first token (shards) or row of each file; back() = total
    int64_t units_ = 0;               // windows or rows
    int64_t per_ = 1;                 // units per micro-batch
    int64_t batches_per_epoch_ = 0;
    LoaderState pos_;
    std::vector<int64_t> order_;  // shuffle only: (units_,) serving order
    int64_t order_epoch_ = -1;    // the epoch order_ was drawn for
};

}  // namespace rkv
