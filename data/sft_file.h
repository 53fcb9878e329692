// Fine-tuning row files: one example per row, with the tokens that carry loss marked.
//
// A file is a 256 x int32 header, then the rows' tokens, then their loss mask:
//
//   header[0]  magic 20261204 (not an llm.c shard's, so a loader tells the kinds apart)
//   header[1]  version 1
//   header[2]  bytes per token: 2 (uint16) or 4 (uint32, vocabularies above 65536)
//   header[3]  T, tokens per row, in [2, 2^24]: the training sequence length (--seq-len)
//   header[4]  R, rows (>= 0)
//   header[5..255]  0
//   tokens     (R, T) token ids, row-major, of the header's width
//   mask       (R, T) bytes: mask[r][t] = 1 when token t of row r is a target that carries loss,
//              i.e. the model is trained to predict it from positions 0 .. t-1; else 0
//
// All integers are little-endian and the file is exactly 1024 + R*T*(width + 1) bytes. A row
// is one example, [bos] prompt completion [eos] then padding (data/sft_rows.h writes them); its
// mask is 1 on the completion and its eos, 0 on bos, prompt and padding. Every row carries loss
// somewhere, and mask[r][0] = 0: no position predicts the first token.
//
// Training reads a row as the inputs tokens[r][0 .. T) and the targets
//   targets[t] = mask[r][t+1] ? tokens[r][t+1] : -1     for t < T-1,   targets[T-1] = -1,
// and the loss skips targets of -1, so prompt and padding tokens carry none.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/mapped_file.h"
#include "data/shard.h"

namespace rkv {

constexpr int32_t kSftMagic = 20261204;
constexpr int32_t kSftVersion = 1;
constexpr int32_t kSftMaxT = 1 << 24;

// Rows in memory, as written to and read from a file.
struct SftRows {
    int T = 0;
    std::vector<int32_t> tokens;  // (R, T)
    std::vector<uint8_t> mask;    // (R, T) 0 or 1, as in the file
    int64_t rows() const { return T ? int64_t(tokens.size()) / T : 0; }
};

// True when the file starts with the fine-tuning rows magic; false for anything else,
// including a file too short or not readable (the shard reader then says what is wrong).
bool is_sft_file(const std::string& path);

// One row file mapped read-only. Opening checks the header, the size, every mask byte (0 or
// 1, none on position 0, at least one per row) and every token id < vocab_size, so reading
// rows needs no checks. Move-only: it owns the mapping.
class SftFile {
public:
    SftFile(const std::string& path, int vocab_size);

    const std::string& path() const { return file_.path(); }
    int T() const { return T_; }
    int64_t rows() const { return rows_; }
    int64_t loss_tokens() const { return loss_tokens_; }  // mask bytes set, over all rows

    // Row r as the model's inputs (T) and targets (T), -1 where no loss (see above).
    void row(int64_t r, int32_t* inputs, int32_t* targets) const;
    int32_t token(int64_t i) const;  // token i of the (rows * T,) tokens
    const uint8_t* mask() const;     // (rows, T)

private:
    MappedFile file_;
    int width_ = 0;  // bytes per token
    int T_ = 0;
    int64_t rows_ = 0;
    int64_t loss_tokens_ = 0;
};

// All rows of one file, for tools and tests; training reads through DataLoader.
SftRows read_sft_rows(const std::string& path, int vocab_size);

// Writes rows with tokens of `width` bytes (2 or 4). The file appears under its name only once
// complete. Refuses rows the reader would refuse, and token ids that do not fit the width.
void write_sft_rows(const std::string& path, const SftRows& rows, int width);

}  // namespace rkv
