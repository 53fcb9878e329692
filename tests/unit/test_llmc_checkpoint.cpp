#include <catch2/catch.hpp>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "src/config.h"
#include "src/llmc_checkpoint.h"
#include "src/params.h"
#include "tests/temp_dir.h"

using namespace rkv;
namespace fs = std::filesystem;

namespace {

// A GPT-2 small enough for exhaustive checks; V = 50 pads to Vp = 128.
ModelConfig small_gpt2(int V = 50) { return llmc_gpt2_config(/*maxT*/ 8, V, /*L*/ 2, /*NH*/ 4, /*C*/ 16); }

std::vector<float> random_params(const ModelConfig& c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> p(ParamTable(c).total);
    for (auto& x : p) x = d(rng);
    return p;
}

std::vector<char> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
}

// llm.c's tensor sizes in its order (train_gpt2.c, fill_in_parameter_sizes), written
// out here independently of the loader.
std::vector<size_t> llmc_sizes(size_t maxT, size_t Vp, size_t L, size_t C) {
    return {Vp * C, maxT * C, L * C,         L * C,     L * 3 * C * C, L * 3 * C, L * C * C, L * C,
            L * C,  L * C,    L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C,     C,         C};
}

// A hand-made llm.c file: header, then `values` (already in the file's element type).
template <class E>
std::vector<char> llmc_file(int version, int maxT, int V, int L, int NH, int C, int Vp, const std::vector<E>& values) {
    std::vector<int32_t> h(256, 0);
    h[0] = 20240326;
    h[1] = version;
    h[2] = maxT, h[3] = V, h[4] = L, h[5] = NH, h[6] = C, h[7] = Vp;
    std::vector<char> bytes(1024 + values.size() * sizeof(E));
    std::memcpy(bytes.data(), h.data(), 1024);
    std::memcpy(bytes.data() + 1024, values.data(), values.size() * sizeof(E));
    return bytes;
}

// For every element of every rkv tensor, the index of the llm.c file element it comes from.
std::vector<size_t> expected_file_index(const ModelConfig& c, size_t Vp) {
    const size_t C = c.hidden_size, L = c.num_hidden_layers, maxT = c.max_position_embeddings;
    const auto sizes = llmc_sizes(maxT, Vp, L, C);
    std::vector<size_t> off(sizes.size(), 0);
    for (size_t i = 1; i < sizes.size(); i++) off[i] = off[i - 1] + sizes[i - 1];
    // rkv tensor name suffix -> (llm.c tensor id, elements per layer, start within the layer)
    struct Src {
        const char* suffix;
        int id;
        size_t per_layer, start;
    };
    const Src layer_srcs[] = {
        {"input_layernorm.weight", 2, C, 0},
        {"input_layernorm.bias", 3, C, 0},
        {"self_attn.q_proj.weight", 4, 3 * C * C, 0},
        {"self_attn.k_proj.weight", 4, 3 * C * C, C * C},
        {"self_attn.v_proj.weight", 4, 3 * C * C, 2 * C * C},
        {"self_attn.q_proj.bias", 5, 3 * C, 0},
        {"self_attn.k_proj.bias", 5, 3 * C, C},
        {"self_attn.v_proj.bias", 5, 3 * C, 2 * C},
        {"self_attn.o_proj.weight", 6, C * C, 0},
        {"self_attn.o_proj.bias", 7, C, 0},
        {"post_attention_layernorm.weight", 8, C, 0},
        {"post_attention_layernorm.bias", 9, C, 0},
        {"mlp.up_proj.weight", 10, 4 * C * C, 0},
        {"mlp.up_proj.bias", 11, 4 * C, 0},
        {"mlp.down_proj.weight", 12, 4 * C * C, 0},
        {"mlp.down_proj.bias", 13, C, 0},
    };
    const ParamTable table(c);
    std::vector<size_t> idx(table.total, SIZE_MAX);
    for (const auto& t : table.tensors) {
        size_t base = SIZE_MAX;
        if (t.name == "model.embed_tokens.weight")
            base = off[0];
        else if (t.name == "model.embed_positions.weight")
            base = off[1];
        else if (t.name == "model.norm.weight")
            base = off[14];
        else if (t.name == "model.norm.bias")
            base = off[15];
        else
            for (size_t l = 0; l < L; l++)
                for (const auto& s : layer_srcs)
                    if (t.name == "model.layers." + std::to_string(l) + "." + s.suffix)
                        base = off[s.id] + l * s.per_layer + s.start;
        REQUIRE(base != SIZE_MAX);  // every rkv tensor has an llm.c source
        for (size_t i = 0; i < t.numel(); i++) idx[t.offset + i] = base + i;
    }
    return idx;
}

