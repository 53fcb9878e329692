#include "src/hf_model.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "src/file_io.h"

namespace fs = std::filesystem;

namespace rkv {

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// What transformers' tokenizers save (those of the source folder are carried over as they are).
constexpr const char* kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt",     "added_tokens.json",     "chat_template.jinja"};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", where, what));
}

std::string read_text(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path.string(), "cannot open");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

nlohmann::json read_json(const fs::path& path) {
    try {
        return nlohmann::json::parse(read_text(path));
    } catch (const nlohmann::json::exception& e) {
        fail(path.string(), fmt::format("not JSON: {}", e.what()));
    }
}

// GPT-2's Hugging Face layout has a fused (C, 3C) c_attn, full-width heads and LayerNorm,
// GELU and biases everywhere; a gpt2 config that differs (rkv's own config fields allow it)
// keeps the table's names, which transformers cannot load anyway.
bool gpt2_layout(const ModelConfig& c) {
    return c.model_type == "gpt2" && c.norm == Norm::LayerNorm && c.positions == Positions::Learned &&
           c.mlp == Mlp::Gelu && !c.qk_norm && c.attention_bias && c.mlp_bias &&
           c.num_key_value_heads == c.num_attention_heads && c.q_dim() == c.hidden_size;
}

const char* architecture(const std::string& model_type) {
    if (model_type == "gpt2") return "GPT2LMHeadModel";
    if (model_type == "llama") return "LlamaForCausalLM";
    if (model_type == "mistral") return "MistralForCausalLM";
    if (model_type == "qwen3") return "Qwen3ForCausalLM";
    throw std::invalid_argument(fmt::format("no Hugging Face architecture for model_type '{}'", model_type));
}

// Buffers some files carry that are not weights: GPT-2's causal masks, old Llamas' RoPE table;
// and a tied model's head, for which transformers uses the embedding.
bool ignored(const std::string& name, const ModelConfig& c) {
    return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") ||
           name.ends_with("rotary_emb.inv_freq") || (c.tie_word_embeddings && name == "lm_head.weight");
}

}  // namespace

std::vector<HfTensor> hf_tensors(const ModelConfig& c, const ParamTable& table, const std::string& gpt2_prefix) {
    std::vector<HfTensor> out;
    if (!gpt2_layout(c)) {
        for (auto& t : table.tensors) out.push_back({t.name, t.shape, t.offset, false});
        return out;
    }
    const int64_t V = c.vocab_size, C = c.hidden_size, FF = c.intermediate_size;
    const std::string& p = gpt2_prefix;
    out.push_back({p + "wte.weight", {V, C}, table.wte, false});
    out.push_back({p + "wpe.weight", {c.max_position_embeddings, C}, table.wpe, false});
    for (int l = 0; l < c.num_hidden_layers; l++) {
        const LayerParams& lp = table.layers[l];
        const std::string h = fmt::format("{}h.{}.", p, l);
        out.push_back({h + "ln_1.weight", {C}, lp.ln1_w, false});
        out.push_back({h + "ln_1.bias", {C}, lp.ln1_b, false});
        out.push_back({h + "attn.c_attn.weight", {C, 3 * C}, lp.q_w, true});  // q_proj, k_proj, v_proj fused
        out.push_back({h + "attn.c_attn.bias", {3 * C}, lp.q_b, false});
        out.push_back({h + "attn.c_proj.weight", {C, C}, lp.o_w, true});
        out.push_back({h + "attn.c_proj.bias", {C}, lp.o_b, false});
        out.push_back({h + "ln_2.weight", {C}, lp.ln2_w, false});
        out.push_back({h + "ln_2.bias", {C}, lp.ln2_b, false});
        out.push_back({h + "mlp.c_fc.weight", {C, FF}, lp.up_w, true});
        out.push_back({h + "mlp.c_fc.bias", {FF}, lp.up_b, false});
        out.push_back({h + "mlp.c_proj.weight", {FF, C}, lp.down_w, true});
        out.push_back({h + "mlp.c_proj.bias", {C}, lp.down_b, false});
    }
    out.push_back({p + "ln_f.weight", {C}, table.lnf_w, false});
    out.push_back({p + "ln_f.bias", {C}, table.lnf_b, false});
    if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, C}, table.lm_head, false});
    size_t covered = 0;  // the names above are the whole table, each element once
    for (auto& t : out) covered += TensorInfo{t.name, t.shape}.numel();
    if (covered != table.total)
        throw std::logic_error(
            fmt::format("GPT-2's Hugging Face tensors hold {} values, the table {}", covered, table.total));
    return out;
}

