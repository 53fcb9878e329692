// The built-in byte-level tokenizer: token i is byte i, so the vocabulary is 256 and
// every text, in any encoding, round-trips exactly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rkv {

constexpr int kByteVocab = 256;

// Starts every document in byte-level shards (the built-in corpus, tokenize_text),
// as <|endoftext|> does in llm.c's GPT-2 shards. NUL does not occur in text files.
constexpr int32_t kDocStart = 0;

std::vector<int32_t> encode_bytes(std::string_view text);  // (text.size(),)

// Throws std::out_of_range for a token outside [0, 256).
std::string decode_bytes(std::span<const int32_t> tokens);

}  // namespace rkv
