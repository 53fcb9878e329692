// rkv checkpoints (DESIGN.md section 5): a directory OUT/ckpt_<step> holding
//   model.safetensors      parameters under Hugging Face names (F32; src/hf_model.h)
//   config.json            the model config (Hugging Face field names), with an "rkv" block
//   generation_config.json and the tokenizer files of the folder training started from
//   optimizer.safetensors  AdamW's m and v ("m.<name>", "v.<name>", the parameter table's names),
//     or with --zero one file per rank, optimizer-<rank>-of-<world>.safetensors, each with its
//     rank's slice (src/sharded_checkpoint.h); state.json's "optimizer_shards" is then world
//   state.json             step, data-loader position, route key, run options
// It is written as ckpt_<step>.tmp and renamed once complete (every rank's file written), so
// a crash never leaves a half-written checkpoint under the real name. Its model part is a
// Hugging Face model folder that transformers loads as it is.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/config.h"
#include "src/hf_model.h"
#include "src/params.h"
#include "src/sharded_checkpoint.h"

namespace rkv {

struct Checkpoint {
    ModelConfig config;
    std::vector<float> params;  // (table.total)
    nlohmann::json state;       // empty for a model-only checkpoint or when not loaded
    std::string source;         // the model folder read, "" for an llm.c .bin
};

// Returns the directory written. extras: what its model folder carries beside the weights.
// m and v: the whole table's, into optimizer.safetensors.
std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config, const float* params,
                            const std::vector<float>& m, const std::vector<float>& v, const nlohmann::json& state,
                            const ModelFolderExtras& extras = {});
// The steps of save_checkpoint, for a checkpoint that several ranks write (src/trainer.cpp):
// its directory and the temporary one it is written as (checkpoint_tmp), the model folder and
// state.json into the temporary one, then the rename that makes it complete.
std::string checkpoint_dir(const std::string& out_dir, long step);
std::string checkpoint_tmp(const std::string& out_dir, long step);
void write_checkpoint_model(const std::string& tmp, const ModelConfig& config, const float* params,
                            const nlohmann::json& state, const ModelFolderExtras& extras);
void commit_checkpoint(const std::string& out_dir, long step);
// Loads a checkpoint directory's weights, and state.json when with_state.
Checkpoint load_checkpoint(const std::string& path, bool with_state);
// AdamW's state of elements [begin, begin + count) of the flat buffer (zeros past the table)
// from checkpoint dir, whatever the number of ranks that wrote it: state.json's
// "optimizer_shards" W says W rank files (read_optimizer_shards, their master weights iff
// `master`), its absence the whole state in optimizer.safetensors (the master weights are then
// the model's: the slice's master is left empty).
OptimizerSlice load_optimizer(const std::string& dir, const nlohmann::json& state, const ParamTable& table,
                              size_t begin, size_t count, bool master);
// A model's weights, opened and checked, not yet read: from a model folder (a Hugging Face
// folder or an rkv checkpoint), a run folder (its newest checkpoint) or an llm.c GPT-2 .bin
// (src/llmc_checkpoint.h), whichever path names. A folder's files are mapped and checked
// against its config (src/hf_model.h) before anything is allocated for the model; reading
// converts each tensor straight from the mapped file into the caller's buffer.
class ModelWeights {
public:
    explicit ModelWeights(const std::string& path);  // throws naming the path and the problem
    const ModelConfig& config() const { return config_; }
    const std::string& source() const { return source_; }  // the model folder, "" for an llm.c .bin
    // Into params, ParamTable(config()).total floats on the host.
    void read(float* params) const;
    // Tensor by tensor (src/hf_model.h, ModelFolder::read_each).
    void read_each(const std::function<void(size_t, const float*, size_t)>& sink) const;

private:
    ModelConfig config_;
    std::string source_;
    std::unique_ptr<ModelFolder> folder_;
    std::vector<float> llmc_;  // an llm.c .bin is read whole
};

// ModelWeights(path) read into a Checkpoint's params.
Checkpoint load_model_weights(const std::string& path);
// The newest complete checkpoint in out_dir, if any.
std::optional<std::string> latest_checkpoint(const std::string& out_dir);

}  // namespace rkv
