#include <catch2/catch.hpp>

#include <set>

#include "src/config.h"
#include "src/params.h"

using namespace rkv;

static std::string error_of(const ModelConfig& c) {
    try {
        c.validate();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST_CASE("every preset is valid and has its published size", "[config]") {
    for (auto& name : preset_names()) {
        INFO(name);
        CHECK_NOTHROW(preset(name).validate());
    }
    CHECK(ParamTable(preset("gpt2-124m")).total == 124439808);    // GPT-2 small, unpadded vocab
    CHECK(ParamTable(preset("qwen3-0.6b")).total == 596049920);   // Qwen3-0.6B, tied head
    CHECK(ParamTable(preset("qwen3-1.7b")).total == 1720574976);  // Qwen3-1.7B, tied head
    CHECK_THROWS_WITH(preset("gpt3"), Catch::Contains("unknown model preset 'gpt3'"));
}

TEST_CASE("an invalid config is refused naming the field", "[config]") {
    ModelConfig c = preset("llama3-tiny");
    SECTION("heads not divisible by KV heads") {
        c.num_key_value_heads = 3;
        CHECK_THAT(error_of(c), Catch::Contains("num_key_value_heads"));
    }
    SECTION("odd head_dim with RoPE") {
        c.head_dim = 7;
        CHECK_THAT(error_of(c), Catch::Contains("head_dim") && Catch::Contains("RoPE"));
    }
    SECTION("odd head_dim is fine with learned positions") {
        c = preset("gpt2-tiny");
        c.head_dim = 7;
        CHECK(error_of(c).empty());
    }
    SECTION("zero sizes") {
        for (int ModelConfig::*field :
             {&ModelConfig::vocab_size, &ModelConfig::hidden_size, &ModelConfig::intermediate_size,
              &ModelConfig::num_hidden_layers, &ModelConfig::num_attention_heads, &ModelConfig::head_dim,
              &ModelConfig::max_position_embeddings}) {
            ModelConfig z = c;
            z.*field = 0;
            CHECK_THAT(error_of(z), Catch::Contains("must be positive"));
        }
        c.vocab_size = 0;
        CHECK_THAT(error_of(c), Catch::Contains("vocab_size"));
    }
}

TEST_CASE("config JSON round-trips and reads Hugging Face files", "[config]") {
    for (auto& name : preset_names()) {
        const ModelConfig c = preset(name);
        const ModelConfig back = config_from_json(to_json(c));
        CHECK(to_json(back) == to_json(c));
    }
    // As in Qwen3-0.6B's config.json, with keys rkv does not use.
    auto hf = nlohmann::json::parse(R"({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000, "tie_word_embeddings": true,
        "max_position_embeddings": 40960, "torch_dtype": "bfloat16", "attention_bias": false})");
    CHECK(to_json(config_from_json(hf)) == to_json(preset("qwen3-0.6b")));
    // Hugging Face GPT-2 names.
    auto gpt2 = nlohmann::json::parse(R"({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768,
        "n_layer": 12, "n_head": 12, "n_positions": 1024, "layer_norm_epsilon": 1e-05})");
    CHECK(to_json(config_from_json(gpt2)) == to_json(preset("gpt2-124m")));
    CHECK_THROWS_WITH(config_from_json(nlohmann::json::parse(R"({"model_type": "bert"})")),
                      Catch::Contains("model_type"));
}

TEST_CASE("the parameter table tiles one buffer", "[params]") {
    for (auto& name : {"gpt2-tiny", "llama3-tiny", "qwen3-tiny"}) {
        INFO(name);
        const ModelConfig c = preset(name);
        const ParamTable t(c);
        size_t next = 0;
        std::set<std::string> names;
        for (auto& x : t.tensors) {
            CHECK(x.offset == next);
            next += x.numel();
            CHECK(names.insert(x.name).second);
        }
        CHECK(next == t.total);
        CHECK((t.lm_head == t.wte) == c.tie_word_embeddings);
        for (auto& l : t.layers) {  // q, k, v adjacent: one fused matrix on the GPU
            CHECK(l.k_w == l.q_w + size_t(c.q_dim()) * c.hidden_size);
            CHECK(l.v_w == l.k_w + size_t(c.kv_dim()) * c.hidden_size);
        }
        for (auto& x : t.tensors) {
            const bool matrix = x.shape.size() == 2 && x.kind == ParamKind::Matrix;
            CHECK(decays(x, false) == matrix);
            if (x.kind == ParamKind::Embedding) CHECK(decays(x, true));
        }
    }
    CHECK(ParamTable(preset("qwen3-tiny")).find("model.layers.1.self_attn.q_norm.weight").shape ==
          std::vector<int64_t>{32});
    CHECK_THROWS_WITH(ParamTable(preset("gpt2-tiny")).find("lm_head.weight"), Catch::Contains("lm_head.weight"));
}

TEST_CASE("initialisation is deterministic and GPT-2 scaled", "[params]") {
    const ModelConfig c = preset("llama3-tiny");
    const ParamTable t(c);
    std::vector<float> a(t.total, NAN), b(t.total, NAN), d(t.total, NAN);
    init_params(a.data(), t, c, 7);
    init_params(b.data(), t, c, 7);
    init_params(d.data(), t, c, 8);
    CHECK(a == b);
    CHECK(a != d);
    for (auto& x : t.tensors) {
        INFO(x.name);
        double sum = 0, sq = 0;
        const float* w = a.data() + x.offset;
        for (size_t i = 0; i < x.numel(); i++) sum += w[i], sq += double(w[i]) * w[i];
        const double mean = sum / x.numel(), sd = std::sqrt(sq / x.numel() - mean * mean);
        if (x.kind == ParamKind::Norm) CHECK((mean == 1.0 && sd == 0.0));
        if (x.kind == ParamKind::Matrix || x.kind == ParamKind::Embedding) {
            const bool residual = x.name.ends_with("o_proj.weight") || x.name.ends_with("down_proj.weight");
            const double expect = 0.02 / (residual ? std::sqrt(2.0 * c.num_hidden_layers) : 1.0);
            CHECK(sd == Approx(expect).epsilon(0.05));
            CHECK(std::abs(mean) < 4 * expect / std::sqrt(double(x.numel())));
        }
    }
}
