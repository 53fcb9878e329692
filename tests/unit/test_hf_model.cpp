// Hugging Face model folders (src/hf_model.h) against transformers: the fixtures of
// scripts/make_hf_fixtures.py (gpt2, llama, mistral, qwen3; F32, BF16, F16; one file or
// sharded) load and give transformers' logits, at full cache and at keep-every-2; rkv writes
// them back with the same tensors and config; bad folders are refused naming the file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/checkpoint.h"
#include "src/cpu_ops.h"
#include "src/hf_model.h"
#include "src/model.h"
#include "src/safetensors.h"
#include "tests/fixtures.h"
#include "tests/rel_error.h"
#include "tests/temp_dir.h"

using namespace rkv;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = RKV_HF_FIXTURES;
const std::vector<std::string> kFolders = {"gpt2-f32",    "gpt2-f16",    "llama-f32", "llama-bf16",
                                           "mistral-f32", "mistral-f16", "qwen3-f32", "qwen3-bf16"};

std::vector<float> read_tensor(const SafetensorsFile& f, const std::string& name) {
    const auto& shape = f.tensors().at(name).shape;
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    std::vector<float> x(n);
    f.read(name, shape, x.data());
    return x;
}

nlohmann::json read_json(const fs::path& path) {
    std::ifstream f(path);
    return nlohmann::json::parse(f);
}

// Every tensor of a folder, by name, as float (shards merged).
std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> all_tensors(const fs::path& dir) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") files.push_back(e.path());
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> out;
    for (auto& p : files) {
        const SafetensorsFile f(p.string());
        for (auto& [name, e] : f.tensors()) out[name] = {e.shape, read_tensor(f, name)};
    }
    return out;
}

void write_json(const fs::path& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(2); }

}  // namespace

TEST_CASE("Hugging Face folders give transformers' logits, full cache and keep-every-2", "[hf]") {
    for (auto& name : kFolders) {
        INFO(name);
        const Checkpoint ck = load_model_weights((kFixtures / name).string());
        const SafetensorsFile expected((kFixtures / (name + ".logits.safetensors")).string());
        const std::vector<float> tokens_f = read_tensor(expected, "tokens");
        const std::vector<int> tokens(tokens_f.begin(), tokens_f.end());
        const int T = int(tokens.size()), L = ck.config.num_hidden_layers;
        CpuOps<float> ops;
        Model<float> model(ck.config, ops, 1, T, 0, false);
        REQUIRE(ck.params.size() == model.table.total);
        std::copy(ck.params.begin(), ck.params.end(), model.params);
        model.forward(tokens.data(), nullptr, all_own(L));
        const double full = kcheck::max_rel_error(model.logits(T), read_tensor(expected, "logits"));
        model.forward(tokens.data(), nullptr, keep_every(L, 2));
        const double keep2 = kcheck::max_rel_error(model.logits(T), read_tensor(expected, "logits_keep2"));
        INFO("relative error: full cache " << full << ", keep-every-2 " << keep2);
        CHECK(full < 1e-5);
        CHECK(keep2 < 1e-5);
        // The route matters: the two references differ far beyond the tolerance.
        CHECK(kcheck::max_rel_error(read_tensor(expected, "logits"), read_tensor(expected, "logits_keep2")) > 1e-2);
    }
}

