#include "src/config.h"

#include <fstream>
#include <map>
#include <stdexcept>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace rkv {

namespace {

void require(bool ok, const char* field, const std::string& why) {
    if (!ok) throw std::invalid_argument(fmt::format("invalid model config: {} {}", field, why));
}

// The architecture switches implied by a family name.
void set_family(ModelConfig& c, const std::string& model_type) {
    c.model_type = model_type;
    if (model_type == "gpt2") {
        c.norm = Norm::LayerNorm;
        c.positions = Positions::Learned;
        c.mlp = Mlp::Gelu;
        c.qk_norm = false;
        c.attention_bias = c.mlp_bias = true;
    } else if (model_type == "llama" || model_type == "mistral" || model_type == "qwen3") {
        c.norm = Norm::RMSNorm;
        c.positions = Positions::RoPE;
        c.mlp = Mlp::SwiGLU;
        c.qk_norm = model_type == "qwen3";
        c.attention_bias = c.mlp_bias = false;
    } else {
        throw std::invalid_argument(fmt::format(
            "invalid model config: model_type '{}' is not one of gpt2, llama, mistral, qwen3", model_type));
    }
}

ModelConfig gpt2(int V, int C, int L, int NH, int maxT) {
    ModelConfig c;
    set_family(c, "gpt2");
    c.vocab_size = V;
    c.hidden_size = C;
    c.intermediate_size = 4 * C;
    c.num_hidden_layers = L;
    c.num_attention_heads = c.num_key_value_heads = NH;
    c.head_dim = C / NH;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = true;
    c.max_position_embeddings = maxT;
    return c;
}

ModelConfig rope_model(const std::string& type, int V, int C, int FF, int L, int NH, int NKV, int HS,
                       double eps, double theta, bool tied, int maxT) {
    ModelConfig c;
    set_family(c, type);
    c.vocab_size = V;
    c.hidden_size = C;
    c.intermediate_size = FF;
    c.num_hidden_layers = L;
    c.num_attention_heads = NH;
    c.num_key_value_heads = NKV;
    c.head_dim = HS;
    c.rms_norm_eps = eps;
    c.rope_theta = theta;
    c.tie_word_embeddings = tied;
    c.max_position_embeddings = maxT;
    return c;
}

const std::map<std::string, ModelConfig>& presets() {
    static const std::map<std::string, ModelConfig> table = {
        {"gpt2-124m", gpt2(50257, 768, 12, 12, 1024)},
        {"gpt2-tiny", gpt2(256, 128, 6, 4, 512)},
        {"llama3-tiny", rope_model("llama", 256, 128, 352, 6, 4, 2, 32, 1e-5, 500000.0, false, 512)},
        {"qwen3-tiny", rope_model("qwen3", 256, 128, 384, 6, 4, 2, 32, 1e-6, 1000000.0, true, 512)},
        {"qwen3-0.6b", rope_model("qwen3", 151936, 1024, 3072, 28, 16, 8, 128, 1e-6, 1000000.0, true, 40960)},
        {"qwen3-1.7b", rope_model("qwen3", 151936, 2048, 6144, 28, 16, 8, 128, 1e-6, 1000000.0, true, 40960)},
    };
    return table;
}

const char* norm_name(Norm n) { return n == Norm::LayerNorm ? "layernorm" : "rmsnorm"; }
const char* positions_name(Positions p) { return p == Positions::Learned ? "learned" : "rope"; }
const char* mlp_name(Mlp m) { return m == Mlp::Gelu ? "gelu" : "swiglu"; }

template <class E>
E parse_enum(const std::string& field, const std::string& value, std::initializer_list<std::pair<const char*, E>> names) {
    for (auto& [name, e] : names)
        if (value == name) return e;
    std::vector<std::string> all;
    for (auto& [name, e] : names) all.push_back(name);
    throw std::invalid_argument(
        fmt::format("invalid model config: {} '{}' is not one of {}", field, value, fmt::join(all, ", ")));
}

}  // namespace