std::string error_loading(const std::string& path) {
    try {
        load_llmc_checkpoint(path);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("llm.c config: GPT-2 124M from its header, padding to 128", "[llmc]") {
    const ModelConfig c = llmc_gpt2_config(1024, 50257, 12, 12, 768);
    CHECK(to_json(c) == to_json(preset("gpt2-124m")));
    CHECK(ParamTable(c).total == 124439808);
    CHECK(llmc_padded_vocab(50257) == 50304);
    CHECK(llmc_padded_vocab(256) == 256);
    CHECK(llmc_padded_vocab(250) == 256);
}

TEST_CASE("llm.c checkpoint: tensors are read in llm.c's order", "[llmc]") {
    test::TempDir dir("llmc");
    const int maxT = 8, V = 50, L = 2, NH = 4, C = 16, Vp = 64;
    const auto sizes = llmc_sizes(maxT, Vp, L, C);
    size_t numel = 0;
    for (auto s : sizes) numel += s;
    const ModelConfig c = llmc_gpt2_config(maxT, V, L, NH, C);
    const auto idx = expected_file_index(c, Vp);

    SECTION("version 3: each element is its index in the file") {
        std::vector<float> values(numel);
        for (size_t i = 0; i < numel; i++) values[i] = float(i);  // exact: numel < 2^24
        write_bytes(dir.file("m.bin"), llmc_file(3, maxT, V, L, NH, C, Vp, values));
        const LlmcCheckpoint ck = load_llmc_checkpoint(dir.file("m.bin"));
        CHECK(ck.version == 3);
        CHECK(ck.padded_vocab_size == Vp);
        CHECK(to_json(ck.config) == to_json(c));
        REQUIRE(ck.params.size() == idx.size());
        size_t wrong = 0;
        for (size_t i = 0; i < idx.size(); i++) wrong += ck.params[i] != float(idx[i]);
        CHECK(wrong == 0);
        // Together with the count this makes the mapping a bijection onto all but the padding rows.
        CHECK(ck.params.size() == numel - size_t(Vp - V) * C);
    }
    SECTION("version 5: bf16 values widened exactly") {
        std::vector<uint16_t> values(numel);
        for (size_t i = 0; i < numel; i++) values[i] = float_to_bf16(float(i % 251));  // exact in bf16
        write_bytes(dir.file("m.bin"), llmc_file(5, maxT, V, L, NH, C, Vp, values));
        const LlmcCheckpoint ck = load_llmc_checkpoint(dir.file("m.bin"));
        CHECK(ck.version == 5);
        size_t wrong = 0;
        for (size_t i = 0; i < idx.size(); i++) wrong += ck.params[i] != float(idx[i] % 251);
        CHECK(wrong == 0);
    }
}

TEST_CASE("llm.c checkpoint: version 3 round-trips exactly", "[llmc]") {
    test::TempDir dir("llmc");
    const ModelConfig c = small_gpt2();
    const auto p = random_params(c, 1);
    const std::string path = dir.file("m.bin");
    save_llmc_checkpoint(path, c, p, kLlmcFp32);
    const auto bytes = read_bytes(path);
    size_t n = 0;
    for (auto s : llmc_sizes(8, 128, 2, 16)) n += s;
    CHECK(bytes.size() == 1024 + n * 4);

    const LlmcCheckpoint ck = load_llmc_checkpoint(path);
    CHECK(ck.version == 3);
    CHECK(ck.padded_vocab_size == 128);
    CHECK(to_json(ck.config) == to_json(c));
    REQUIRE(ck.params.size() == p.size());
    CHECK(std::memcmp(ck.params.data(), p.data(), p.size() * sizeof(float)) == 0);
    CHECK(is_llmc_checkpoint(path));

    // Writing what was read gives the same bytes.
    save_llmc_checkpoint(dir.file("again.bin"), ck.config, ck.params, kLlmcFp32, ck.padded_vocab_size);
    CHECK(read_bytes(dir.file("again.bin")) == bytes);
}

TEST_CASE("llm.c checkpoint: version 5 round-trips to bf16 precision", "[llmc]") {
    test::TempDir dir("llmc");
    const ModelConfig c = small_gpt2();
    const auto p = random_params(c, 2);
    const std::string path = dir.file("m.bin");
    save_llmc_checkpoint(path, c, p, kLlmcBf16);
    size_t n = 0;
    for (auto s : llmc_sizes(8, 128, 2, 16)) n += s;
    CHECK(read_bytes(path).size() == 1024 + n * 2);

    const LlmcCheckpoint ck = load_llmc_checkpoint(path);
    CHECK(ck.version == 5);
    REQUIRE(ck.params.size() == p.size());
    size_t not_rounded = 0, too_far = 0;
    for (size_t i = 0; i < p.size(); i++) {
        not_rounded += ck.params[i] != bf16_to_float(float_to_bf16(p[i]));
        too_far += std::fabs(ck.params[i] - p[i]) > std::fabs(p[i]) * 0x1.0p-8f;  // half an ulp of 8 bits
    }
    CHECK(not_rounded == 0);
    CHECK(too_far == 0);
    // bf16 values survive a second trip unchanged.
    save_llmc_checkpoint(dir.file("again.bin"), ck.config, ck.params, kLlmcBf16);
    CHECK(read_bytes(dir.file("again.bin")) == read_bytes(path));
}

TEST_CASE("bf16 rounds to nearest even", "[llmc]") {
    CHECK(float_to_bf16(1.0f) == 0x3F80);
    CHECK(float_to_bf16(-2.0f) == 0xC000);
    CHECK(float_to_bf16(1.0f + 0x1.0p-8f) == 0x3F80);               // tie, down to even
    CHECK(float_to_bf16(1.0f + 3 * 0x1.0p-8f) == 0x3F82);           // tie, up to even
    CHECK(float_to_bf16(1.0f + 0x1.0p-8f + 0x1.0p-20f) == 0x3F81);  // above the tie
    CHECK(float_to_bf16(1.0f + 0x1.0p-8f - 0x1.0p-20f) == 0x3F80);  // below the tie
    CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
    CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // overflows to inf, as PyTorch
    CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(bf16_to_float(0x3F81) == 1.0f + 0x1.0p-7f);
    CHECK(float_to_bf16(0x1.0p-130f) == 0x0008);      // subnormal: 8 units of 2^-133
    CHECK(float_to_bf16(3 * 0x1.0p-134f) == 0x0002);  // subnormal tie (1.5 units), up to even
}

TEST_CASE("llm.c checkpoint: padded vocabulary", "[llmc]") {
    test::TempDir dir("llmc");
    const ModelConfig c = small_gpt2(50);
    auto p = random_params(c, 3);
    const std::string path = dir.file("m.bin");
    const int C = 16;

    SECTION("padding rows are written as zeros and dropped on load") {
        save_llmc_checkpoint(path, c, p, kLlmcFp32, 64);
        const auto bytes = read_bytes(path);
        int32_t h[8];
        std::memcpy(h, bytes.data(), sizeof h);
        CHECK(h[3] == 50);
        CHECK(h[7] == 64);
        std::vector<float> wte(64 * C);
        std::memcpy(wte.data(), bytes.data() + 1024, wte.size() * 4);
        CHECK(std::memcmp(wte.data(), p.data(), 50 * C * 4) == 0);
        for (size_t i = 50 * C; i < wte.size(); i++) CHECK(wte[i] == 0.0f);
        const auto ck = load_llmc_checkpoint(path);
        CHECK(ck.config.vocab_size == 50);
        CHECK(ck.padded_vocab_size == 64);
        CHECK(ck.params == p);
    }
    SECTION("non-zero padding rows in a file are ignored") {
        save_llmc_checkpoint(path, c, p, kLlmcFp32, 64);
        auto bytes = read_bytes(path);
        const float junk = 7.0f;
        for (size_t i = 50 * C; i < size_t(64 * C); i++) std::memcpy(bytes.data() + 1024 + i * 4, &junk, 4);
        write_bytes(path, bytes);
        CHECK(load_llmc_checkpoint(path).params == p);
    }
    SECTION("no padding: V == Vp") {
        save_llmc_checkpoint(path, c, p, kLlmcFp32, 50);
        const auto ck = load_llmc_checkpoint(path);
        CHECK(ck.padded_vocab_size == 50);
        CHECK(ck.params == p);
    }
    SECTION("a padded size below V is refused") {
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, c, p, kLlmcFp32, 49), Catch::Contains("padded vocab 49"));
        CHECK_FALSE(fs::exists(path));
    }
}

