// tokenize_text: text files -> llm.c token shards with the byte-level tokenizer.
//
//   tokenize_text --out DIR [--name text] [--val-frac 0.1] [--shard-tokens N] FILES...
//
// Each file is one document: the stream is, per file in the order given, kDocStart
// (byte 0) then the file's bytes. The last val-frac of that stream becomes the
// validation split, the rest the training split; each split is cut into version 1
// shards of at most shard-tokens tokens: DIR/<name>_train_000000.bin, ...,
// DIR/<name>_val_000000.bin, ... A split with no tokens writes no shards.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "data/shard.h"
#include "data/tokenizer.h"

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    if (!(in && bytes << in.rdbuf())) throw rkv::DataError(fmt::format("{}: cannot read", path));
    return std::move(bytes).str();
}

// Writes text as shards of at most shard_tokens tokens named DIR/<name>_<split>_NNNNNN.bin.
void write_split(const std::string& dir, const std::string& name, const char* split, std::string_view text,
                 int64_t shard_tokens) {
    for (int64_t i = 0; i * shard_tokens < int64_t(text.size()); i++) {
        std::string path = fmt::format("{}/{}_{}_{:06}.bin", dir, name, split, i);
        std::string_view chunk = text.substr(i * shard_tokens, shard_tokens);
        rkv::write_shard(path, rkv::encode_bytes(chunk), 1);
        fmt::print("{}: {} tokens\n", path, chunk.size());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Turn text files into byte-level llm.c token shards (vocab 256)."};
    std::string out_dir, name = "text";
    double val_frac = 0.1;
    int64_t shard_tokens = 100'000'000;
    std::vector<std::string> files;
    app.add_option("--out", out_dir, "output directory (created if missing)")->required();
    app.add_option("--name", name, "shard name prefix")->capture_default_str();
    app.add_option("--val-frac", val_frac, "fraction of the stream, from its end, for validation")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--shard-tokens", shard_tokens, "most tokens per shard")
        ->check(CLI::Range(int64_t(1), int64_t(INT32_MAX)))
        ->capture_default_str();
    app.add_option("files", files, "text files, one document each")->required()->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);

    try {
        std::string stream;
        for (const std::string& path : files) {
            stream += char(rkv::kDocStart);
            stream += read_file(path);
        }
        std::filesystem::create_directories(out_dir);
        auto n_val = int64_t(std::llround(val_frac * double(stream.size())));
        std::string_view all = stream;
        write_split(out_dir, name, "train", all.substr(0, stream.size() - n_val), shard_tokens);
        write_split(out_dir, name, "val", all.substr(stream.size() - n_val), shard_tokens);
    } catch (const std::exception& e) {
        fmt::print(stderr, "tokenize_text: {}\n", e.what());
        return 1;
    }
    return 0;
}
