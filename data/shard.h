// llm.c token shards: the on-disk format of every training and validation corpus.
//
// A shard is a 256 x int32 header followed by the tokens:
//   header[0] = magic, header[1] = version, header[2] = token count
//   magic 20240520, version 1: uint16 tokens (GPT-2 and the byte-level tokenizer)
//   magic 20240801, version 7: uint32 tokens (vocabularies above 65536)
// All integers are little-endian, as llm.c writes them.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "data/mapped_file.h"

namespace rkv {

// Every problem with the data on disk: the message names the file and what is wrong.
struct DataError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws DataError("path: what").
template <class... Args>
[[noreturn]] void data_fail(const std::string& path, fmt::format_string<Args...> what, Args&&... args) {
    throw DataError(fmt::format("{}: {}", path, fmt::format(what, std::forward<Args>(args)...)));
}

constexpr int kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * sizeof(int32_t);
constexpr int32_t kShardMagicV1 = 20240520;  // version 1, uint16 tokens
constexpr int32_t kShardMagicV7 = 20240801;  // version 7, uint32 tokens

// One shard mapped read-only into memory. Opening checks the header, that the file
// size is exactly header + count * token size, and that every token id < vocab_size,
// so later reads need no checks. Move-only: it owns the mapping.
class Shard {
public:
    Shard(const std::string& path, int vocab_size);

    const std::string& path() const { return file_.path(); }
    int version() const { return version_; }
    int64_t size() const { return count_; }  // tokens

    // out[0..n) = tokens [start, start + n) of this shard, widened to int32.
    void copy(int64_t start, int64_t n, int32_t* out) const;

private:
    // The (count_,) tokens after the header, in the version's integer type.
    template <class Tok>
    const Tok* tokens() const {
        return reinterpret_cast<const Tok*>(file_.data() + kShardHeaderBytes);
    }

    int version_ = 0;
    int64_t count_ = 0;
    MappedFile file_;  // the whole file: header, then (count_,) tokens
};

// All tokens of one shard, for tools and tests; training reads through DataLoader.
std::vector<int32_t> read_shard(const std::string& path, int vocab_size);

// Writes tokens as a shard of the given version (1: uint16, 7: uint32). The file
// appears under its name only once complete (written to a temporary name, renamed).
void write_shard(const std::string& path, std::span<const int32_t> tokens, int version);

// The files matching a glob(3) pattern, sorted by name; throws if none match.
std::vector<std::string> expand_glob(const std::string& pattern);

}  // namespace rkv