TEST_CASE("llm.c checkpoint: bad files are refused naming the file and the problem", "[llmc]") {
    test::TempDir dir("llmc");
    const ModelConfig c = small_gpt2();
    const std::string good = dir.file("good.bin"), bad = dir.file("bad.bin");
    save_llmc_checkpoint(good, c, random_params(c, 4), kLlmcFp32);
    const auto bytes = read_bytes(good);
    auto with_header = [&](int index, int32_t value) {
        auto b = bytes;
        std::memcpy(b.data() + index * 4, &value, 4);
        write_bytes(bad, b);
    };

    SECTION("missing file") {
        CHECK_THAT(error_loading(dir.file("nope.bin")),
                   Catch::Contains(dir.file("nope.bin")) && Catch::Contains("cannot open"));
        CHECK_FALSE(is_llmc_checkpoint(dir.file("nope.bin")));
    }
    SECTION("a directory") {
        CHECK_THAT(error_loading(dir.path.string()), Catch::Contains("is a directory"));
        CHECK_FALSE(is_llmc_checkpoint(dir.path.string()));
    }
    SECTION("wrong magic") {
        with_header(0, 12345);
        CHECK_THAT(error_loading(bad), Catch::Contains(bad) && Catch::Contains("bad magic 12345"));
        CHECK_FALSE(is_llmc_checkpoint(bad));
    }
    SECTION("a token shard") {
        with_header(0, 20240520);
        CHECK_THAT(error_loading(bad), Catch::Contains("bad magic") && Catch::Contains("token shard"));
    }
    SECTION("unknown version") {
        for (int v : {1, 2, 4, 6}) {
            with_header(1, v);
            CHECK_THAT(error_loading(bad), Catch::Contains(bad) && Catch::Contains("unknown llm.c checkpoint version " +
                                                                                   std::to_string(v)));
        }
    }
    SECTION("truncated parameters") {
        write_bytes(bad, std::vector<char>(bytes.begin(), bytes.end() - 1));
        CHECK_THAT(error_loading(bad), Catch::Contains(bad) && Catch::Contains("truncated"));
    }
    SECTION("truncated header") {
        write_bytes(bad, std::vector<char>(bytes.begin(), bytes.begin() + 100));
        CHECK_THAT(error_loading(bad), Catch::Contains("truncated") && Catch::Contains("header"));
        write_bytes(bad, {});
        CHECK_THAT(error_loading(bad), Catch::Contains("truncated"));
    }
    SECTION("a bf16 header on fp32 data is the wrong size") {
        with_header(1, 5);
        CHECK_THAT(error_loading(bad), Catch::Contains("trailing bytes"));
    }
    SECTION("trailing bytes") {
        auto b = bytes;
        b.push_back(0);
        write_bytes(bad, b);
        CHECK_THAT(error_loading(bad), Catch::Contains("trailing bytes"));
    }
    SECTION("not GPT-2 shaped") {
        with_header(5, 3);  // NH 3 does not divide C 16
        CHECK_THAT(error_loading(bad), Catch::Contains(bad) && Catch::Contains("not GPT-2 shaped"));
        with_header(3, 0);  // V 0
        CHECK_THAT(error_loading(bad), Catch::Contains("not GPT-2 shaped"));
        with_header(7, 49);  // Vp < V
        CHECK_THAT(error_loading(bad), Catch::Contains("not GPT-2 shaped") && Catch::Contains("Vp"));
        with_header(6, -16);
        CHECK_THAT(error_loading(bad), Catch::Contains("not GPT-2 shaped"));
        with_header(6, 1 << 30);  // absurd sizes are refused before any size arithmetic overflows
        CHECK_THAT(error_loading(bad), Catch::Contains("not GPT-2 shaped"));
    }
}