bool is_model_folder(const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(fs::path(dir) / kSingleFile, ec) || fs::is_regular_file(fs::path(dir) / kIndexFile, ec);
}

ModelFolder::ModelFolder(const std::string& dir) : dir_(dir) {
    const fs::path d(dir), index = d / kIndexFile, single = d / kSingleFile;
    if (!fs::is_directory(d)) fail(dir, "not a directory");
    config_ = load_config((d / "config.json").string());
    std::string where;  // what a missing tensor is reported against: the file, or the index
    if (fs::exists(index)) {
        where = index.string();
        const nlohmann::json j = read_json(index);
        if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
            fail(where, "has no weight_map object");
        std::map<std::string, const SafetensorsFile*> opened;
        for (auto& [name, file] : j.at("weight_map").items()) {
            if (!file.is_string()) fail(where, fmt::format("weight_map of tensor '{}' is not a file name", name));
            const std::string f = file.get<std::string>();
            if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
                fail(where,
                     fmt::format("weight_map names '{}' for tensor '{}': not a file name in this folder", f, name));
            if (!opened.count(f)) {
                if (!fs::is_regular_file(d / f))
                    fail(where, fmt::format("weight_map names {} for tensor '{}', which does not exist", f, name));
                files_.push_back(std::make_unique<SafetensorsFile>((d / f).string()));
                opened[f] = files_.back().get();
            }
            if (!opened[f]->has(name))
                fail(opened[f]->path(), fmt::format("no tensor '{}' (the index {} says it is here)", name, kIndexFile));
            where_[name] = opened[f];
        }
        for (auto& file : files_)
            for (auto& [name, e] : file->tensors()) {
                auto it = where_.find(name);
                if (it == where_.end() && !ignored(name, config_))
                    fail(file->path(), fmt::format("tensor '{}' is not in the weight_map of {}", name, kIndexFile));
                if (it != where_.end() && it->second != file.get())
                    fail(file->path(),
                         fmt::format("tensor '{}' is also in {}, where the index puts it", name, it->second->path()));
            }
    } else if (fs::exists(single)) {
        where = single.string();
        files_.push_back(std::make_unique<SafetensorsFile>(where));
        for (auto& [name, e] : files_[0]->tensors()) where_[name] = files_[0].get();
    } else {
        fail(dir, fmt::format("no {} or {}: not a model folder", kSingleFile, kIndexFile));
    }
    // Every layer has at least six tensors: a config asking for more layers than the files
    // could hold is refused before its table is built.
    if (uint64_t(config_.num_hidden_layers) * 6 > where_.size())
        fail(where, fmt::format("holds {} tensors, too few for the {} layers of config.json", where_.size(),
                                config_.num_hidden_layers));
    const ParamTable table(config_);
    std::string gpt2_prefix = "transformer.";
    if (config_.model_type == "gpt2") {
        if (where_.count("model.embed_tokens.weight")) {  // written by an earlier rkv: the table's names
            for (auto& t : table.tensors) tensors_.push_back({t.name, t.shape, t.offset, false});
        } else {
            if (!where_.count("transformer.wte.weight") && where_.count("wte.weight")) gpt2_prefix = "";
            tensors_ = hf_tensors(config_, table, gpt2_prefix);
        }
    } else {
        tensors_ = hf_tensors(config_, table);
    }
    std::set<std::string> expected;
    for (auto& t : tensors_) {
        auto it = where_.find(t.name);
        if (it == where_.end())
            fail(where, fmt::format("no tensor '{}' (the {} model of config.json has it)", t.name, config_.model_type));
        it->second->check(t.name, t.shape);
        expected.insert(t.name);
    }
    for (auto& [name, file] : where_)
        if (!expected.count(name) && !ignored(name, config_))
            fail(file->path(), fmt::format("tensor '{}' is not a parameter of the {} model of config.json", name,
                                           config_.model_type));
}

