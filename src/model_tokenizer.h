// The text side of a checkpoint: the tokenizer.json and the end-of-sequence ids that go with the
// weights, looked up as transformers' folders keep them (next to the model, or in the run folder
// holding the checkpoint). Used by ./generate_rkv and ./eval_rkv alike.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/hf_tokenizer.h"

namespace rkv {

// Where a checkpoint's side files (tokenizer.json, generation_config.json) may be: its folder (the
// .bin's for an llm.c file), then the folder above (a run folder holding ckpt_*/). None for "".
std::vector<std::filesystem::path> side_folders(const std::string& ckpt);

// tokenizer_json when given, else the first tokenizer.json of side_folders(ckpt), else none
// (byte-level). Throws DataError naming the file when it cannot be read.
std::optional<HfTokenizer> load_tokenizer(const std::string& tokenizer_json, const std::string& ckpt);

// eos_token_id of generation_config.json, else config.json, in side_folders(ckpt): a number or a
// list of them; empty when none says. Throws std::invalid_argument naming a file that is not JSON.
std::vector<int> eos_ids(const std::string& ckpt);

}  // namespace rkv