TEST_CASE("rkv writes a folder back with the fixture's tensors, config and extra files", "[hf]") {
    const test::TempDir tmp("hf_export");
    const fs::path& dir = tmp.path;
    for (auto& name : kFolders) {
        INFO(name);
        // A copy of the fixture with tokenizer files, which the export carries over.
        const fs::path src = dir / ("src-" + name);
        fs::copy(kFixtures / name, src);
        std::ofstream(src / "tokenizer.json") << R"({"version": "1.0", "model": {"type": "BPE"}})";
        std::ofstream(src / "tokenizer_config.json") << R"({"model_max_length": 32})";
        const Checkpoint ck = load_model_weights(src.string());
        CHECK(ck.source == src.string());
        const nlohmann::json block = {{"route", {{"kind", "stochastic"}, {"p_own", 0.5}}}};
        for (Dtype dtype : {Dtype::F32, Dtype::BF16}) {
            INFO(dtype_name(dtype));
            const fs::path out = dir / (name + "-" + dtype_name(dtype));
            save_model_folder(out.string(), ck.config, ck.params.data(), {dtype, ck.source, block});
            const auto want = all_tensors(src), got = all_tensors(out);
            CHECK(got.size() == want.size());
            for (auto& [tensor, value] : want) {
                INFO(tensor);
                REQUIRE(got.count(tensor));
                CHECK(got.at(tensor).first == value.first);
                if (dtype == Dtype::F32 || name.ends_with("bf16"))
                    CHECK(got.at(tensor).second == value.second);
                else
                    CHECK(kcheck::max_rel_error(got.at(tensor).second, value.second) < 1.0 / 128);  // bf16 rounding
            }
            const nlohmann::json a = read_json(src / "config.json"), b = read_json(out / "config.json");
            // GPT-2's own names, or their generic aliases (the config's writer decides which).
            const std::vector<std::pair<const char*, const char*>> fields = {{"model_type", nullptr},
                                                                             {"architectures", nullptr},
                                                                             {"vocab_size", nullptr},
                                                                             {"hidden_size", "n_embd"},
                                                                             {"intermediate_size", "n_inner"},
                                                                             {"num_hidden_layers", "n_layer"},
                                                                             {"num_attention_heads", "n_head"},
                                                                             {"num_key_value_heads", nullptr},
                                                                             {"head_dim", nullptr},
                                                                             {"rms_norm_eps", "layer_norm_epsilon"},
                                                                             {"max_position_embeddings", "n_positions"},
                                                                             {"tie_word_embeddings", nullptr},
                                                                             {"bos_token_id", nullptr},
                                                                             {"eos_token_id", nullptr}};
            auto field = [](const nlohmann::json& j, const char* key, const char* alias) {
                if (j.contains(key)) return j[key];
                return alias && j.contains(alias) ? j[alias] : nlohmann::json();
            };
            for (auto [key, alias] : fields) {
                INFO(key);
                if (!field(a, key, alias).is_null()) CHECK(field(b, key, alias) == field(a, key, alias));
            }
            CHECK(b["dtype"] == (dtype == Dtype::F32 ? "float32" : "bfloat16"));
            CHECK(b["rkv"] == block);
            for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer_config.json"}) {
                INFO(f);
                REQUIRE(fs::exists(out / f));
                CHECK(read_json(out / f) == read_json(src / f));
            }
            // And it loads again, as the same model.
            const Checkpoint back = load_model_weights(out.string());
            if (dtype == Dtype::F32) CHECK(back.params == ck.params);
            CHECK(to_json(back.config) == to_json(ck.config));
        }
    }
    fs::remove_all(dir);
}

TEST_CASE("GPT-2 checkpoints of earlier rkv versions, under Llama-style names, still load", "[hf]") {
    const test::TempDir tmp("hf_legacy");
    const fs::path& dir = tmp.path;
    const ModelConfig c = test::tiny_config("gpt2");
    const ParamTable table(c);
    std::vector<float> params(table.total);
    std::mt19937_64 rng(7);
    test::fill_normal(params.data(), params.size(), rng);
    std::vector<TensorRef> refs;
    for (auto& t : table.tensors) refs.push_back({t.name, t.shape, params.data() + t.offset});
    write_safetensors((dir / "model.safetensors").string(), refs);
    write_json(dir / "config.json", to_json(c));
    CHECK(load_model_weights(dir.string()).params == params);
    // Written again, it uses GPT-2's names, and reads back the same.
    save_model_folder((dir / "new").string(), c, params.data());
    const SafetensorsFile f((dir / "new" / "model.safetensors").string());
    CHECK(f.has("transformer.h.0.attn.c_attn.weight"));
    CHECK(f.tensors().at("transformer.h.0.attn.c_attn.weight").shape ==
          std::vector<int64_t>{c.hidden_size, 3 * c.hidden_size});
    CHECK(!f.has("lm_head.weight"));  // tied
    CHECK(load_model_weights((dir / "new").string()).params == params);
    fs::remove_all(dir);
}

TEST_CASE("GPT-2 files as the hub ships them: no prefix, causal-mask buffers", "[hf]") {
    const test::TempDir tmp("hf_hub_gpt2");
    const fs::path& dir = tmp.path;
    fs::copy(kFixtures / "gpt2-f32", dir);
    const Checkpoint want = load_model_weights((kFixtures / "gpt2-f32").string());
    const auto tensors = all_tensors(dir);
    std::vector<TensorRef> refs;
    for (auto& [name, t] : tensors) refs.push_back({name.substr(name.find('.') + 1), t.first, t.second.data()});
    const std::vector<float> mask(32 * 32, 1.0f), masked_bias(1, -1e4f);
    for (int l = 0; l < 2; l++) {
        refs.push_back({fmt::format("h.{}.attn.bias", l), {1, 1, 32, 32}, mask.data()});
        refs.push_back({fmt::format("h.{}.attn.masked_bias", l), {}, masked_bias.data()});
    }
    write_safetensors((dir / "model.safetensors").string(), refs);
    CHECK(load_model_weights(dir.string()).params == want.params);
    fs::remove_all(dir);
}

