// Writes the fixture of the llm.c parity test: a small GPT-2 as an llm.c checkpoint
// (version 3, fp32) and a train and a val token shard in llm.c's format.
//
//   make_fixture OUTDIR      -> OUTDIR/model.bin, OUTDIR/train.bin, OUTDIR/val.bin
//
// and compares a run's log with the losses llm.c gave on it (run_parity.sh calls both):
//
//   make_fixture --compare EXPECTED.json LOG.jsonl [FIXTURE_DIR]
//
// Every expected train loss (steps 1..N) and val loss (steps 0, every val_every, N) must
// appear in the log once, within the tolerance; train steps beyond N or val losses
// (retention 1) at other steps are a mismatch too. With FIXTURE_DIR, the fixture files'
// hashes are checked against the ones the expected losses were made from. Exit 0 when
// all hold, 1 on a mismatch, 2 on bad usage or unreadable files.
//
// Everything is a pure function of the constants below: the generator is splitmix64 and
// normals are Irwin-Hall sums of 12 uniforms (of libm only sqrt, which IEEE rounds
// exactly; no std:: distributions, whose outputs differ between standard libraries),
// so the files are bitwise the same on every machine and expected.json stays valid.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/config.h"
#include "src/file_io.h"
#include "src/llmc_checkpoint.h"
#include "src/params.h"

namespace {

// The model: 3 layers, 96 channels, 4 heads of 24, positions up to 64; a vocabulary of
// 250 that llm.c pads to 256 (so the padding path is exercised).
constexpr int kMaxT = 64, kV = 250, kL = 3, kNH = 4, kC = 96;
constexpr int kTrainTokens = 4096, kValTokens = 1024;
constexpr uint64_t kSeed = 20240326;

struct SplitMix64 {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    int below(int n) { return int(next() % uint64_t(n)); }
    double normal() {  // ~N(0, 1)
        double s = 0;
        for (int i = 0; i < 12; i++) s += uniform();
        return s - 6.0;
    }
};

// Weights with enough signal that attention is far from uniform and the loss moves:
// matrices N(0, 1/fan_in) (the residual projections scaled by 1/sqrt(2L)), embeddings
// N(0, 0.1), norm weights 1 + N(0, 0.1), biases N(0, 0.05).
std::vector<float> make_params(const rkv::ModelConfig& c) {
    const rkv::ParamTable table(c);
    std::vector<float> p(table.total);
    SplitMix64 rng{kSeed};
    for (const auto& t : table.tensors) {
        double mean = 0, std = 0;
        switch (t.kind) {
            case rkv::ParamKind::Matrix: {
                std = 1.0 / std::sqrt(double(t.shape[1]));
                const bool residual = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
                if (residual) std /= std::sqrt(2.0 * c.num_hidden_layers);
                break;
            }
            case rkv::ParamKind::Embedding: std = 0.1; break;
            case rkv::ParamKind::Norm:
                mean = 1.0;
                std = 0.1;
                break;
            case rkv::ParamKind::Bias: std = 0.05; break;
        }
        for (size_t i = 0; i < t.numel(); i++) p[t.offset + i] = float(mean + std * rng.normal());
    }
    return p;
}

// A token stream with structure a small model picks up within a few steps: runs of a
// noisy Markov chain (the successor of token x is succ[x] with probability 0.85) and
// copy spans (a random span, a short gap, the same span again) that attention can use.
std::vector<int32_t> make_tokens(int n, const std::vector<int>& succ, uint64_t seed) {
    SplitMix64 rng{seed};
    std::vector<int32_t> out;
    int cur = rng.below(kV);
    while (int(out.size()) < n) {
        if (rng.below(3) < 2) {
            const int len = 8 + rng.below(17);
            for (int i = 0; i < len; i++) {
                cur = rng.uniform() < 0.85 ? succ[cur] : rng.below(kV);
                out.push_back(cur);
            }
        } else {
            std::vector<int32_t> span(4 + rng.below(7));
            for (auto& x : span) x = rng.below(kV);
            out.insert(out.end(), span.begin(), span.end());
            for (int i = rng.below(3); i > 0; i--) out.push_back(rng.below(kV));
            out.insert(out.end(), span.begin(), span.end());
            cur = span.back();
        }
    }
    out.resize(n);
    return out;
}

// llm.c token shard, version 1: 256 x int32 header (magic, version, count), uint16 tokens.
void write_shard_v1(const std::string& path, const std::vector<int32_t>& tokens) {
    int32_t header[256] = {};
    header[0] = 20240520;
    header[1] = 1;
    header[2] = int32_t(tokens.size());
    std::vector<uint16_t> t16(tokens.begin(), tokens.end());
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error(fmt::format("{}: cannot create", path));
    bool ok = std::fwrite(header, sizeof header, 1, f) == 1 &&
              std::fwrite(t16.data(), sizeof(uint16_t), t16.size(), f) == t16.size();
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) throw std::runtime_error(fmt::format("{}: write failed", path));
}

