// Fine-tuning examples -> rows: JSON Lines of {"prompt": ..., "completion": ...}, one example
// per line, become the rows of data/sft_file.h, one example per row:
//
//   [bos] prompt completion [eos] pad pad ...     (T tokens)
//   mask  0 ... 0   1 ...   1    1   0   0        (1: the target carries loss)
//
// Prompt and completion are encoded separately (so the boundary between them is exact) by the
// encoder given: the byte-level tokenizer, or a model's tokenizer. bos and eos are added when
// set (>= 0); the eos carries loss, so the model learns to stop.
//
// Too long for T: the prompt loses tokens from its left (its end, next to the completion, is
// kept), down to one token. An example whose completion does not fit even then is dropped, not
// cut: a completion cut short would teach answers that stop mid-way. An example with nothing to
// learn (an empty completion and no eos) is dropped too. Every drop and cut is counted.
//
// A line that is not a JSON object with both fields as strings stops the conversion with
// "file:line: problem"; blank lines are skipped and other fields ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/sft_file.h"

namespace rkv {

using Encoder = std::function<std::vector<int32_t>(std::string_view text)>;

struct SftOptions {
    int T = 0;  // tokens per row: the training --seq-len
    std::string prompt_field = "prompt";
    std::string completion_field = "completion";
    int32_t bos = -1;         // starts every row when >= 0
    int32_t eos = -1;         // ends every completion when >= 0
    int32_t pad = 0;          // fills the rows after the example
    double val_fraction = 0;  // share of the kept examples, spread evenly, for validation
};

struct SftCounts {
    int64_t examples = 0;  // lines with an example
    int64_t train_rows = 0, val_rows = 0;
    int64_t prompts_truncated = 0;  // kept examples whose prompt lost tokens from its left
    int64_t prompt_tokens_cut = 0;  // the tokens they lost
    int64_t dropped_too_long = 0;   // completion (with bos, eos and one prompt token) longer than T
    int64_t dropped_no_loss = 0;    // nothing to learn
    int64_t loss_tokens = 0;        // targets that carry loss, over both splits
};

struct SftSplits {
    SftRows train, val;
    SftCounts counts;
};

// The examples of the JSON Lines files, in order, as train and validation rows (all in memory:
// 5 bytes per token of T per example). Throws DataError naming file:line for a bad line, or the
// problem with the options.
SftSplits make_sft_rows(const std::vector<std::string>& jsonl_files, const Encoder& encode, const SftOptions& o);

// Writes DIR/<name>_train.bin and DIR/<name>_val.bin (DIR created; a split without rows writes
// no file) with tokens of 2 bytes when vocab_size <= 65536, else 4. Returns the paths written.
std::vector<std::string> write_sft_splits(const std::string& dir, const std::string& name, const SftSplits& splits,
                                          int vocab_size);

// One line for the user: rows per split, truncations and drops.
std::string sft_report(const SftCounts& c);

}  // namespace rkv