TEST_CASE("bad model folders are refused naming the file and the tensor", "[hf]") {
    const test::TempDir tmp("hf_bad");
    const fs::path& dir = tmp.path;
    auto copy = [&](const std::string& fixture, const std::string& as) {
        const fs::path p = dir / as;
        fs::create_directories(p);
        fs::copy(kFixtures / fixture, p);
        return p;
    };
    auto refused = [](const fs::path& p) {
        try {
            load_model_weights(p.string());
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string("(loaded)");
    };
    const std::string tensor = "model.layers.1.mlp.up_proj.weight";

    SECTION("a path that does not exist") {
        CHECK_THAT(refused(dir / "nowhere"), Catch::Contains("nowhere") && Catch::Contains("no such file"));
    }
    SECTION("a folder that is neither a model folder nor a run folder") {
        CHECK_THAT(refused(dir), Catch::Contains(dir.string()) && Catch::Contains("neither a model folder"));
    }
    SECTION("a run folder: its newest checkpoint") {
        copy("llama-f32", "run/ckpt_00000002");
        copy("qwen3-f32", "run/ckpt_00000010");
        CHECK(load_model_weights((dir / "run").string()).config.model_type == "qwen3");
    }
    SECTION("the index names a file that is not there") {
        const fs::path p = copy("qwen3-bf16", "q");
        const std::string file = read_json(p / "model.safetensors.index.json")["weight_map"][tensor];
        fs::remove(p / file);
        CHECK_THAT(refused(p), Catch::Contains("model.safetensors.index.json") && Catch::Contains(file) &&
                                   Catch::Contains("does not exist"));
    }
    SECTION("the index puts a tensor in a file that does not hold it") {
        const fs::path p = copy("qwen3-bf16", "q");
        nlohmann::json index = read_json(p / "model.safetensors.index.json");
        const std::string file = index["weight_map"][tensor];
        const std::string other = index["weight_map"]["model.embed_tokens.weight"];
        REQUIRE(other != file);
        index["weight_map"][tensor] = other;
        write_json(p / "model.safetensors.index.json", index);
        CHECK_THAT(refused(p), Catch::Contains(other) && Catch::Contains(tensor));
    }
    SECTION("the index names a path outside the folder") {
        const fs::path p = copy("qwen3-bf16", "q");
        nlohmann::json index = read_json(p / "model.safetensors.index.json");
        index["weight_map"][tensor] = "../x.safetensors";
        write_json(p / "model.safetensors.index.json", index);
        CHECK_THAT(refused(p), Catch::Contains("../x.safetensors") && Catch::Contains("not a file name"));
    }
    SECTION("a tensor the index does not list") {
        const fs::path p = copy("qwen3-bf16", "q");
        nlohmann::json index = read_json(p / "model.safetensors.index.json");
        index["weight_map"].erase(tensor);
        write_json(p / "model.safetensors.index.json", index);
        CHECK_THAT(refused(p), Catch::Contains(tensor) && Catch::Contains("weight_map"));
    }
    SECTION("a config asking for more layers than the weights hold, before allocating them") {
        const fs::path p = copy("llama-f32", "l");
        nlohmann::json config = read_json(p / "config.json");
        for (int layers : {3, 512}) {  // 512: the most a config may ask for (src/config.h)
            config["num_hidden_layers"] = layers;
            write_json(p / "config.json", config);
            CHECK_THAT(refused(p), Catch::Contains("model.safetensors") &&
                                       (Catch::Contains("model.layers.2.") || Catch::Contains("too few")));
        }
    }
    SECTION("a config whose sizes disagree with a tensor's shape") {
        const fs::path p = copy("mistral-f32", "m");
        nlohmann::json config = read_json(p / "config.json");
        config["vocab_size"] = 300;
        write_json(p / "config.json", config);
        CHECK_THAT(refused(p), Catch::Contains("model.safetensors") && Catch::Contains("model.embed_tokens.weight") &&
                                   Catch::Contains("[256, 64]"));
    }
    SECTION("an untied head missing, a tensor the model does not have") {
        const fs::path p = copy("mistral-f32", "m");
        nlohmann::json config = read_json(p / "config.json");
        config["tie_word_embeddings"] = false;
        write_json(p / "config.json", config);
        CHECK_THAT(refused(p), Catch::Contains("lm_head.weight"));
        config["tie_word_embeddings"] = true;
        config["model_type"] = "qwen3";  // Qwen3 has q_norm/k_norm; this folder has not
        config["architectures"] = {"Qwen3ForCausalLM"};
        write_json(p / "config.json", config);
        CHECK_THAT(refused(p), Catch::Contains("model.safetensors") && Catch::Contains("q_norm.weight"));
    }
    SECTION("GPT-2 under its Hugging Face names needs every one of them") {
        const fs::path p = copy("gpt2-f32", "g");
        const auto tensors = all_tensors(p);
        std::vector<TensorRef> refs;
        for (auto& [name, t] : tensors)
            if (name != "transformer.h.1.mlp.c_fc.bias") refs.push_back({name, t.first, t.second.data()});
        write_safetensors((p / "model.safetensors").string(), refs);
        CHECK_THAT(refused(p), Catch::Contains("transformer.h.1.mlp.c_fc.bias"));
    }
    fs::remove_all(dir);
}
