#include "src/llmc_checkpoint.h"

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>

#include "src/file_io.h"
#include "src/params.h"

namespace rkv {

static_assert(std::endian::native == std::endian::little, "llm.c files are little-endian; so must the host be");

namespace {

constexpr int kHeaderInts = 256;
constexpr uint64_t kHeaderBytes = kHeaderInts * sizeof(int32_t);
constexpr int32_t kShardMagics[] = {20240520, 20240801};  // token shards, a common mix-up

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", path, what));
}

// The elements of all 16 tensors with the vocabulary padded to Vp, or 0 on overflow.
uint64_t llmc_numel(uint64_t maxT, uint64_t Vp, uint64_t L, uint64_t C) {
    const uint64_t terms[] = {Vp * C, maxT * C, 12 * L * C * C, 13 * L * C, 2 * C};
    // Every factor is below 2^31, so the products above overflow only for absurd headers:
    // guard with a bound that any real model is far below.
    if (maxT > (1u << 24) || Vp > (1u << 26) || L > (1u << 16) || C > (1u << 20)) return 0;
    uint64_t n = 0;
    for (auto t : terms) n += t;
    return n;
}

// Calls fn(file_offset, param_offset, count) for every run of elements that the llm.c
// file (in elements, padded vocabulary, header excluded) and the ParamTable buffer share,
// walking the file in order. The wte padding rows [V, Vp) belong to no run.
void for_each_run(const ModelConfig& c, const ParamTable& t, size_t Vp,
                  const std::function<void(size_t, size_t, size_t)>& fn) {
    const size_t V = c.vocab_size, C = c.hidden_size, L = c.num_hidden_layers, maxT = c.max_position_embeddings;
    size_t f = 0;
    fn(f, t.wte, V * C);
    f += Vp * C;
    fn(f, t.wpe, maxT * C);
    f += maxT * C;
    // A stacked (L, ...) tensor: `parts` are the rkv tensors of one layer, in row order.
    auto stacked = [&](std::initializer_list<std::pair<size_t LayerParams::*, size_t>> parts) {
        for (size_t l = 0; l < L; l++)
            for (auto [member, n] : parts) {
                fn(f, t.layers[l].*member, n);
                f += n;
            }
    };
    stacked({{&LayerParams::ln1_w, C}});
    stacked({{&LayerParams::ln1_b, C}});
    stacked({{&LayerParams::q_w, C * C}, {&LayerParams::k_w, C * C}, {&LayerParams::v_w, C * C}});
    stacked({{&LayerParams::q_b, C}, {&LayerParams::k_b, C}, {&LayerParams::v_b, C}});
    stacked({{&LayerParams::o_w, C * C}});
    stacked({{&LayerParams::o_b, C}});
    stacked({{&LayerParams::ln2_w, C}});
    stacked({{&LayerParams::ln2_b, C}});
    stacked({{&LayerParams::up_w, 4 * C * C}});
    stacked({{&LayerParams::up_b, 4 * C}});
    stacked({{&LayerParams::down_w, 4 * C * C}});
    stacked({{&LayerParams::down_b, C}});
    fn(f, t.lnf_w, C);
    f += C;
    fn(f, t.lnf_b, C);
    f += C;
    if (f != llmc_numel(maxT, Vp, L, C))
        throw std::logic_error(
            fmt::format("llm.c layout walk covered {} elements, expected {}", f, llmc_numel(maxT, Vp, L, C)));
}

// Why `c` cannot be an llm.c GPT-2, or "" if it can.
std::string not_gpt2_shaped(const ModelConfig& c) {
    if (c.model_type != "gpt2") return fmt::format("model_type is '{}', not gpt2", c.model_type);
    if (c.norm != Norm::LayerNorm) return "norm is not LayerNorm";
    if (c.positions != Positions::Learned) return "positions are not learned";
    if (c.mlp != Mlp::Gelu) return "mlp is not GELU";
    if (c.qk_norm) return "it has QK-norm";
    if (!c.attention_bias || !c.mlp_bias) return "it lacks the attention or MLP biases";
    if (!c.tie_word_embeddings) return "the head is not tied to the embeddings";
    if (c.num_key_value_heads != c.num_attention_heads)
        return fmt::format("num_key_value_heads {} != num_attention_heads {}", c.num_key_value_heads,
                           c.num_attention_heads);
    if (c.head_dim * c.num_attention_heads != c.hidden_size)
        return fmt::format("head_dim {} x heads {} != hidden_size {}", c.head_dim, c.num_attention_heads,
                           c.hidden_size);
    if (c.intermediate_size != 4 * c.hidden_size)
        return fmt::format("intermediate_size {} != 4 x hidden_size {}", c.intermediate_size, c.hidden_size);
    if (c.rms_norm_eps != 1e-5) return fmt::format("norm epsilon {} != 1e-5", c.rms_norm_eps);
    return "";
}

}  // namespace

