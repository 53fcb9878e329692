// Hugging Face config.json in both layouts, and RoPE scaling, against transformers: the fixtures of
// scripts/make_rope_fixtures.py (tests/fixtures/rope): inverse frequencies of published configs,
// and tiny random models whose logits rkv's CPU path must reproduce at the full cache and at
// keep-every-2. Then every refusal of a field rkv does not implement, each naming its field, and
// mutated configs that must be read or refused, never crash.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "src/checkpoint.h"
#include "src/config.h"
#include "src/cpu_ops.h"
#include "src/model.h"
#include "tests/rel_error.h"

using namespace rkv;
using nlohmann::json;

namespace {

const std::string kFixtures = RKV_ROPE_FIXTURES;

json read_json(const std::string& path) {
    std::ifstream f(path);
    REQUIRE(f);
    return json::parse(f);
}

// rkv's CPU path, in double, on a fixture's weights under config c.
std::vector<double> cpu_logits(const ModelConfig& c, const std::vector<float>& params, const std::vector<int>& tokens,
                               int B, int T, const Route& route) {
    CpuOps<double> ops;
    Model<double> model(c, ops, B, T, 0, false);
    REQUIRE(params.size() == model.table.total);
    std::copy(params.begin(), params.end(), model.params);
    model.forward(tokens.data(), nullptr, route);
    return model.logits(T);
}

std::string error_of(const json& j) {
    try {
        config_from_json(j);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

// Small configs of each family as transformers writes them.
json llama() {
    return json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 1024, "rms_norm_eps": 1e-05,
        "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false, "bos_token_id": 1,
        "eos_token_id": 2, "initializer_range": 0.02, "use_cache": true, "pretraining_tp": 1,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.0", "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 256, "rope_type": "llama3"}})");
}
json qwen3() {
    return json::parse(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 64,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu", "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "attention_bias": false, "use_sliding_window": false,
        "sliding_window": null, "max_window_layers": 28, "dtype": "bfloat16",
        "layer_types": ["full_attention", "full_attention", "full_attention", "full_attention"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000}})");
}
json mistral() {
    return json::parse(R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 64,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 8, "hidden_act": "silu", "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "rope_theta": 1000000.0, "sliding_window": null})");
}
json gpt2() {
    return json::parse(R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257,
        "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "n_ctx": 1024, "n_inner": null,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "resid_pdrop": 0.1, "embd_pdrop": 0.1,
        "attn_pdrop": 0.1, "initializer_range": 0.02, "summary_type": "cls_index", "summary_use_proj": true,
        "scale_attn_weights": true, "bos_token_id": 50256, "eos_token_id": 50256,
        "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}}})");
}

}  // namespace

TEST_CASE("RoPE frequencies equal transformers' for published configs in both layouts", "[config][rope]") {
    const json fixture = read_json(kFixtures + "/inv_freq.json");
    REQUIRE(fixture["cases"].size() >= 5);
    for (const json& k : fixture["cases"]) {
        INFO(k["name"].get<std::string>());
        const ModelConfig c4 = config_from_json(k["config_v4"]), c5 = config_from_json(k["config_v5"]);
        CHECK(c4.rope == c5.rope);
        CHECK(to_json(c4) == to_json(c5));
        CHECK(to_json(config_from_json(to_json(c4))) == to_json(c4));  // what rkv writes reads back the same
        const auto& want = k["inv_freq"];
        REQUIRE(want.size() == size_t(c4.head_dim / 2));
        double worst = 0;
        for (int i = 0; i < c4.head_dim / 2; i++) {
            const double f = want[i];
            worst = std::max(worst, std::abs(rope_inv_freq(c4.rope, i, c4.head_dim) - f) / f);
        }
        CHECK(worst < 2e-6);  // transformers computes them in float32
    }
}

