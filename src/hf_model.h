// Hugging Face model folders (DESIGN.md section 5), read and written: config.json, the weights
// in model.safetensors or sharded (model.safetensors.index.json, whose weight_map names the
// file of each tensor, model-0000N-of-0000M.safetensors), generation_config.json and the
// tokenizer's files. Every rkv checkpoint's model part is such a folder.
//
// Tensor names: Llama, Mistral and Qwen3 use the parameter table's names (src/params.h).
// GPT-2 uses its own, under "transformer." (or no prefix, as the hub's gpt2 files):
//   wte (V, C), wpe (maxT, C), h.N.ln_1, h.N.attn.c_attn (C, 3C), h.N.attn.c_proj (C, C),
//   h.N.ln_2, h.N.mlp.c_fc (C, FF), h.N.mlp.c_proj (FF, C), ln_f; lm_head when untied.
// Its matrices are Conv1D modules, stored (in, out) where rkv keeps (out, in), and c_attn
// fuses q, k and v: transposed it is (3C, C), rkv's adjacent q_proj, k_proj, v_proj. The
// attn.bias / attn.masked_bias buffers of old GPT-2 files are causal masks, not weights:
// ignored. GPT-2 checkpoints of earlier rkv versions name their tensors like Llama's: read too;
// a gpt2 config that GPT-2's layout cannot hold (GQA, RMSNorm ...) keeps those names.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/config.h"
#include "src/params.h"
#include "src/safetensors.h"

namespace rkv {

// One tensor of a model folder and where its values go in the parameter buffer.
struct HfTensor {
    std::string name;            // as in the folder, e.g. "transformer.h.0.attn.c_attn.weight"
    std::vector<int64_t> shape;  // as in the folder
    size_t offset = 0;           // into the ParamTable buffer
    bool transposed = false;     // Conv1D: the folder holds the transpose of rkv's (out, in)
};

// The tensors of c's model under the names its family uses in Hugging Face folders.
// gpt2_prefix: "transformer." (what transformers writes) or "" (the hub's gpt2 files).
std::vector<HfTensor> hf_tensors(const ModelConfig& c, const ParamTable& table,
                                 const std::string& gpt2_prefix = "transformer.");

// True when dir holds model.safetensors or model.safetensors.index.json.
bool is_model_folder(const std::string& dir);

// A model folder opened and checked against its config.json before anything is allocated
// for the model: every file's header (src/safetensors.h), the sharded index (its files exist,
// each tensor is in the file it names, no tensor in two files), and every tensor the config
// needs present with its shape, none left over but the ignored buffers. Throws
// std::runtime_error naming the file and the tensor.
class ModelFolder {
public:
    explicit ModelFolder(const std::string& dir);
    const ModelConfig& config() const { return config_; }
    const std::string& dir() const { return dir_; }
    // All parameters into params, ParamTable(config()).total floats.
    void read(float* params) const;
    // Each tensor in turn, as sink(offset in the ParamTable buffer, values, count), through one
    // host buffer the size of the largest tensor: for a device, without the whole model on the host.
    void read_each(const std::function<void(size_t, const float*, size_t)>& sink) const;

private:
    std::string dir_;
    ModelConfig config_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, const SafetensorsFile*> where_;  // tensor name -> its file
    std::vector<HfTensor> tensors_;
};

// What a model folder carries beside its weights.
struct ModelFolderExtras {
    Dtype dtype = Dtype::F32;                       // of the weights written
    std::string source;                             // a model folder the weights came from, or "": its tokenizer files
                                                    // and generation_config.json are carried over
    nlohmann::json rkv = nlohmann::json::object();  // config.json's "rkv" block (transformers ignores it)
};

// Writes dir/model.safetensors (Hugging Face names), config.json (to_json, with architectures,
// dtype and the "rkv" block), generation_config.json (the source's, or its bos/eos ids) and
// the source's tokenizer files; each file atomically.
void save_model_folder(const std::string& dir, const ModelConfig& c, const float* params,
                       const ModelFolderExtras& extras = {});

}  // namespace rkv
