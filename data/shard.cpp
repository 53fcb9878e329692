// Reading, checking and writing llm.c token shards (format in shard.h).
#include "data/shard.h"

#include <glob.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <limits>
#include <utility>

#include <fmt/core.h>

#include "src/file_io.h"

namespace rkv {

// The header and tokens are read in place, so the host must share llm.c's byte order.
static_assert(std::endian::native == std::endian::little, "shards are little-endian");

namespace {

int64_t token_bytes(int version) { return version == 1 ? 2 : 4; }

// First token >= vocab_size, or -1. One pass over the mapping at open time.
template <class Tok>
int64_t first_out_of_range(const Tok* tokens, int64_t n, int vocab_size) {
    for (int64_t i = 0; i < n; i++)
        if (int64_t(tokens[i]) >= vocab_size) return i;
    return -1;
}

}  // namespace

Shard::Shard(const std::string& path, int vocab_size) : file_(path) {
    int64_t file_bytes = file_.size();
    if (file_bytes < kShardHeaderBytes)
        data_fail(path, "too short for a shard header: file has {} bytes, the header alone is {}", file_bytes,
                  kShardHeaderBytes);

    const int32_t* header = reinterpret_cast<const int32_t*>(file_.data());  // (256,)
    int32_t magic = header[0], version = header[1], count = header[2];
    if (magic != kShardMagicV1 && magic != kShardMagicV7)
        data_fail(path, "bad magic {} (expected {} or {}): not an llm.c token shard", magic, kShardMagicV1,
                  kShardMagicV7);
    int expected_version = magic == kShardMagicV1 ? 1 : 7;
    if (version != expected_version)
        data_fail(path, "unsupported version {} for magic {} (expected {})", version, magic, expected_version);
    if (count < 0) data_fail(path, "header says {} tokens", count);
    int64_t want_bytes = kShardHeaderBytes + int64_t(count) * token_bytes(version);
    if (file_bytes != want_bytes)
        data_fail(path, "{}: header says {} tokens ({} bytes) but file has {} bytes",
                  file_bytes < want_bytes ? "truncated" : "trailing bytes", count, want_bytes, file_bytes);
    version_ = version;
    count_ = count;

    int64_t bad = version == 1 ? first_out_of_range(tokens<uint16_t>(), count_, vocab_size)
                               : first_out_of_range(tokens<uint32_t>(), count_, vocab_size);
    if (bad >= 0) {
        int64_t id = version == 1 ? tokens<uint16_t>()[bad] : tokens<uint32_t>()[bad];
        data_fail(path, "token id {} at position {} is out of range for vocab size {}", id, bad, vocab_size);
    }
}

void Shard::copy(int64_t start, int64_t n, int32_t* out) const {
    if (version_ == 1)
        std::copy_n(tokens<uint16_t>() + start, n, out);
    else
        std::copy_n(tokens<uint32_t>() + start, n, out);
}

std::vector<int32_t> read_shard(const std::string& path, int vocab_size) {
    Shard shard(path, vocab_size);
    std::vector<int32_t> tokens(shard.size());  // (count,)
    shard.copy(0, shard.size(), tokens.data());
    return tokens;
}

namespace {

// Narrows tokens to the shard's integer type, checking that each one fits.
template <class Tok>
std::vector<Tok> narrow_tokens(const std::string& path, std::span<const int32_t> tokens, int version) {
    std::vector<Tok> out(tokens.size());  // (count,)
    for (size_t i = 0; i < tokens.size(); i++) {
        int32_t t = tokens[i];
        if (t < 0 || uint64_t(t) > uint64_t(std::numeric_limits<Tok>::max()))
            data_fail(path, "token id {} at position {} does not fit a version {} shard", t, i, version);
        out[i] = Tok(t);
    }
    return out;
}

}  // namespace

void write_shard(const std::string& path, std::span<const int32_t> tokens, int version) {
    if (version != 1 && version != 7) data_fail(path, "cannot write shard version {}", version);
    if (tokens.size() > size_t(std::numeric_limits<int32_t>::max()))
        data_fail(path, "{} tokens do not fit one shard's int32 count", tokens.size());

    int32_t header[kShardHeaderInts] = {};  // (256,)
    header[0] = version == 1 ? kShardMagicV1 : kShardMagicV7;
    header[1] = version;
    header[2] = int32_t(tokens.size());

    // Durable before visible: a reader never sees a half-written shard.
    AtomicFile f(path);
    f.write(header, sizeof(header));
    if (version == 1) {
        auto narrow = narrow_tokens<uint16_t>(path, tokens, version);
        f.write(narrow.data(), narrow.size() * sizeof(uint16_t));
    } else {
        auto narrow = narrow_tokens<uint32_t>(path, tokens, version);
        f.write(narrow.data(), narrow.size() * sizeof(uint32_t));
    }
    f.commit();
}

std::vector<std::string> expand_glob(const std::string& pattern) {
    glob_t g;
    int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    std::vector<std::string> files(g.gl_pathv, g.gl_pathv + (rc == 0 ? g.gl_pathc : 0));
    ::globfree(&g);
    if (rc == GLOB_NOMATCH) {
        // A plain path that does not exist gets the reader's clearer "cannot open" message.
        if (pattern.find_first_of("*?[") == std::string::npos) return {pattern};
        data_fail(pattern, "no files match this pattern");
    }
    if (rc != 0) data_fail(pattern, "glob failed ({})", rc == GLOB_NOSPACE ? "out of memory" : "read error");
    std::sort(files.begin(), files.end());  // byte order, whatever the locale
    return files;
}

}  // namespace rkv