void ModelConfig::validate() const {
    require(vocab_size > 0, "vocab_size", "must be positive");
    require(hidden_size > 0, "hidden_size", "must be positive");
    require(intermediate_size > 0, "intermediate_size", "must be positive");
    require(num_hidden_layers > 0, "num_hidden_layers", "must be positive");
    require(num_attention_heads > 0, "num_attention_heads", "must be positive");
    require(num_key_value_heads > 0, "num_key_value_heads", "must be positive");
    require(head_dim > 0, "head_dim", "must be positive");
    require(max_position_embeddings > 0, "max_position_embeddings", "must be positive");
    require(num_attention_heads % num_key_value_heads == 0, "num_key_value_heads",
            fmt::format("({}) must divide num_attention_heads ({})", num_key_value_heads, num_attention_heads));
    require(rms_norm_eps > 0, "rms_norm_eps", "must be positive");
    if (positions == Positions::RoPE) {
        require(head_dim % 2 == 0, "head_dim", fmt::format("({}) must be even with RoPE", head_dim));
        require(rope_theta > 0, "rope_theta", "must be positive");
    }
}

ModelConfig preset(const std::string& name) {
    auto it = presets().find(name);
    if (it == presets().end()) {
        throw std::invalid_argument(
            fmt::format("unknown model preset '{}' (known: {})", name, fmt::join(preset_names(), ", ")));
    }
    return it->second;
}

std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (auto& [name, c] : presets()) names.push_back(name);
    return names;
}

nlohmann::json to_json(const ModelConfig& c) {
    return {
        {"model_type", c.model_type},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim},
        {"rms_norm_eps", c.rms_norm_eps},
        {"rope_theta", c.rope_theta},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"max_position_embeddings", c.max_position_embeddings},
        {"norm", norm_name(c.norm)},
        {"positions", positions_name(c.positions)},
        {"mlp", mlp_name(c.mlp)},
        {"qk_norm", c.qk_norm},
        {"attention_bias", c.attention_bias},
        {"mlp_bias", c.mlp_bias},
    };
}

ModelConfig config_from_json(const nlohmann::json& j) {
    ModelConfig c;
    set_family(c, j.value("model_type", std::string("gpt2")));
    // Hugging Face's GPT-2 config uses its own names; read them as aliases.
    auto get = [&](const char* key, const char* alias, auto& field) {
        if (j.contains(key)) j.at(key).get_to(field);
        else if (alias && j.contains(alias)) j.at(alias).get_to(field);
    };
    get("vocab_size", nullptr, c.vocab_size);
    get("hidden_size", "n_embd", c.hidden_size);
    get("num_hidden_layers", "n_layer", c.num_hidden_layers);
    get("num_attention_heads", "n_head", c.num_attention_heads);
    get("max_position_embeddings", "n_positions", c.max_position_embeddings);
    get("rms_norm_eps", "layer_norm_epsilon", c.rms_norm_eps);
    c.num_key_value_heads = c.num_attention_heads;
    c.intermediate_size = 4 * c.hidden_size;
    if (c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
    get("num_key_value_heads", nullptr, c.num_key_value_heads);
    get("intermediate_size", "n_inner", c.intermediate_size);
    get("head_dim", nullptr, c.head_dim);
    get("rope_theta", nullptr, c.rope_theta);
    get("tie_word_embeddings", nullptr, c.tie_word_embeddings);
    get("qk_norm", nullptr, c.qk_norm);
    get("attention_bias", nullptr, c.attention_bias);
    get("mlp_bias", nullptr, c.mlp_bias);
    if (j.contains("norm"))
        c.norm = parse_enum<Norm>("norm", j["norm"], {{"layernorm", Norm::LayerNorm}, {"rmsnorm", Norm::RMSNorm}});
    if (j.contains("positions"))
        c.positions = parse_enum<Positions>("positions", j["positions"],
                                            {{"learned", Positions::Learned}, {"rope", Positions::RoPE}});
    if (j.contains("mlp"))
        c.mlp = parse_enum<Mlp>("mlp", j["mlp"], {{"gelu", Mlp::Gelu}, {"swiglu", Mlp::SwiGLU}});
    c.validate();
    return c;
}

ModelConfig load_config(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open config file", path));
    try {
        return config_from_json(nlohmann::json::parse(f));
    } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
    }
}

}  // namespace rkv
