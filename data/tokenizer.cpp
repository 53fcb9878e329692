// The byte-level tokenizer (see tokenizer.h).
#include "data/tokenizer.h"

#include <stdexcept>

#include <fmt/core.h>

namespace rkv {

std::vector<int32_t> encode_bytes(std::string_view text) {
    std::vector<int32_t> tokens(text.size());
    for (size_t i = 0; i < text.size(); i++) tokens[i] = static_cast<unsigned char>(text[i]);
    return tokens;
}

std::string decode_bytes(std::span<const int32_t> tokens) {
    std::string text(tokens.size(), '\0');
    for (size_t i = 0; i < tokens.size(); i++) {
        if (tokens[i] < 0 || tokens[i] >= kByteVocab)
            throw std::out_of_range(fmt::format("decode_bytes: token {} at position {} is not a byte", tokens[i], i));
        text[i] = static_cast<char>(tokens[i]);
    }
    return text;
}

}  // namespace rkv