// FNV-1a, 64 bits, of a whole file, as "0x" + 16 hex digits.
std::string file_hash(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
    uint64_t h = 0xCBF29CE484222325ull;
    for (std::istreambuf_iterator<char> it(f), end; it != end; ++it) {
        h ^= uint8_t(*it);
        h *= 0x100000001B3ull;
    }
    return fmt::format("0x{:016x}", h);
}

// Returns the number of mismatches (printed), or throws on unreadable input.
int compare(const std::string& expected_path, const std::string& log_path, const std::string& fixture_dir) {
    const nlohmann::json ex = rkv::read_json_file(expected_path);
    const double tol = ex.at("tolerance").get<double>();
    int bad = 0;
    if (!fixture_dir.empty())
        for (auto& [name, want] : ex.at("fixture_fnv1a64").items()) {
            const std::string got = file_hash(fmt::format("{}/{}", fixture_dir, name));
            if (got != want.get<std::string>()) {
                std::printf("fixture %s: hash %s, expected %s (make_fixture changed: regenerate expected.json)\n",
                            name.c_str(), got.c_str(), want.get<std::string>().c_str());
                bad++;
            }
        }

    // The log: train losses by step, val losses (retention 1) by step; repeats are errors.
    std::map<int, double> train, val;
    std::ifstream f(log_path);
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open", log_path));
    std::string line;
    for (int n = 1; std::getline(f, line); n++) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json o;
        try {
            o = nlohmann::json::parse(line);
        } catch (const std::exception& e) {
            throw std::runtime_error(fmt::format("{}:{}: not JSON: {}", log_path, n, e.what()));
        }
        if (!o.is_object() || !o.contains("step")) continue;
        const int step = o["step"].get<int>();
        auto put = [&](std::map<int, double>& m, const char* key) {
            if (!m.emplace(step, o[key].get<double>()).second) {
                std::printf("log line %d: a second %s at step %d\n", n, key, step);
                bad++;
            }
        };
        if (o.contains("train_loss")) put(train, "train_loss");
        if (o.contains("val_loss") && o.value("retention", 1) == 1) put(val, "val_loss");
    }

    double worst = 0;
    auto check = [&](const char* what, const nlohmann::json& want, std::map<int, double>& got) {
        for (auto& e : want) {
            const int step = e.at("step").get<int>();
            const double w = e.at(what).get<double>();
            auto it = got.find(step);
            if (it == got.end()) {
                std::printf("step %3d %-10s expected %.7f, missing from the log\n", step, what, w);
                bad++;
                continue;
            }
            const double d = std::fabs(it->second - w);
            worst = std::max(worst, d);
            const bool ok = d <= tol;
            std::printf("step %3d %-10s expected %.7f got %.7f diff %.2e%s\n", step, what, w, it->second, d,
                        ok ? "" : "  MISMATCH");
            bad += !ok;
            got.erase(it);
        }
        for (auto& [step, loss] : got) {
            std::printf("step %3d %-10s %.7f in the log, but llm.c has none at this step\n", step, what, loss);
            bad++;
        }
    };
    check("train_loss", ex.at("train"), train);
    check("val_loss", ex.at("val"), val);
    std::printf("max |difference| %.3e (tolerance %.0e): %s\n", worst, tol, bad ? "FAIL" : "ok");
    return bad;
}

}  // namespace

int main(int argc, char** argv) {
    const bool cmp = argc >= 2 && std::string(argv[1]) == "--compare";
    if (cmp ? (argc != 4 && argc != 5) : argc != 2) {
        std::fprintf(stderr,
                     "usage: %s OUTDIR   (writes model.bin, train.bin, val.bin there)\n"
                     "       %s --compare EXPECTED.json LOG.jsonl [FIXTURE_DIR]\n",
                     argv[0], argv[0]);
        return 2;
    }
    if (cmp) {
        try {
            return compare(argv[2], argv[3], argc == 5 ? argv[4] : "") ? 1 : 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "make_fixture --compare: %s\n", e.what());
            return 2;
        }
    }
    const std::string dir = argv[1];
    try {
        std::filesystem::create_directories(dir);
        const rkv::ModelConfig c = rkv::llmc_gpt2_config(kMaxT, kV, kL, kNH, kC);
        rkv::save_llmc_checkpoint(dir + "/model.bin", c, make_params(c), rkv::kLlmcFp32);
        std::vector<int> succ(kV);
        SplitMix64 rng{kSeed + 1};
        for (int i = 0; i < kV; i++) succ[i] = i;
        for (int i = kV - 1; i > 0; i--) std::swap(succ[i], succ[rng.below(i + 1)]);
        write_shard_v1(dir + "/train.bin", make_tokens(kTrainTokens, succ, kSeed + 2));
        write_shard_v1(dir + "/val.bin", make_tokens(kValTokens, succ, kSeed + 3));
        for (const char* name : {"model.bin", "train.bin", "val.bin"})
            std::printf("%s %s\n", file_hash(dir + "/" + name).c_str(), name);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_fixture: %s\n", e.what());
        return 1;
    }
    return 0;
}