TEST_CASE("tiny Hugging Face models give transformers' logits, full cache and keep-every-2", "[config][rope][hf]") {
    for (const std::string name : {"llama3", "qwen3", "mistral"}) {
        INFO(name);
        const std::string dir = kFixtures + "/" + name;
        const Checkpoint ck = load_checkpoint(dir, false);
        const ModelConfig c4 = load_config(dir + "/config.v4.json");
        CHECK(to_json(c4) == to_json(ck.config));
        CHECK(c4.rope == ck.config.rope);
        CHECK(ck.config.model_type == (name == "llama3" ? "llama" : name));

        // Every field rkv writes is the one transformers wrote, in its layout.
        const json saved = read_json(dir + "/config.json"), saved4 = read_json(dir + "/config.v4.json");
        const json written = to_json(ck.config);
        for (const auto& [key, value] : written.items()) {
            INFO(key);
            if (key == "torch_dtype") continue;  // transformers 5 writes dtype only
            if (key == "rope_theta" || key == "rope_scaling")
                CHECK(value == saved4.at(key));
            else
                CHECK(value == saved.at(key));
        }

        const json lj = read_json(dir + "/logits.json");
        const int B = lj["B"], T = lj["T"], L = ck.config.num_hidden_layers;
        const std::vector<int> tokens = lj["tokens"];
        const std::vector<double> full = lj["logits"], keep2 = lj["logits_keep_every_2"];
        for (const ModelConfig* c : {&ck.config, &c4}) {
            const double e1 = kcheck::max_rel_error(cpu_logits(*c, ck.params, tokens, B, T, all_own(L)), full);
            const double e2 = kcheck::max_rel_error(cpu_logits(*c, ck.params, tokens, B, T, keep_every(L, 2)), keep2);
            INFO("full cache " << e1 << ", keep-every-2 " << e2);
            CHECK(e1 < 1e-5);
            CHECK(e2 < 1e-5);
        }
        // The scaling matters at these sizes: without it the logits are another model's.
        if (ck.config.rope.type != RopeType::none) {
            ModelConfig plain = ck.config;
            plain.rope = RopeParams{ck.config.rope.theta};
            CHECK(kcheck::max_rel_error(cpu_logits(plain, ck.params, tokens, B, T, all_own(L)), full) > 1e-3);
        }
    }
}

TEST_CASE("published configs read as the models they describe", "[config]") {
    SECTION("Llama 3.x, transformers 4 layout") {
        const ModelConfig c = config_from_json(llama());
        CHECK(c.head_dim == 8);
        CHECK(!c.tie_word_embeddings);
        CHECK(c.rope == RopeParams{500000.0, RopeType::llama3, 8.0, 1.0, 4.0, 256});
    }
    SECTION("llama3 scaling without original_max_position_embeddings takes max_position_embeddings") {
        json j = llama();
        j["rope_scaling"].erase("original_max_position_embeddings");
        CHECK(config_from_json(j).rope.original_max_position_embeddings == 1024);
    }
    SECTION("transformers' defaults for absent fields") {
        json q = qwen3();
        for (auto key : {"head_dim", "num_key_value_heads", "tie_word_embeddings", "rms_norm_eps"}) q.erase(key);
        q["num_attention_heads"] = 32;
        const ModelConfig c = config_from_json(q);
        CHECK(c.head_dim == 128);  // Qwen3Config's default
        CHECK(c.num_key_value_heads == 32);
        CHECK(!c.tie_word_embeddings);
        CHECK(c.rms_norm_eps == 1e-6);
        json m = mistral();
        m.erase("num_key_value_heads");
        m.erase("head_dim");
        m["num_attention_heads"] = 8;
        CHECK(config_from_json(m).num_key_value_heads == 8);
        CHECK(config_from_json(m).head_dim == 4);  // hidden_size / num_attention_heads
        json l = llama();
        l["num_key_value_heads"] = nullptr;
        CHECK(config_from_json(l).num_key_value_heads == 4);
    }
    SECTION("GPT-2's own names") {
        const ModelConfig c = config_from_json(gpt2());
        CHECK(to_json(c) == to_json(preset("gpt2-124m")));
        CHECK(c.intermediate_size == 4 * 768);  // n_inner null
        const json out = to_json(c, "bfloat16");
        CHECK(out["n_embd"] == 768);
        CHECK(out["n_inner"] == 3072);
        CHECK(out["architectures"] == json{"GPT2LMHeadModel"});
        CHECK(out["dtype"] == "bfloat16");
        CHECK(out["torch_dtype"] == "bfloat16");
        CHECK(!out.contains("rope_theta"));
    }
    SECTION("Mistral is Llama's computation; a window as long as the context never applies") {
        json j = mistral();
        j["sliding_window"] = 32768;
        const ModelConfig c = config_from_json(j);
        CHECK(c.model_type == "mistral");
        CHECK(to_json(c)["architectures"] == json{"MistralForCausalLM"});
        CHECK(to_json(c)["sliding_window"].is_null());
    }
    SECTION("Qwen3's sliding window is off unless use_sliding_window, and then only from max_window_layers") {
        json j = qwen3();
        j["sliding_window"] = 4096;
        j["layer_types"][3] = "sliding_attention";
        CHECK_NOTHROW(config_from_json(j));  // use_sliding_window false
        j.erase("layer_types");
        j["use_sliding_window"] = true;
        j["max_window_layers"] = 4;
        CHECK_NOTHROW(config_from_json(j));  // no layer from 4 on
    }
    SECTION("rkv's older config.json, with its own family switches") {
        const json old = json::parse(R"({"model_type": "qwen3", "vocab_size": 64, "hidden_size": 32,
            "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
            "max_position_embeddings": 64, "norm": "rmsnorm", "positions": "rope", "mlp": "swiglu",
            "qk_norm": true, "attention_bias": false, "mlp_bias": false})");
        CHECK(config_from_json(old).rope.theta == 1e6);
    }
}