TEST_CASE("llm.c checkpoint: saving refuses what llm.c cannot hold, atomically", "[llmc]") {
    test::TempDir dir("llmc");
    const std::string path = dir.file("m.bin");
    const ModelConfig g = small_gpt2();
    const auto p = random_params(g, 5);

    SECTION("other families and shapes") {
        ModelConfig llama = preset("llama3-tiny");
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, llama, random_params(llama, 6)),
                          Catch::Contains(path) && Catch::Contains("not GPT-2 shaped"));
        ModelConfig untied = g;
        untied.tie_word_embeddings = false;
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, untied, random_params(untied, 7)), Catch::Contains("tied"));
        ModelConfig ff = g;
        ff.intermediate_size = 3 * ff.hidden_size;
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, ff, random_params(ff, 8)), Catch::Contains("intermediate_size"));
        ModelConfig eps = g;
        eps.rms_norm_eps = 1e-6;
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, eps, p), Catch::Contains("epsilon"));
        CHECK_FALSE(fs::exists(path));
    }
    SECTION("unknown version") {
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, g, p, 4), Catch::Contains("version 4"));
        CHECK_FALSE(fs::exists(path));
    }
    SECTION("wrong parameter count") {
        auto short_p = p;
        short_p.pop_back();
        CHECK_THROWS_WITH(save_llmc_checkpoint(path, g, short_p), Catch::Contains("parameters given"));
    }
    SECTION("an unwritable place leaves nothing behind") {
        const std::string missing = dir.file("no/such/dir/m.bin");
        CHECK_THROWS_WITH(save_llmc_checkpoint(missing, g, p), Catch::Contains(missing));
    }
    SECTION("overwriting replaces the file whole and leaves no temporary") {
        write_bytes(path, {'o', 'l', 'd'});
        save_llmc_checkpoint(path, g, p, kLlmcBf16);
        CHECK(load_llmc_checkpoint(path).version == 5);
        size_t files = 0;
        for (auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
        CHECK(files == 1);
    }
}
