// rkv checkpoints (DESIGN.md section 5): a directory OUT/ckpt_<step> holding
//   model.safetensors      parameters, by the parameter table's names (F32)
//   config.json            the model config (Hugging Face field names)
//   optimizer.safetensors  AdamW's m and v ("m.<name>", "v.<name>")
//   state.json             step, data-loader position, route key, run options
// It is written as ckpt_<step>.tmp and renamed once complete, so a crash never leaves
// a half-written checkpoint under the real name.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/config.h"
#include "src/params.h"

namespace rkv {

struct Checkpoint {
    ModelConfig config;
    std::vector<float> params;          // (table.total)
    std::vector<float> m, v;            // (table.total); empty when not loaded
    nlohmann::json state;               // empty for a model-only checkpoint
};

// A model-only checkpoint: dir/model.safetensors and dir/config.json, written atomically.
void save_model(const std::string& dir, const ModelConfig& config, const float* params);
// Returns the directory written.
std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config, const float* params,
                            const std::vector<float>& m, const std::vector<float>& v, const nlohmann::json& state);
// Loads a checkpoint directory; m, v and state only when with_optimizer.
Checkpoint load_checkpoint(const std::string& path, bool with_optimizer);
// A model's config and weights from an rkv checkpoint directory or an llm.c GPT-2 .bin
// (src/llmc_checkpoint.h), whichever path names.
Checkpoint load_model_weights(const std::string& path);
// The newest complete checkpoint in out_dir, if any.
std::optional<std::string> latest_checkpoint(const std::string& out_dir);
// What a --ckpt argument names: a run folder (a directory without model.safetensors) means its
// newest checkpoint; any other path is itself. Throws when a run folder holds no checkpoint.
std::string resolve_checkpoint(const std::string& path);

}  // namespace rkv