void ModelFolder::read(float* params) const {
    for (auto& t : tensors_) where_.at(t.name)->read(t.name, t.shape, params + t.offset, t.transposed);
}

void ModelFolder::read_each(const std::function<void(size_t, const float*, size_t)>& sink) const {
    std::vector<float> buffer;
    for (auto& t : tensors_) {
        const size_t n = TensorInfo{t.name, t.shape}.numel();
        buffer.resize(n);
        where_.at(t.name)->read(t.name, t.shape, buffer.data(), t.transposed);
        sink(t.offset, buffer.data(), n);
    }
}

void save_model_folder(const std::string& dir, const ModelConfig& c, const float* params,
                       const ModelFolderExtras& extras) {
    fs::create_directories(dir);
    const ParamTable table(c);
    const std::vector<HfTensor> tensors = hf_tensors(c, table);
    std::vector<std::vector<float>> transposed;  // the Conv1D matrices, (in, out)
    std::vector<TensorRef> refs;
    for (auto& t : tensors) {
        const float* data = params + t.offset;
        if (t.transposed) {
            const size_t in = size_t(t.shape[0]), out = size_t(t.shape[1]);  // rkv holds (out, in)
            std::vector<float>& m = transposed.emplace_back(in * out);
            for (size_t o = 0; o < out; o++)
                for (size_t i = 0; i < in; i++) m[i * out + o] = data[o * in + i];
            data = m.data();
        }
        refs.push_back({t.name, t.shape, data});
    }
    write_safetensors(dir + "/" + kSingleFile, refs, {{"format", "pt"}}, extras.dtype);

    // What the source folder said about its special tokens, when there was one.
    const fs::path src(extras.source);
    nlohmann::json source_config = nlohmann::json::object();
    if (!extras.source.empty() && fs::is_regular_file(src / "config.json"))
        source_config = read_json(src / "config.json");
    nlohmann::json config = to_json(c);
    if (!config.contains("architectures")) config["architectures"] = {architecture(c.model_type)};
    if (c.model_type == "gpt2") {  // GPT2Config's own names; it reads no intermediate_size or rms_norm_eps
        const nlohmann::json names = {{"n_embd", c.hidden_size},          {"n_layer", c.num_hidden_layers},
                                      {"n_head", c.num_attention_heads},  {"n_positions", c.max_position_embeddings},
                                      {"n_inner", c.intermediate_size},   {"layer_norm_epsilon", c.rms_norm_eps},
                                      {"activation_function", "gelu_new"}};
        for (auto& [key, value] : names.items())
            if (!config.contains(key)) config[key] = value;
    }
    const char* dtype = extras.dtype == Dtype::F32 ? "float32" : "bfloat16";
    config["dtype"] = dtype;        // transformers 5
    config["torch_dtype"] = dtype;  // transformers 4
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
        if (!config.contains(key) && source_config.contains(key)) config[key] = source_config[key];
    if (!extras.rkv.empty())
        config["rkv"] = extras.rkv;
    else if (source_config.contains("rkv"))
        config["rkv"] = source_config["rkv"];  // a checkpoint converted
    write_text_atomic(dir + "/config.json", config.dump(2) + "\n");

    const bool same = !extras.source.empty() && fs::exists(src) && fs::equivalent(src, fs::path(dir));
    if (!extras.source.empty() && !same && fs::is_regular_file(src / "generation_config.json")) {
        write_text_atomic(dir + "/generation_config.json", read_text(src / "generation_config.json"));
    } else if (!same) {
        nlohmann::json gen = nlohmann::json::object();
        for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
            if (config.contains(key)) gen[key] = config[key];
        write_text_atomic(dir + "/generation_config.json", gen.dump(2) + "\n");
    }
    if (extras.source.empty() || same) return;
    for (const char* name : kTokenizerFiles)
        if (fs::is_regular_file(src / name)) write_text_atomic(dir + "/" + name, read_text(src / name));
}

}  // namespace rkv