TEST_CASE("a field rkv does not implement is refused by name", "[config]") {
    using Catch::Contains;
    auto with = [](json j, const json& patch) {
        j.merge_patch(patch);
        return j;
    };
    SECTION("sizes: 64-bit, in range, integers, present") {
        CHECK_THAT(error_of(with(llama(), {{"hidden_size", 1e12}})),
                   Contains("hidden_size 1000000000000.0 is out of range"));
        CHECK_THAT(error_of(with(llama(), {{"hidden_size", int64_t(1) << 40}})), Contains("hidden_size 1099511627776"));
        CHECK_THAT(error_of(with(llama(), {{"num_hidden_layers", 1000}})), Contains("num_hidden_layers 1000"));
        CHECK_THAT(error_of(with(llama(), {{"vocab_size", -1}})), Contains("vocab_size -1 is out of range"));
        CHECK_THAT(error_of(with(llama(), {{"vocab_size", 18446744073709551615ull}})), Contains("vocab_size"));
        CHECK_THAT(error_of(with(llama(), {{"intermediate_size", 64.5}})), Contains("intermediate_size 64.5 is not"));
        CHECK_THAT(error_of(with(llama(), {{"num_attention_heads", "4"}})),
                   Contains("num_attention_heads must be an integer"));
        CHECK_THAT(error_of(with(gpt2(), {{"n_layer", 0}})), Contains("n_layer 0 is out of range"));
        CHECK_THAT(error_of(with(gpt2(), {{"n_positions", 1e9}})), Contains("n_positions"));
        CHECK_THAT(error_of(with(llama(), {{"hidden_size", nullptr}})), Contains("hidden_size is missing"));
        CHECK_THAT(error_of(with(gpt2(), {{"hidden_size", 512}})), Contains("n_embd 768 and hidden_size 512"));
        CHECK_THAT(error_of(json::array()), Contains("JSON object"));
        CHECK(error_of(with(llama(), {{"intermediate_size", 48.0}})).empty());  // an integral float is a size
    }
    SECTION("rope types and parameters") {
        for (auto type : {"yarn", "dynamic", "longrope", "proportional"}) {
            CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"rope_type", type}, {"factor", 4.0}}}})),
                       Contains(fmt::format("rope_type '{}' is not implemented", type)));
            CHECK_THAT(error_of(with(qwen3(), {{"rope_parameters", {{"rope_type", type}, {"rope_theta", 1e4}}}})),
                       Contains(fmt::format("rope_parameters.rope_type '{}'", type)));
        }
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"type", "dynamic"}}}})), Contains("'dynamic'"));
        CHECK_THAT(error_of(with(llama(), {{"partial_rotary_factor", 0.5}})), Contains("partial_rotary_factor 0.5"));
        CHECK_THAT(error_of(with(qwen3(), {{"rope_parameters", {{"partial_rotary_factor", 0.25}}}})),
                   Contains("rope_parameters.partial_rotary_factor 0.25"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"beta_fast", 32}}}})),
                   Contains("rope_scaling.beta_fast"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"low_freq_factor", nullptr}}}})),
                   Contains("low_freq_factor is missing"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"high_freq_factor", 1.0}}}})),
                   Contains("low_freq_factor"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"factor", -2}}}})), Contains("factor"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", {{"factor", "8"}}}})), Contains("factor must be a number"));
        CHECK_THAT(error_of(with(llama(), {{"rope_scaling", 8}})), Contains("rope_scaling must be an object"));
        CHECK_THAT(error_of(with(llama(), {{"rope_theta", -1}})), Contains("rope_theta"));
        // The two layouts in one file must agree.
        CHECK_THAT(error_of(with(qwen3(), {{"rope_theta", 10000}})), Contains("rope_theta 10000 and"));
        CHECK_THAT(error_of(with(llama(), {{"rope_parameters", {{"rope_type", "llama3"}, {"factor", 4.0}}}})),
                   Contains("rope_scaling.factor 8.0 and rope_parameters.factor 4.0 disagree"));
        CHECK_THAT(error_of(with(llama(), {{"original_max_position_embeddings", 8192}})),
                   Contains("original_max_position_embeddings 8192 and"));
    }
    SECTION("activations") {
        for (auto act : {"gelu", "relu", "gelu_pytorch_tanh"})
            CHECK_THAT(error_of(with(llama(), {{"hidden_act", act}})), Contains(fmt::format("hidden_act '{}'", act)));
        for (auto act : {"gelu", "relu", "silu", "gelu_fast"})
            CHECK_THAT(error_of(with(gpt2(), {{"activation_function", act}})),
                       Contains(fmt::format("activation_function '{}'", act)));
        CHECK(error_of(with(gpt2(), {{"activation_function", "gelu_pytorch_tanh"}})).empty());
    }
    SECTION("sliding windows that would apply") {
        CHECK_THAT(error_of(with(mistral(), {{"sliding_window", 4096}})), Contains("sliding_window 4096"));
        json m = mistral();
        m.erase("sliding_window");  // MistralConfig's default window, 4096
        CHECK_THAT(error_of(m), Contains("sliding_window 4096 is shorter than max_position_embeddings 32768"));
        CHECK_THAT(
            error_of(with(qwen3(), {{"use_sliding_window", true},
                                    {"sliding_window", 4096},
                                    {"layer_types",
                                     {"full_attention", "sliding_attention", "full_attention", "full_attention"}}})),
            Contains("layer 1 is sliding_attention"));
        CHECK_THAT(error_of(with(qwen3(), {{"use_sliding_window", true},
                                           {"sliding_window", 4096},
                                           {"max_window_layers", 2},
                                           {"layer_types", nullptr}})),
                   Contains("sliding_window 4096"));
        CHECK_THAT(error_of(with(qwen3(), {{"layer_types", {"full_attention", "linear_attention"}}})),
                   Contains("layer_types"));
        CHECK_THAT(
            error_of(with(qwen3(), {{"layer_types",
                                     {"full_attention", "full_attention", "full_attention", "linear_attention"}}})),
            Contains("layer_types[3] \"linear_attention\""));
    }
    SECTION("biases and switches a family does not have") {
        for (const json& base : {llama(), qwen3(), mistral()}) {
            CHECK_THAT(error_of(with(base, {{"attention_bias", true}})), Contains("attention_bias true"));
            CHECK_THAT(error_of(with(base, {{"mlp_bias", true}})), Contains("mlp_bias true"));
        }
        CHECK_THAT(error_of(with(gpt2(), {{"attention_bias", false}})), Contains("attention_bias false"));
        CHECK_THAT(error_of(with(gpt2(), {{"scale_attn_weights", false}})), Contains("scale_attn_weights false"));
        CHECK_THAT(error_of(with(gpt2(), {{"scale_attn_by_inverse_layer_idx", true}})),
                   Contains("scale_attn_by_inverse_layer_idx true"));
        CHECK_THAT(error_of(with(gpt2(), {{"add_cross_attention", true}})), Contains("add_cross_attention true"));
        CHECK_THAT(error_of(with(llama(), {{"norm", "batchnorm"}})), Contains("norm 'batchnorm'"));
        CHECK_THAT(error_of(with(llama(), {{"norm", "layernorm"}})), Contains("norm 'layernorm'"));
        CHECK_THAT(error_of(with(llama(), {{"qk_norm", true}})), Contains("qk_norm true"));
        CHECK_THAT(error_of(with(gpt2(), {{"positions", "rope"}})), Contains("positions 'rope'"));
    }
    SECTION("head sizes") {
        CHECK_THAT(error_of(with(gpt2(), {{"n_head", 7}})), Contains("n_embd 768 is not a multiple of n_head 7"));
        CHECK_THAT(error_of(with(gpt2(), {{"head_dim", 32}})), Contains("head_dim 32"));
        CHECK_THAT(error_of(with(gpt2(), {{"num_key_value_heads", 4}})), Contains("num_key_value_heads 4"));
        json l = llama();
        l["num_attention_heads"] = 6;
        l["num_key_value_heads"] = 6;
        CHECK_THAT(error_of(l), Contains("hidden_size 32 is not a multiple of num_attention_heads 6"));
        l["head_dim"] = 8;  // given, it need not be hidden_size / num_attention_heads
        CHECK(error_of(l).empty());
        CHECK_THAT(error_of(with(llama(), {{"head_dim", 7}})), Contains("head_dim (7) must be even"));
        CHECK_THAT(error_of(with(llama(), {{"num_key_value_heads", 3}})), Contains("num_key_value_heads"));
    }
    SECTION("other models, heads and weights") {
        CHECK_THAT(error_of(with(llama(), {{"model_type", "bert"}})), Contains("model_type 'bert'"));
        CHECK_THAT(error_of(with(llama(), {{"architectures", {"LlamaForSequenceClassification"}}})),
                   Contains("architectures [\"LlamaForSequenceClassification\"]"));
        CHECK_THAT(error_of(with(llama(), {{"quantization_config", {{"quant_method", "gptq"}, {"bits", 4}}}})),
                   Contains("quantization_config"));
        CHECK_THROWS_WITH(to_json(config_from_json(llama()), "int8"), Contains("dtype 'int8'"));
    }
}

