// Reading, checking and writing fine-tuning row files (format in sft_file.h).
#include "data/sft_file.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "src/file_io.h"

namespace rkv {

static_assert(std::endian::native == std::endian::little, "row files are little-endian");

namespace {

// The first problem of a row's mask, or empty: values 0/1, nothing on position 0, some loss.
std::string mask_problem(const uint8_t* mask, int T) {
    if (mask[0] != 0) return fmt::format("mask byte {} on position 0, which no position predicts", int(mask[0]));
    bool any = false;
    for (int t = 1; t < T; t++) {
        if (mask[t] > 1) return fmt::format("mask byte {} at position {} (must be 0 or 1)", int(mask[t]), t);
        any |= mask[t] == 1;
    }
    return any ? std::string() : "no token carries loss";
}

template <class W>
int32_t load(const char* tokens, int64_t i) {
    W w;
    std::memcpy(&w, tokens + i * int64_t(sizeof(W)), sizeof(W));
    return int32_t(w);
}

template <class W>
void store(std::vector<char>& out, int32_t t) {
    W w = W(t);
    const char* p = reinterpret_cast<const char*>(&w);
    out.insert(out.end(), p, p + sizeof(W));
}

}  // namespace

bool is_sft_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return false;  // the shard reader names what is missing
    try {
        check_regular_file(path);  // opening a FIFO to read its magic would block
    } catch (const std::runtime_error& e) {
        throw DataError(e.what());
    }
    std::ifstream in(path, std::ios::binary);
    int32_t magic = 0;
    return in.read(reinterpret_cast<char*>(&magic), sizeof(magic)) && magic == kSftMagic;
}

SftFile::SftFile(const std::string& path, int vocab_size) : file_(path) {
    const int64_t file_bytes = file_.size();
    if (file_bytes < kShardHeaderBytes)
        data_fail(path, "too short for a row file header: file has {} bytes, the header alone is {}", file_bytes,
                  kShardHeaderBytes);
    int32_t header[kShardHeaderInts];  // (256,)
    std::memcpy(header, file_.data(), sizeof(header));
    if (header[0] != kSftMagic)
        data_fail(path, "bad magic {} (expected {}): not a fine-tuning row file", header[0], kSftMagic);
    if (header[1] != kSftVersion)
        data_fail(path, "unsupported row file version {} (expected {})", header[1], kSftVersion);
    if (header[2] != 2 && header[2] != 4) data_fail(path, "bytes per token {} (expected 2 or 4)", header[2]);
    if (header[3] < 2 || header[3] > kSftMaxT)
        data_fail(path, "row length {} (must be in [2, {}])", header[3], kSftMaxT);
    if (header[4] < 0) data_fail(path, "header says {} rows", header[4]);
    for (int i = 5; i < kShardHeaderInts; i++)
        if (header[i] != 0) data_fail(path, "header int {} is {} (reserved, must be 0)", i, header[i]);
    width_ = header[2];
    T_ = header[3];
    rows_ = header[4];

    // At most 2^31 rows of 2^24 tokens: the byte count below fits in 64 bits.
    const int64_t want_bytes = kShardHeaderBytes + rows_ * T_ * (width_ + 1);
    if (file_bytes != want_bytes)
        data_fail(path,
                  "{}: header says {} rows of {} tokens of {} bytes and their mask ({} bytes) but file has {} "
                  "bytes",
                  file_bytes < want_bytes ? "truncated" : "trailing bytes", rows_, T_, width_, want_bytes, file_bytes);

    for (int64_t r = 0; r < rows_; r++) {
        const uint8_t* m = mask() + r * T_;
        std::string problem = mask_problem(m, T_);
        if (!problem.empty()) data_fail(path, "row {}: {}", r, problem);
        loss_tokens_ += std::count(m, m + T_, uint8_t(1));
    }
    for (int64_t i = 0; i < rows_ * T_; i++) {
        int64_t id = width_ == 2 ? int64_t(load<uint16_t>(file_.data() + kShardHeaderBytes, i))
                                 : int64_t(load<uint32_t>(file_.data() + kShardHeaderBytes, i));
        if (id >= vocab_size)
            data_fail(path, "token id {} at row {} position {} is out of range for vocab size {}", id, i / T_, i % T_,
                      vocab_size);
    }
}

const uint8_t* SftFile::mask() const {
    return reinterpret_cast<const uint8_t*>(file_.data() + kShardHeaderBytes + rows_ * T_ * width_);
}

int32_t SftFile::token(int64_t i) const {
    const char* tokens = file_.data() + kShardHeaderBytes;
    return width_ == 2 ? load<uint16_t>(tokens, i) : load<uint32_t>(tokens, i);
}

void SftFile::row(int64_t r, int32_t* inputs, int32_t* targets) const {
    const uint8_t* m = mask() + r * T_;
    for (int t = 0; t < T_; t++) inputs[t] = token(r * T_ + t);
    for (int t = 0; t + 1 < T_; t++) targets[t] = m[t + 1] ? inputs[t + 1] : -1;
    targets[T_ - 1] = -1;
}

SftRows read_sft_rows(const std::string& path, int vocab_size) {
    SftFile file(path, vocab_size);
    SftRows out;
    out.T = file.T();
    out.tokens.resize(file.rows() * file.T());
    for (int64_t i = 0; i < int64_t(out.tokens.size()); i++) out.tokens[i] = file.token(i);
    const uint8_t* m = file.mask();
    out.mask.assign(m, m + out.tokens.size());
    return out;
}

void write_sft_rows(const std::string& path, const SftRows& rows, int width) {
    if (width != 2 && width != 4) data_fail(path, "cannot write {} bytes per token (2 or 4)", width);
    if (rows.T < 2 || rows.T > kSftMaxT) data_fail(path, "cannot write rows of {} tokens (2 to {})", rows.T, kSftMaxT);
    const int64_t R = rows.rows();
    if (int64_t(rows.tokens.size()) != R * rows.T || rows.mask.size() != rows.tokens.size())
        data_fail(path, "{} tokens and {} mask bytes are not whole rows of {}", rows.tokens.size(), rows.mask.size(),
                  rows.T);
    if (R > std::numeric_limits<int32_t>::max()) data_fail(path, "{} rows do not fit the int32 row count", R);
    const uint32_t max_id = width == 2 ? 0xffffu : uint32_t(std::numeric_limits<int32_t>::max());
    for (int64_t i = 0; i < R * rows.T; i++)
        if (rows.tokens[i] < 0 || uint32_t(rows.tokens[i]) > max_id)
            data_fail(path, "token id {} at row {} position {} does not fit {} bytes", rows.tokens[i], i / rows.T,
                      i % rows.T, width);
    for (int64_t r = 0; r < R; r++) {
        std::string problem = mask_problem(rows.mask.data() + r * rows.T, rows.T);
        if (!problem.empty()) data_fail(path, "row {}: {}", r, problem);
    }

    int32_t header[kShardHeaderInts] = {kSftMagic, kSftVersion, width, rows.T, int32_t(R)};  // (256,)
    std::vector<char> tokens;                                                                // (R, T) of the width
    tokens.reserve(R * rows.T * width);
    for (int32_t t : rows.tokens) width == 2 ? store<uint16_t>(tokens, t) : store<uint32_t>(tokens, t);
    // Durable before visible: a reader never sees a half-written file.
    AtomicFile f(path);
    f.write(header, sizeof(header));
    f.write(tokens.data(), tokens.size());
    f.write(rows.mask.data(), rows.mask.size());
    f.commit();
}

}  // namespace rkv
