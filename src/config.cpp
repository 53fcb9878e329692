#include "src/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>

#include "src/file_io.h"

namespace rkv {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("invalid model config: " + what); }

void require(bool ok, const char* field, const std::string& why) {
    if (!ok) fail(fmt::format("{} {}", field, why));
}

// Sizes past these are no model rkv can hold (the largest published ones are well inside them);
// they keep every product of sizes far from overflowing and are checked before anything is sized.
constexpr int64_t kMaxVocab = int64_t(1) << 22;
constexpr int64_t kMaxHidden = int64_t(1) << 16;
constexpr int64_t kMaxIntermediate = int64_t(1) << 18;
constexpr int64_t kMaxLayers = 512;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxPositions = int64_t(1) << 24;
constexpr int64_t kMaxCount = int64_t(1) << 53;  // other counts (windows, layer indices): exact in a double

// The transformers classes of each family (config.json's architectures).
const std::map<std::string, std::string>& architectures() {
    static const std::map<std::string, std::string> table = {
        {"gpt2", "GPT2LMHeadModel"},
        {"llama", "LlamaForCausalLM"},
        {"mistral", "MistralForCausalLM"},
        {"qwen3", "Qwen3ForCausalLM"},
    };
    return table;
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
        fail(fmt::format("model_type '{}' is not one of gpt2, llama, mistral, qwen3", model_type));
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

ModelConfig rope_model(const std::string& type, int V, int C, int FF, int L, int NH, int NKV, int HS, double eps,
                       double theta, bool tied, int maxT) {
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
    c.rope.theta = theta;
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

// The fields of one JSON object (config.json, or its rope block, whose keys get the block's
// name as prefix), each read with its name and value in any error.
class Fields {
public:
    Fields(const json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {}

    std::string name(const std::string& key) const { return prefix_ + key; }
    bool contains(const char* key) const { return j_.contains(key); }
    // Present and not null (transformers reads null as "not set").
    bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
    const json& at(const char* key) const { return j_.at(key); }

    // An integer in [lo, hi]: a JSON integer, or a float with an integral value.
    int64_t integer(const char* key, int64_t lo, int64_t hi) const {
        const json& v = j_.at(key);
        const auto out_of_range = [&] {
            fail(fmt::format("{} {} is out of range [{}, {}]", name(key), v.dump(), lo, hi));
        };
        if (v.is_number_unsigned()) {
            if (v.get<uint64_t>() > uint64_t(hi)) out_of_range();
            return int64_t(v.get<uint64_t>());
        }
        if (v.is_number_integer()) {
            const int64_t x = v.get<int64_t>();
            if (x < lo || x > hi) out_of_range();
            return x;
        }
        if (v.is_number_float()) {
            const double d = v.get<double>();
            if (d != std::floor(d)) fail(fmt::format("{} {} is not an integer", name(key), v.dump()));
            if (d < double(lo) || d > double(hi)) out_of_range();
            return int64_t(d);
        }
        fail(fmt::format("{} must be an integer, not {}", name(key), v.dump()));
    }
    double number(const char* key) const {
        const json& v = j_.at(key);
        if (!v.is_number()) fail(fmt::format("{} must be a number, not {}", name(key), v.dump()));
        return v.get<double>();
    }
    // A number under `key` or its other name `alias`; both given must agree.
    std::optional<double> number(const char* key, const char* alias) const {
        std::optional<double> a, b;
        if (has(key)) a = number(key);
        if (has(alias)) b = number(alias);
        if (a && b && *a != *b) fail(fmt::format("{} {} and {} {} disagree", name(key), *a, name(alias), *b));
        return a ? a : b;
    }
    bool flag(const char* key) const {
        const json& v = j_.at(key);
        if (!v.is_boolean()) fail(fmt::format("{} must be true or false, not {}", name(key), v.dump()));
        return v.get<bool>();
    }
    std::string text(const char* key) const {
        const json& v = j_.at(key);
        if (!v.is_string()) fail(fmt::format("{} must be a string, not {}", name(key), v.dump()));
        return v.get<std::string>();
    }

    // A size under `key` or its other name `alias` (GPT-2's n_embd is hidden_size ...); both given must agree.
    std::optional<int64_t> size(const char* key, const char* alias, int64_t lo, int64_t hi) const {
        std::optional<int64_t> a, b;
        if (has(key)) a = integer(key, lo, hi);
        if (alias && has(alias)) b = integer(alias, lo, hi);
        if (a && b && *a != *b) fail(fmt::format("{} {} and {} {} disagree", name(key), *a, name(alias), *b));
        return a ? a : b;
    }
    int required(const char* key, const char* alias, int64_t lo, int64_t hi) const {
        const auto v = size(key, alias, lo, hi);
        if (!v) fail(fmt::format("{} is missing", name(key)));
        return int(*v);
    }

    // A switch rkv computes one way only: absent, or that value.
    void must_be(const char* key, bool expected, const std::string& family) const {
        if (has(key) && flag(key) != expected)
            fail(fmt::format("{} {} is not implemented: rkv's {} has {} {}", name(key), !expected, family, key,
                             expected));
    }
    // A string field that must be one of `accepted` (the first is the default when absent).
    std::string one_of(const char* key, std::initializer_list<const char*> accepted, const std::string& why) const {
        if (!has(key)) return *accepted.begin();
        const std::string v = text(key);
        for (const char* a : accepted)
            if (v == a) return v;
        fail(fmt::format("{} '{}' is not implemented ({}: {})", name(key), v, why,
                         fmt::join(std::vector<std::string>(accepted.begin(), accepted.end()), ", ")));
    }

private:
    const json& j_;
    std::string prefix_;
};

// Fields rkv's own config.json carried before it wrote Hugging Face's: now fixed by the family,
// accepted only with the family's value.
void check_family_switches(const Fields& f, const ModelConfig& c) {
    const std::string family = "model_type " + c.model_type;
    auto same = [&](const char* key, const char* value) {
        if (f.has(key) && f.text(key) != value)
            fail(fmt::format("{} '{}' is not implemented: rkv's {} has {} '{}'", key, f.text(key), family, key, value));
    };
    same("norm", c.norm == Norm::LayerNorm ? "layernorm" : "rmsnorm");
    same("positions", c.positions == Positions::Learned ? "learned" : "rope");
    same("mlp", c.mlp == Mlp::Gelu ? "gelu" : "swiglu");
    f.must_be("qk_norm", c.qk_norm, family);
    f.must_be("attention_bias", c.attention_bias, family);
    f.must_be("mlp_bias", c.mlp_bias, family);
}

void read_gpt2(const Fields& f, ModelConfig& c) {
    c.vocab_size = f.required("vocab_size", nullptr, 1, kMaxVocab);
    c.hidden_size = f.required("n_embd", "hidden_size", 1, kMaxHidden);
    c.num_hidden_layers = f.required("n_layer", "num_hidden_layers", 1, kMaxLayers);
    c.num_attention_heads = f.required("n_head", "num_attention_heads", 1, kMaxHeads);
    c.max_position_embeddings = int(f.size("n_positions", "max_position_embeddings", 1, kMaxPositions).value_or(1024));
    // n_inner null (or absent) is 4 n_embd.
    c.intermediate_size = int(f.size("n_inner", "intermediate_size", 1, kMaxIntermediate).value_or(4 * c.hidden_size));
    c.rms_norm_eps = f.number("layer_norm_epsilon", "rms_norm_eps").value_or(1e-5);
    if (f.has("tie_word_embeddings")) c.tie_word_embeddings = f.flag("tie_word_embeddings");
    // One head size, n_embd / n_head, and as many K/V heads as heads (rkv's older files name both).
    require(c.hidden_size % c.num_attention_heads == 0, "n_embd",
            fmt::format("{} is not a multiple of n_head {}", c.hidden_size, c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
    c.num_key_value_heads = c.num_attention_heads;
    if (f.has("head_dim") && f.integer("head_dim", 1, kMaxHeadDim) != c.head_dim)
        fail(fmt::format("head_dim {} is not n_embd / n_head = {}", f.at("head_dim").dump(), c.head_dim));
    if (f.has("num_key_value_heads") && f.integer("num_key_value_heads", 1, kMaxHeads) != c.num_attention_heads)
        fail(fmt::format("num_key_value_heads {} is not n_head {}: GPT-2 has no grouped-query attention",
                         f.at("num_key_value_heads").dump(), c.num_attention_heads));
    f.one_of("activation_function", {"gelu_new", "gelu_pytorch_tanh"}, "rkv's GPT-2 computes the tanh GELU");
    const std::string family = "GPT-2";
    f.must_be("scale_attn_weights", true, family);
    f.must_be("scale_attn_by_inverse_layer_idx", false, family);
    f.must_be("add_cross_attention", false, family);
}

// RoPE: theta and scaling from either layout. transformers 4 keeps rope_theta at the top and
// the scaling in rope_scaling; transformers 5 keeps both in rope_parameters. A file may carry
// both blocks: every key they share must agree.
RopeParams read_rope(const Fields& f, const ModelConfig& c) {
    json block = json::object();
    std::string where;
    for (const char* name : {"rope_scaling", "rope_parameters"}) {
        if (!f.has(name)) continue;
        const json& b = f.at(name);
        if (!b.is_object()) fail(fmt::format("{} must be an object, not {}", name, b.dump()));
        for (const auto& [key, value] : b.items()) {
            static const char* known[] = {"rope_type",
                                          "type",
                                          "rope_theta",
                                          "factor",
                                          "low_freq_factor",
                                          "high_freq_factor",
                                          "original_max_position_embeddings",
                                          "partial_rotary_factor"};
            if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) ==
                std::end(known))
                fail(fmt::format("{}.{} ({}) is not implemented", name, key, value.dump()));
            if (block.contains(key) && block[key] != value)
                fail(fmt::format("rope_scaling.{} {} and rope_parameters.{} {} disagree", key, block[key].dump(), key,
                                 value.dump()));
            block[key] = value;
        }
        where = where.empty() ? name : "rope_parameters";
    }
    const Fields r(block, where + ".");
    RopeParams rope;

    // theta: the block's, or the top-level one; both given must agree.
    if (f.has("rope_theta")) rope.theta = f.number("rope_theta");
    if (r.has("rope_theta")) {
        if (f.has("rope_theta") && r.number("rope_theta") != rope.theta)
            fail(fmt::format("rope_theta {} and {} {} disagree", f.at("rope_theta").dump(), r.name("rope_theta"),
                             r.at("rope_theta").dump()));
        rope.theta = r.number("rope_theta");
    }
    for (const Fields* g : {&f, &r})
        if (g->has("partial_rotary_factor") && g->number("partial_rotary_factor") != 1.0)
            fail(fmt::format("{} {} is not implemented (rkv rotates the whole head)", g->name("partial_rotary_factor"),
                             g->at("partial_rotary_factor").dump()));

    // rope_type, or its older name type.
    std::string type = "default";
    if (r.has("type")) type = r.text("type");
    if (r.has("rope_type")) {
        if (r.has("type") && r.text("rope_type") != type)
            fail(fmt::format("{} '{}' and {} '{}' disagree", r.name("rope_type"), r.text("rope_type"), r.name("type"),
                             type));
        type = r.text("rope_type");
    }
    if (type == "default") return rope;
    if (type != "linear" && type != "llama3")
        fail(fmt::format("{} '{}' is not implemented (rkv implements default, linear, llama3)", r.name("rope_type"),
                         type));
    auto needed = [&](const char* key) {
        if (!r.has(key)) fail(fmt::format("{} is missing (rope_type {} needs it)", r.name(key), type));
        return r.number(key);
    };
    rope.factor = needed("factor");
    if (type == "linear") {
        rope.type = RopeType::linear;
        return rope;
    }
    rope.type = RopeType::llama3;
    rope.low_freq_factor = needed("low_freq_factor");
    rope.high_freq_factor = needed("high_freq_factor");
    // As transformers: the block's, else max_position_embeddings. transformers 5 lets a top-level
    // original_max_position_embeddings override the block's, 4 ignores it: given both, they must agree.
    rope.original_max_position_embeddings = c.max_position_embeddings;
    const char* orig = "original_max_position_embeddings";
    std::optional<int64_t> top, in_block;
    if (f.has(orig)) top = f.integer(orig, 1, kMaxPositions);
    if (r.has(orig)) in_block = r.integer(orig, 1, kMaxPositions);
    if (top && in_block && *top != *in_block)
        fail(fmt::format("{} {} and {} {} disagree", orig, *top, r.name(orig), *in_block));
    if (in_block || top) rope.original_max_position_embeddings = int(in_block ? *in_block : *top);
    return rope;
}

// Llama, Mistral and Qwen3: missing fields take the defaults of transformers' config classes.
void read_rope_family(const Fields& f, ModelConfig& c) {
    const std::string& type = c.model_type;
    c.vocab_size = f.required("vocab_size", nullptr, 1, kMaxVocab);
    c.hidden_size = f.required("hidden_size", nullptr, 1, kMaxHidden);
    c.intermediate_size = f.required("intermediate_size", nullptr, 1, kMaxIntermediate);
    c.num_hidden_layers = f.required("num_hidden_layers", nullptr, 1, kMaxLayers);
    c.num_attention_heads = f.required("num_attention_heads", nullptr, 1, kMaxHeads);
    const int NH = c.num_attention_heads;
    // num_key_value_heads: absent is 8 for Mistral, 32 for Qwen3, NH for Llama; null is NH.
    c.num_key_value_heads = type == "mistral" ? 8 : type == "qwen3" ? 32 : NH;
    if (f.contains("num_key_value_heads"))
        c.num_key_value_heads = int(f.size("num_key_value_heads", nullptr, 1, kMaxHeads).value_or(NH));
    // head_dim: absent is 128 for Qwen3; otherwise (or null) hidden_size / num_attention_heads.
    if (f.has("head_dim")) {
        c.head_dim = int(f.integer("head_dim", 1, kMaxHeadDim));
    } else if (type == "qwen3" && !f.contains("head_dim")) {
        c.head_dim = 128;
    } else {
        require(
            c.hidden_size % NH == 0, "hidden_size",
            fmt::format("{} is not a multiple of num_attention_heads {} and head_dim is not given", c.hidden_size, NH));
        c.head_dim = c.hidden_size / NH;
    }
    c.max_position_embeddings = int(f.size("max_position_embeddings", nullptr, 1, kMaxPositions)
                                        .value_or(type == "llama"     ? 2048
                                                  : type == "mistral" ? 131072
                                                                      : 32768));
    c.rms_norm_eps = f.has("rms_norm_eps") ? f.number("rms_norm_eps") : 1e-6;
    c.tie_word_embeddings = f.has("tie_word_embeddings") && f.flag("tie_word_embeddings");
    f.one_of("hidden_act", {"silu", "swish"}, "rkv's SwiGLU computes SiLU");
    c.rope = read_rope(f, c);

    // A sliding window changes attention only past its width; rkv never runs past
    // max_position_embeddings, so one at least that wide never applies.
    const int64_t maxT = c.max_position_embeddings;
    auto window = [&](std::optional<int64_t> fallback) -> std::optional<int64_t> {
        if (!f.contains("sliding_window")) return fallback;
        return f.size("sliding_window", nullptr, 1, kMaxCount);
    };
    auto refuse_window = [&](int64_t w, const std::string& which) {
        fail(
            fmt::format("sliding_window {} is shorter than max_position_embeddings {}{}: sliding-window attention "
                        "is not implemented (a max_position_embeddings of at most the window would load it)",
                        w, maxT, which));
    };
    if (type == "mistral") {
        const auto w = window(4096);  // MistralConfig's default
        if (w && *w < maxT) refuse_window(*w, "");
    } else if (type == "qwen3") {
        // Qwen3 slides only when use_sliding_window, on layers layer_types calls sliding_attention
        // (by default those from max_window_layers on).
        const bool use = f.has("use_sliding_window") && f.flag("use_sliding_window");
        const auto w = window(4096);
        const int64_t first = f.has("max_window_layers") ? f.integer("max_window_layers", 0, kMaxCount) : 28;
        std::vector<std::string> layer_types;
        for (int l = 0; l < c.num_hidden_layers; l++)
            layer_types.push_back(use && w && l >= first ? "sliding_attention" : "full_attention");
        if (f.has("layer_types")) {
            const json& lt = f.at("layer_types");
            if (!lt.is_array() || lt.size() != size_t(c.num_hidden_layers))
                fail(fmt::format("layer_types must be a list of num_hidden_layers ({}) names", c.num_hidden_layers));
            for (size_t l = 0; l < lt.size(); l++) {
                if (lt[l] != "full_attention" && lt[l] != "sliding_attention")
                    fail(fmt::format("layer_types[{}] {} is not implemented", l, lt[l].dump()));
                layer_types[l] = lt[l];
            }
        }
        for (size_t l = 0; l < layer_types.size(); l++)
            if (use && w && *w < maxT && layer_types[l] == "sliding_attention")
                refuse_window(*w, fmt::format(" (use_sliding_window true, layer {} is sliding_attention)", l));
    }
}

}  // namespace

void ModelConfig::validate() const {
    auto in_range = [](int v, int64_t hi, const char* field) {
        require(v > 0, field, "must be positive");
        require(v <= hi, field, fmt::format("{} is out of range [1, {}]", v, hi));
    };
    in_range(vocab_size, kMaxVocab, "vocab_size");
    in_range(hidden_size, kMaxHidden, "hidden_size");
    in_range(intermediate_size, kMaxIntermediate, "intermediate_size");
    in_range(num_hidden_layers, kMaxLayers, "num_hidden_layers");
    in_range(num_attention_heads, kMaxHeads, "num_attention_heads");
    in_range(num_key_value_heads, kMaxHeads, "num_key_value_heads");
    in_range(head_dim, kMaxHeadDim, "head_dim");
    in_range(max_position_embeddings, kMaxPositions, "max_position_embeddings");
    require(num_attention_heads % num_key_value_heads == 0, "num_key_value_heads",
            fmt::format("({}) must divide num_attention_heads ({})", num_key_value_heads, num_attention_heads));
    require(rms_norm_eps > 0 && std::isfinite(rms_norm_eps), "rms_norm_eps", "must be positive");
    if (positions == Positions::RoPE) {
        require(head_dim % 2 == 0, "head_dim", fmt::format("({}) must be even with RoPE", head_dim));
        require(rope.theta > 0 && std::isfinite(rope.theta), "rope_theta",
                fmt::format("{} must be positive", rope.theta));
        if (rope.type != RopeType::none)
            require(rope.factor > 0 && std::isfinite(rope.factor), "rope_scaling factor",
                    fmt::format("{} must be positive", rope.factor));
        if (rope.type == RopeType::llama3) {
            require(rope.low_freq_factor > 0 && rope.high_freq_factor > rope.low_freq_factor &&
                        std::isfinite(rope.high_freq_factor),
                    "rope_scaling low_freq_factor",
                    fmt::format("{} and high_freq_factor {} must be 0 < low < high", rope.low_freq_factor,
                                rope.high_freq_factor));
            in_range(rope.original_max_position_embeddings, kMaxPositions, "original_max_position_embeddings");
        }
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

json to_json(const ModelConfig& c, const std::string& dtype) {
    if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")
        throw std::invalid_argument(fmt::format("dtype '{}' is not one of float32, bfloat16, float16", dtype));
    json j = {{"architectures", {architectures().at(c.model_type)}},
              {"model_type", c.model_type},
              {"vocab_size", c.vocab_size},
              {"tie_word_embeddings", c.tie_word_embeddings}};
    if (c.model_type == "gpt2") {
        j.update({{"n_embd", c.hidden_size},
                  {"n_layer", c.num_hidden_layers},
                  {"n_head", c.num_attention_heads},
                  {"n_inner", c.intermediate_size},
                  {"n_positions", c.max_position_embeddings},
                  {"layer_norm_epsilon", c.rms_norm_eps},
                  {"activation_function", "gelu_new"}});
    } else {
        j.update({{"hidden_size", c.hidden_size},
                  {"intermediate_size", c.intermediate_size},
                  {"num_hidden_layers", c.num_hidden_layers},
                  {"num_attention_heads", c.num_attention_heads},
                  {"num_key_value_heads", c.num_key_value_heads},
                  {"head_dim", c.head_dim},
                  {"max_position_embeddings", c.max_position_embeddings},
                  {"rms_norm_eps", c.rms_norm_eps},
                  {"hidden_act", "silu"}});
        // Both layouts: rope_theta + rope_scaling (transformers 4, and vLLM) and rope_parameters (5).
        json scaling = nullptr;
        const RopeParams& r = c.rope;
        if (r.type == RopeType::linear) scaling = {{"rope_type", "linear"}, {"factor", r.factor}};
        if (r.type == RopeType::llama3)
            scaling = {{"rope_type", "llama3"},
                       {"factor", r.factor},
                       {"low_freq_factor", r.low_freq_factor},
                       {"high_freq_factor", r.high_freq_factor},
                       {"original_max_position_embeddings", r.original_max_position_embeddings}};
        json parameters = scaling.is_null() ? json{{"rope_type", "default"}} : scaling;
        parameters["rope_theta"] = r.theta;
        j.update({{"rope_theta", r.theta}, {"rope_scaling", scaling}, {"rope_parameters", parameters}});
        if (c.model_type != "mistral") j["attention_bias"] = false;
        if (c.model_type == "llama") j["mlp_bias"] = false;
        if (c.model_type == "mistral") j["sliding_window"] = nullptr;
        if (c.model_type == "qwen3") j["use_sliding_window"] = false;
    }
    j["dtype"] = dtype;        // transformers 5
    j["torch_dtype"] = dtype;  // transformers 4
    return j;
}

ModelConfig config_from_json(const json& j) {
    if (!j.is_object()) fail(fmt::format("the config must be a JSON object, not {}", j.type_name()));
    const Fields f(j, "");
    ModelConfig c;
    set_family(c, f.has("model_type") ? f.text("model_type") : "gpt2");
    if (c.model_type == "gpt2")
        read_gpt2(f, c);
    else
        read_rope_family(f, c);
    check_family_switches(f, c);
    if (f.has("architectures")) {
        const json& a = f.at("architectures");
        const std::string expected = architectures().at(c.model_type);
        if (!a.is_array() || a.size() != 1 || a[0] != expected)
            fail(fmt::format("architectures {} is not implemented (model_type {} is {})", a.dump(), c.model_type,
                             expected));
    }
    if (f.has("quantization_config"))
        fail(fmt::format("quantization_config ({}) is not implemented: rkv reads unquantized weights",
                         f.at("quantization_config").dump()));
    c.validate();
    return c;
}

ModelConfig load_config(const std::string& path) {
    const json j = read_json_file(path);
    try {
        return config_from_json(j);
    } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
    }
}

}  // namespace rkv