uint16_t float_to_bf16(float x) {
    uint32_t u = std::bit_cast<uint32_t>(x);
    if (std::isnan(x)) return uint16_t((u >> 16) | 0x0040);  // keep it a (quiet) NaN
    u += 0x7FFFu + ((u >> 16) & 1u);                         // round to nearest, ties to even
    return uint16_t(u >> 16);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

ModelConfig llmc_gpt2_config(int maxT, int V, int L, int NH, int C) {
    ModelConfig c;
    nlohmann::json j = {{"model_type", "gpt2"},      {"vocab_size", V},
                        {"hidden_size", C},          {"num_hidden_layers", L},
                        {"num_attention_heads", NH}, {"max_position_embeddings", maxT},
                        {"rms_norm_eps", 1e-5},      {"tie_word_embeddings", true}};
    return config_from_json(j);  // fills the GPT-2 family switches; validates
}

int llmc_padded_vocab(int V) { return (V + 127) / 128 * 128; }

bool is_llmc_checkpoint(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    int32_t magic = 0;
    const bool ok = std::fread(&magic, sizeof magic, 1, f) == 1 && magic == kLlmcCheckpointMagic;
    std::fclose(f);
    return ok;
}

LlmcCheckpoint load_llmc_checkpoint(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not an llm.c checkpoint file");
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(path, fmt::format("cannot open llm.c checkpoint: {}", std::strerror(errno)));
    std::unique_ptr<FILE, int (*)(FILE*)> guard(f, std::fclose);

    std::fseek(f, 0, SEEK_END);
    const long end = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    if (end < 0) fail(path, "cannot determine the file size");
    const uint64_t size = uint64_t(end);

    int32_t h[kHeaderInts] = {};
    if (size < kHeaderBytes || std::fread(h, sizeof(int32_t), kHeaderInts, f) != size_t(kHeaderInts))
        fail(path,
             fmt::format("truncated llm.c checkpoint: {} bytes, shorter than the {}-byte header", size, kHeaderBytes));
    if (h[0] != kLlmcCheckpointMagic) {
        const bool shard = h[0] == kShardMagics[0] || h[0] == kShardMagics[1];
        fail(path, fmt::format("bad magic {} (expected {}): not an llm.c GPT-2 checkpoint{}", h[0],
                               kLlmcCheckpointMagic, shard ? " (it is a token shard)" : ""));
    }
    const int version = h[1];
    if (version != kLlmcFp32 && version != kLlmcBf16)
        fail(path, fmt::format("unknown llm.c checkpoint version {} (known: 3 = fp32, 5 = bf16)", version));
    const int maxT = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
    const std::string dims = fmt::format("maxT {}, V {}, L {}, NH {}, C {}, Vp {}", maxT, V, L, NH, C, Vp);
    if (maxT <= 0 || V <= 0 || L <= 0 || NH <= 0 || C <= 0 || Vp <= 0)
        fail(path, fmt::format("header is not GPT-2 shaped: every size must be positive ({})", dims));
    if (C % NH != 0) fail(path, fmt::format("header is not GPT-2 shaped: C must be a multiple of NH ({})", dims));
    if (Vp < V) fail(path, fmt::format("header is not GPT-2 shaped: padded vocab Vp < V ({})", dims));
    const uint64_t numel = llmc_numel(maxT, Vp, L, C);
    if (numel == 0) fail(path, fmt::format("header is not GPT-2 shaped: sizes out of range ({})", dims));

    const uint64_t elem = version == kLlmcFp32 ? 4 : 2;
    const uint64_t expected = kHeaderBytes + numel * elem;
    if (size < expected)
        fail(path, fmt::format("truncated llm.c checkpoint: {} bytes, expected {} for {} {} parameters ({})", size,
                               expected, numel, version == kLlmcFp32 ? "fp32" : "bf16", dims));
    if (size > expected)
        fail(path, fmt::format("llm.c checkpoint has {} trailing bytes: {} bytes, expected {} ({})", size - expected,
                               size, expected, dims));

    std::vector<float> file(numel);
    if (version == kLlmcFp32) {
        if (std::fread(file.data(), 4, numel, f) != numel) fail(path, "read error");
    } else {
        std::vector<uint16_t> raw(numel);
        if (std::fread(raw.data(), 2, numel, f) != numel) fail(path, "read error");
        for (size_t i = 0; i < numel; i++) file[i] = bf16_to_float(raw[i]);
    }

    LlmcCheckpoint ck;
    try {
        ck.config = llmc_gpt2_config(maxT, V, L, NH, C);
    } catch (const std::exception& e) {
        fail(path, fmt::format("header is not GPT-2 shaped: {} ({})", e.what(), dims));
    }
    ck.version = version;
    ck.padded_vocab_size = Vp;
    const ParamTable table(ck.config);
    ck.params.assign(table.total, 0.0f);
    for_each_run(ck.config, table, Vp, [&](size_t fo, size_t po, size_t n) {
        std::memcpy(ck.params.data() + po, file.data() + fo, n * sizeof(float));
    });
    return ck;
}

void save_llmc_checkpoint(const std::string& path, const ModelConfig& c, const float* params, int version,
                          int padded_vocab) {
    if (version != kLlmcFp32 && version != kLlmcBf16)
        fail(path, fmt::format("cannot write llm.c checkpoint version {} (known: 3 = fp32, 5 = bf16)", version));
    c.validate();
    if (auto why = not_gpt2_shaped(c); !why.empty())
        fail(path, "cannot write an llm.c checkpoint: the config is not GPT-2 shaped: " + why);
    const int Vp = padded_vocab == 0 ? llmc_padded_vocab(c.vocab_size) : padded_vocab;
    if (Vp < c.vocab_size)
        fail(path, fmt::format("cannot write an llm.c checkpoint: padded vocab {} < vocab_size {}", Vp, c.vocab_size));
    const int maxT = c.max_position_embeddings, L = c.num_hidden_layers, C = c.hidden_size;
    const uint64_t numel = llmc_numel(maxT, Vp, L, C);
    if (numel == 0) fail(path, "cannot write an llm.c checkpoint: sizes out of range");

    std::vector<float> file(numel, 0.0f);
    const ParamTable table(c);
    for_each_run(c, table, Vp, [&](size_t fo, size_t po, size_t n) {
        std::memcpy(file.data() + fo, params + po, n * sizeof(float));
    });

    int32_t h[kHeaderInts] = {};
    h[0] = kLlmcCheckpointMagic;
    h[1] = version;
    h[2] = maxT;
    h[3] = c.vocab_size;
    h[4] = L;
    h[5] = c.num_attention_heads;
    h[6] = C;
    h[7] = Vp;

    // Written beside the target and renamed: a reader never sees a half-written file.
    AtomicFile f(path);
    f.write(h, sizeof(h));
    if (version == kLlmcFp32) {
        f.write(file.data(), numel * 4);
    } else {
        std::vector<uint16_t> raw(numel);
        for (size_t i = 0; i < numel; i++) raw[i] = float_to_bf16(file[i]);
        f.write(raw.data(), numel * 2);
    }
    f.commit();
}

void save_llmc_checkpoint(const std::string& path, const ModelConfig& c, const std::vector<float>& params, int version,
                          int padded_vocab) {
    const size_t total = ParamTable(c).total;
    if (params.size() != total)
        fail(path, fmt::format("cannot write an llm.c checkpoint: {} parameters given, the config has {}",
                               params.size(), total));
    save_llmc_checkpoint(path, c, params.data(), version, padded_vocab);
}

}  // namespace rkv
