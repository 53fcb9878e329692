// Hugging Face tokenizer.json files in C++: the BPE tokenizers of the models rkv fine-tunes.
//
//   byte-level BPE (GPT-2, Llama 3, Qwen2/3): Split pre-tokenizers (PCRE2 regexes with Unicode
//     classes), ByteLevel (GPT-2's regex, the byte -> character map), merges by rank, the ByteLevel
//     decoder;
//   SentencePiece-style BPE with byte fallback (Llama 2, Mistral): the Prepend/Replace normalizers or
//     the Metaspace pre-tokenizer, <0xNN> byte tokens, unk, the Replace/ByteFallback/Fuse/Strip or
//     Metaspace decoders;
//   added tokens matched before splitting with their flags (single_word, lstrip, rstrip, normalized,
//     special), the post-processor's special tokens (TemplateProcessing) when asked for.
//
// encode and decode give the ids and text of the `tokenizers` package (tests/unit/test_tokenizer.cpp
// compares them on fixtures that package wrote, scripts/make_tokenizer_fixtures.py). Any model,
// normalizer, pre-tokenizer, post-processor or decoder of another kind is refused by name.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rkv {

class HfTokenizer {
public:
    // Reads tokenizer.json; throws DataError naming the file and what is wrong or unsupported.
    explicit HfTokenizer(const std::string& path);
    ~HfTokenizer();
    HfTokenizer(HfTokenizer&&) noexcept;
    HfTokenizer& operator=(HfTokenizer&&) noexcept;

    // The ids of text; with add_special_tokens, the post-processor's tokens around them (BOS).
    // Bytes that are not UTF-8 are read as U+FFFD, as Python's errors="replace" does. Thread-safe:
    // each thread keeps its own cache of encoded words.
    std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
    void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;  // appends

    // The text of ids through the decoder chain; ids outside the vocabulary are skipped, as the
    // reference does. skip_special_tokens leaves out the added tokens marked special.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

    int vocab_size() const;                                         // largest id + 1
    std::optional<int32_t> token_id(std::string_view token) const;  // added tokens, then the model's
    std::string token(int32_t id) const;                            // "" outside the vocabulary
    bool is_special(int32_t id) const;
    std::span<const int32_t> prefix_ids() const;  // what add_special_tokens puts before the text (BOS)
    std::span<const int32_t> suffix_ids() const;  // and after it
    const std::string& path() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Text of a growing sequence of ids as it grows (generation): push returns the new text once it is
// complete, "" while the last ids end inside a character (the decoder gives U+FFFD there). The
// pieces add up to decode(all ids) for the decoders here, which decode a window of recent ids.
class DecodeStream {
public:
    DecodeStream(const HfTokenizer& tokenizer, bool skip_special_tokens);
    std::string push(int32_t id);
    std::string flush();  // the text push held back (ids ending inside a character: U+FFFD)

private:
    const HfTokenizer& tok_;
    bool skip_;
    std::vector<int32_t> ids_;  // the window: ids before prefix_index_ are decoded already
    std::string prefix_;        // decode of ids_[0, prefix_index_)
    size_t prefix_index_ = 0;
};

}  // namespace rkv
