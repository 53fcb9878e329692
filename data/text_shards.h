// Documents -> llm.c token shards with a Hugging Face tokenizer (what ./tokenize_text runs).
//
// The token stream is, per document in the order given: the document start (the tokenizer's BOS),
// the document's ids, the document end (none unless asked). Documents are encoded on threads in
// chunks; the stream's order is the documents' whatever the threads. The validation split is the
// first val_tokens tokens of the stream, or its last val_frac; each split is cut into shards of at
// most shard_tokens: DIR/<name>_val_000000.bin, ..., DIR/<name>_train_000000.bin, ...; version 1
// (uint16) when every id fits (vocabulary <= 65536), else version 7 (uint32).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/hf_tokenizer.h"

namespace rkv {

// The tokens around each document.
struct DocumentTokens {
    std::vector<int32_t> start, end;
};

// The model's document start: the post-processor's prefix (Llama 3 <|begin_of_text|>, Llama 2 and
// Mistral <s>); without one, tokenizer_config.json's bos_token next to the tokenizer file (GPT-2:
// <|endoftext|>, as llm.c starts every document), else <|endoftext|> when the vocabulary has it
// (Qwen). start_token / end_token name tokens instead ("" keeps the default; end: none).
// Throws DataError when no start can be found or a named token does not exist.
DocumentTokens document_tokens(const HfTokenizer& tok, const std::string& start_token = "",
                               const std::string& end_token = "");

// The token that ends a text the model writes (a fine-tuning completion): end_token when given,
// else tokenizer_config.json's eos_token next to the tokenizer file, else <|endoftext|>.
int32_t end_of_text(const HfTokenizer& tok, const std::string& end_token = "");

// progress(bytes done, tokens done) is called from the calling thread now and then.
using Progress = std::function<void(int64_t, int64_t)>;

// All documents' tokens in order, encoded by `threads` threads (0: all cores).
std::vector<int32_t> encode_documents(const HfTokenizer& tok, const std::vector<std::string_view>& docs,
                                      const DocumentTokens& around, int threads, const Progress& progress = {});

// Ids of each text without special tokens, on `threads` threads (tokenize_text --ids).
std::vector<std::vector<int32_t>> encode_lines(const HfTokenizer& tok, const std::vector<std::string_view>& lines,
                                               int threads);

struct SplitOptions {
    std::string dir, name = "text";
    double val_frac = 0.1;
    int64_t val_tokens = -1;  // >= 0: the first val_tokens tokens instead of the last val_frac
    int64_t shard_tokens = 100'000'000;
};

struct ShardFiles {
    std::vector<std::string> train, val;  // paths in order
    int64_t train_tokens = 0, val_tokens = 0;
    int version = 1;
};

// Writes the stream as validation and training shards (vocab_size picks the version).
ShardFiles write_splits(const std::vector<int32_t>& tokens, int vocab_size, const SplitOptions& o);

// Whether shards may go to dir: not inside the source tree source_dir, but under its runs/ (which git
// ignores). Paths are compared resolved (symbolic links, "..").
bool out_dir_allowed(const std::string& dir, const std::string& source_dir);

// The shard version whose token type holds every id below vocab_size.
inline int shard_version(int vocab_size) { return vocab_size <= 65536 ? 1 : 7; }

}  // namespace rkv