TEST_CASE("config_from_json never crashes: mutated configs read or are refused by name", "[config][fuzz]") {
    const std::vector<json> values = {nullptr,
                                      true,
                                      false,
                                      -1,
                                      0,
                                      1,
                                      3,
                                      2.5,
                                      1e300,
                                      -1e300,
                                      18446744073709551615ull,
                                      int64_t(1) << 62,
                                      "x",
                                      "llama3",
                                      "silu",
                                      json::array(),
                                      json::object(),
                                      json::array({1}),
                                      json{{"a", 1}},
                                      json{{"rope_type", "linear"}}};
    std::mt19937_64 rng(std::random_device{}());
    int refused = 0, read = 0;
    for (const json& base : {llama(), qwen3(), mistral(), gpt2(), to_json(config_from_json(llama()))}) {
        for (int n = 0; n < 400; n++) {
            json j = base;
            for (int edits = 1 + int(rng() % 3); edits > 0; edits--) {
                // A top-level key or one inside a rope block, a random value or none.
                json* where = &j;
                for (const char* block : {"rope_scaling", "rope_parameters"})
                    if (rng() % 4 == 0 && j.contains(block) && j[block].is_object()) where = &j[block];
                std::vector<std::string> keys;
                for (const auto& [k, v] : where->items()) keys.push_back(k);
                if (keys.empty()) continue;
                const std::string key = keys[rng() % keys.size()];
                if (rng() % 5 == 0)
                    where->erase(key);
                else
                    (*where)[key] = values[rng() % values.size()];
            }
            INFO(j.dump());
            try {
                const ModelConfig c = config_from_json(j);
                CHECK(to_json(config_from_json(to_json(c))) == to_json(c));
                read++;
            } catch (const std::invalid_argument& e) {
                CHECK_THAT(std::string(e.what()), Catch::StartsWith("invalid model config: "));
                refused++;
            }
        }
    }
    CHECK(refused > 500);
    CHECK(read > 100);
}
