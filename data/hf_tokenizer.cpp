// Hugging Face tokenizer.json in C++ (see hf_tokenizer.h). Encoding runs the reference's steps in
// its order: added tokens that are not normalized are cut out of the raw text; each remaining
// segment is normalized and cut at the normalized added tokens; the pre-tokenizers split segments
// into pieces; the BPE model turns each piece into ids.
//
// The BPE runs on "model bytes": for byte-level models the raw bytes of a piece (the vocabulary's
// strings are mapped back through ByteLevel's byte -> character table once, at load), otherwise
// the piece's UTF-8. A piece starts as one symbol per byte (byte-level) or per character, then the
// lowest-ranked mergeable pair is merged until none is left, as the reference's Word::merge_all.
#include "data/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "data/shard.h"

namespace rkv {

using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// UTF-8

int utf8_len(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// The length of the UTF-8 character at p (n > 0 bytes left), or -k when the bytes there are not
// one: k is the length of the maximal invalid subpart, which one U+FFFD replaces (Rust's
// String::from_utf8_lossy, the Unicode "substitution of maximal subparts" practice).
int utf8_char(const unsigned char* p, size_t n) {
    const unsigned char c = p[0];
    if (c < 0x80) return 1;
    int need = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return -1;
    int got = 0;
    while (got < need && size_t(got) + 1 < n) {
        const unsigned char b = p[got + 1];
        if (got == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
        got++;
    }
    return got == need ? need + 1 : -(got + 1);
}

// Appends bytes, each maximal invalid subpart replaced by U+FFFD.
void append_lossy_utf8(std::string& out, std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i < s.size();) {
        const int len = utf8_char(p + i, s.size() - i);
        if (len > 0)
            out.append(s.data() + i, size_t(len));
        else
            out += "\xEF\xBF\xBD";
        i += size_t(len > 0 ? len : -len);
    }
}

bool valid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i < s.size();) {
        const int len = utf8_char(p + i, s.size() - i);
        if (len < 0) return false;
        i += size_t(len);
    }
    return true;
}

// The code point at s[i] (valid UTF-8) and its length.
uint32_t decode_utf8(std::string_view s, size_t i, int* len) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
    *len = utf8_len(p[0]);
    switch (*len) {
        case 1: return p[0];
        case 2: return (uint32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        case 3: return (uint32_t(p[0] & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        default:
            return (uint32_t(p[0] & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) | (uint32_t(p[2] & 0x3F) << 6) |
                   (p[3] & 0x3F);
    }
}

// GPT-2's byte -> character map (ByteLevel): printable bytes map to themselves, the others to
// U+0100 and up, in byte order.
std::array<uint32_t, 256> byte_level_chars() {
    std::array<uint32_t, 256> chars{};
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        chars[b] = printable ? uint32_t(b) : next++;
    }
    return chars;
}

// ---------------------------------------------------------------------------------------------
// PCRE2: UTF + UCP (\p{L}, \s, \w over Unicode), JIT-compiled when the platform has it.

struct Regex {
    pcre2_code* code = nullptr;
    bool jit = false;

    Regex() = default;
    Regex(const std::string& file, const std::string& pattern, bool literal) {
        int err = 0;
        PCRE2_SIZE offset = 0;
        const uint32_t flags = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // the pattern is checked
        code =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &err, &offset, nullptr);
        if (!code) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(err, message, sizeof message);
            throw DataError(fmt::format("{}: the regex '{}' is not supported (PCRE2, at offset {}: {})", file, pattern,
                                        offset, reinterpret_cast<const char*>(message)));
        }
        jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    ~Regex() { pcre2_code_free(code); }

    // The first match in s at or after start: {begin, end}, or {npos, npos}.
    std::pair<size_t, size_t> find(std::string_view s, size_t start) const {
        // Per thread: the match data and a JIT stack larger than the default 32 KB, which a look-ahead
        // over a long run of spaces (\s+(?!\S)) can exhaust.
        struct PerThread {
            pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
            pcre2_jit_stack* stack = pcre2_jit_stack_create(32 << 10, 64 << 20, nullptr);
            pcre2_match_context* context = pcre2_match_context_create(nullptr);
            PerThread() { pcre2_jit_stack_assign(context, nullptr, stack); }
            ~PerThread() {
                pcre2_match_context_free(context);
                pcre2_jit_stack_free(stack);
                pcre2_match_data_free(data);
            }
        };
        thread_local PerThread t;
        const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
        const int rc = jit ? pcre2_jit_match(code, subject, s.size(), start, 0, t.data, t.context)
                           : pcre2_match(code, subject, s.size(), start, PCRE2_NO_UTF_CHECK, t.data, t.context);
        if (rc == PCRE2_ERROR_NOMATCH) return {std::string_view::npos, std::string_view::npos};
        if (rc < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            throw DataError(fmt::format("regex match failed: {}", reinterpret_cast<const char*>(message)));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(t.data);
        return {ov[0], ov[1]};
    }

    // Calls f(begin, end, is_match) for the spans of s in order, matches and the text between them.
    // An empty match splits nothing (the search moves on by one character).
    template <class F>
    void spans(std::string_view s, F&& f) const {
        size_t pos = 0, last = 0;
        while (pos <= s.size()) {
            auto [b, e] = find(s, pos);
            if (b == std::string_view::npos) break;
            if (e == b) {
                if (b >= s.size()) break;
                pos = b + utf8_len(static_cast<unsigned char>(s[b]));
                continue;
            }
            if (b > last) f(last, b, false);
            f(b, e, true);
            last = pos = e;
        }
        if (last < s.size()) f(last, s.size(), false);
    }
};

// A "pattern" field: {"String": "..."} (literal) or {"Regex": "..."}.
std::unique_ptr<Regex> pattern_regex(const std::string& file, const json& pattern) {
    if (pattern.contains("String")) return std::make_unique<Regex>(file, pattern.at("String").get<std::string>(), true);
    if (pattern.contains("Regex")) return std::make_unique<Regex>(file, pattern.at("Regex").get<std::string>(), false);
    throw DataError(fmt::format("{}: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", file,
                                pattern.dump().substr(0, 200)));
}

std::string replace_all(const Regex& re, std::string_view s, std::string_view content) {
    std::string out;
    out.reserve(s.size());
    re.spans(s, [&](size_t b, size_t e, bool match) {
        if (match)
            out += content;
        else
            out.append(s.substr(b, e - b));
    });
    return out;
}

// ---------------------------------------------------------------------------------------------
// Hash map from a merge pair (left id, right id) to (rank, merged id): open addressing.

class MergeMap {
public:
    void build(const std::vector<std::array<int32_t, 4>>& merges) {  // (left, right, rank, merged)
        size_t cap = 16;
        while (cap < merges.size() * 2) cap *= 2;
        keys_.assign(cap, kEmpty);
        values_.assign(cap, {});
        mask_ = cap - 1;
        for (const auto& m : merges) {
            const uint64_t key = pack(m[0], m[1]);
            size_t i = hash(key) & mask_;
            while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
            if (keys_[i] == key) continue;  // a repeated merge keeps its first (lowest) rank
            keys_[i] = key;
            values_[i] = {m[2], m[3]};
        }
    }
    // {rank, merged id} or nullptr.
    const std::pair<int32_t, int32_t>* find(int32_t a, int32_t b) const {
        if (keys_.empty()) return nullptr;
        const uint64_t key = pack(a, b);
        for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            if (keys_[i] == key) return &values_[i];
            if (keys_[i] == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
    static uint64_t hash(uint64_t k) {
        k ^= k >> 33, k *= 0xff51afd7ed558ccdULL, k ^= k >> 33;
        return k;
    }
    std::vector<uint64_t> keys_;
    std::vector<std::pair<int32_t, int32_t>> values_;
    size_t mask_ = 0;
};

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// ---------------------------------------------------------------------------------------------
// The pipeline's steps.

struct Piece {
    std::string_view text;
    bool at_start;  // begins at offset 0 of the input (Metaspace's prepend_scheme "first")
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Normalizer {
    enum Kind { Prepend, Replace, Unicode } kind = Prepend;
    std::string text{};                // Prepend: what is prepended; Replace: the content
    std::shared_ptr<Regex> pattern{};  // Replace
    const UNormalizer2* unicode = nullptr;
};

struct PreTokenizer {
    enum Kind { Split, ByteLevel, Metaspace } kind = Split;
    std::shared_ptr<Regex> pattern{};  // Split; ByteLevel with use_regex: GPT-2's
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement{};      // Metaspace
    enum Scheme { Always, First, Never } scheme = Always;
    bool split = true;
};

struct Decoder {
    enum Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind = ByteLevel;
    std::shared_ptr<Regex> pattern{};  // Replace
    std::string content{};             // Replace: the content; Strip, Metaspace: the character
    uint32_t ch = 0;                   // Strip, Metaspace: the character as a code point
    int start = 0, stop = 0;           // Strip
    bool prepend = true;               // Metaspace: prepend_scheme is not "never"
};

struct AddedToken {
    std::string content;  // as matched: the content, normalized for normalized tokens
    int32_t id;
    bool single_word, lstrip, rstrip, special;
};

// Leftmost-longest matching of a set of strings (the reference's Aho-Corasick, LeftmostLongest).
struct AddedMatcher {
    std::vector<AddedToken> tokens;                   // longest first
    std::array<std::vector<int>, 256> by_first_byte;  // indices into tokens, longest first

    void build() {
        std::stable_sort(tokens.begin(), tokens.end(),
                         [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
        for (int i = 0; i < int(tokens.size()); i++)
            by_first_byte[static_cast<unsigned char>(tokens[i].content[0])].push_back(i);  // never empty
    }
    bool empty() const { return tokens.empty(); }
    // The longest token at s[pos], or -1.
    int match_at(std::string_view s, size_t pos) const {
        for (int i : by_first_byte[static_cast<unsigned char>(s[pos])])
            if (s.compare(pos, tokens[i].content.size(), tokens[i].content) == 0) return i;
        return -1;
    }
};

// Whether the character starting at s[i] is a word character (\w, Unicode), for single_word.
bool word_char_at(std::string_view s, size_t i) {
    static const Regex word("", "^\\w", false);
    const size_t len = std::min<size_t>(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    return word.find(s.substr(i, len), 0).first != std::string_view::npos;
}
bool is_space(uint32_t cp) {  // Unicode White_Space, as the reference's \s
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

// A string of exactly one character: its code point.
uint32_t single_char(const std::string& file, const std::string& what, const std::string& s) {
    int len = 0;
    if (s.empty() || !valid_utf8(s) || (decode_utf8(s, 0, &len), size_t(len) != s.size()))
        throw DataError(fmt::format("{}: {} must be one character, got '{}'", file, what, s));
    return decode_utf8(s, 0, &len);
}

std::atomic<uint64_t> next_serial{1};

constexpr int kMaxNesting = 32;  // Sequence steps inside Sequences: a hostile file must not exhaust the stack

}  // namespace

// ---------------------------------------------------------------------------------------------

struct HfTokenizer::Impl {
    std::string path;
    uint64_t serial = next_serial++;  // identifies this tokenizer's entries in the thread caches

    // The model (BPE).
    std::vector<std::string> id_to_token;  // (vocab_size,): "" where no token has the id
    StringMap vocab;                       // the model's tokens as written in the file
    StringMap model_vocab;                 // the same in model bytes (raw bytes for byte-level)
    MergeMap merges;
    bool byte_level = false;                // model bytes are raw bytes (a ByteLevel pre-tokenizer)
    std::array<int32_t, 256> byte_token{};  // byte-level: the id of each single byte, -1 if none
    std::array<int32_t, 256> fallback{};    // byte_fallback: the id of <0xNN>, -1 if none
    bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
    int32_t unk = -1;

    std::vector<Normalizer> normalizers;
    std::vector<PreTokenizer> pre_tokenizers;
    std::vector<Decoder> decoders;
    bool has_decoder = false;
    std::vector<int32_t> prefix, suffix;  // the post-processor's tokens around a sequence

    AddedMatcher raw_added, normalized_added;  // not normalized: matched on the raw text; normalized
    struct Added {
        std::string content, decoded;  // decoded: what the decoder gets, normalized for normalized tokens
        bool special;
    };
    std::unordered_map<int32_t, Added> added_by_id;

    [[noreturn]] void fail(const std::string& what) const { throw DataError(fmt::format("{}: {}", path, what)); }

    void load(const json& j);
    void load_model(const json& m);
    void load_normalizer(const json& n, int depth = 0);
    void load_pre_tokenizer(const json& p, int depth = 0);
    void load_post_processor(const json& p, int depth = 0);
    void load_decoder(const json& d, int depth = 0);
    void load_added(const json& added);

    std::string normalize(std::string_view s) const;
    void pre_tokenize(std::string_view segment, bool at_start, std::deque<std::string>& arena,
                      std::vector<Piece>& pieces) const;
    void bpe(std::string_view piece, std::vector<int32_t>& out) const;
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
    void encode_segment(std::string_view segment, bool at_start, std::vector<int32_t>& out) const;
    void split_added(const AddedMatcher& m, std::string_view s,
                     const std::function<void(std::string_view, size_t, int32_t)>& f) const;
    std::string decode(std::span<const int32_t> ids, bool skip_special) const;
};

// ---------------------------------------------------------------------------------------------
// Loading

void HfTokenizer::Impl::load(const json& j) {
    if (!j.is_object()) fail("not a tokenizer.json: the top level is not an object");
    if (j.contains("truncation") && !j["truncation"].is_null()) fail("truncation is set: not supported (remove it)");
    if (j.contains("padding") && !j["padding"].is_null()) fail("padding is set: not supported (remove it)");
    if (!j.contains("model")) fail("no \"model\"");
    load_model(j.at("model"));
    if (j.contains("normalizer")) load_normalizer(j["normalizer"]);
    if (j.contains("pre_tokenizer")) load_pre_tokenizer(j["pre_tokenizer"]);
    for (size_t i = 0; i + 1 < pre_tokenizers.size(); i++)
        if (pre_tokenizers[i].kind == PreTokenizer::ByteLevel)
            fail("a ByteLevel pre-tokenizer before another pre-tokenizer is not supported");
    byte_level = !pre_tokenizers.empty() && pre_tokenizers.back().kind == PreTokenizer::ByteLevel;
    if (byte_level && byte_fallback) fail("byte_fallback with a ByteLevel pre-tokenizer is not supported");

    // Model bytes: byte-level tokens mapped back to raw bytes (a token with another character can
    // never be produced from bytes, so it has no entry).
    if (byte_level) {
        std::unordered_map<uint32_t, unsigned char> to_byte;
        const auto chars = byte_level_chars();
        for (int b = 0; b < 256; b++) to_byte[chars[b]] = static_cast<unsigned char>(b);
        for (const auto& [token, id] : vocab) {
            std::string raw;
            bool ok = true;
            for (size_t i = 0; i < token.size() && ok;) {
                int len = 0;
                const auto it = to_byte.find(decode_utf8(token, i, &len));
                ok = it != to_byte.end();
                if (ok) raw += char(it->second);
                i += len;
            }
            if (ok) model_vocab.emplace(std::move(raw), id);
        }
    } else {
        model_vocab = vocab;
    }
    byte_token.fill(-1);
    for (int b = 0; b < 256; b++) {
        const auto it = model_vocab.find(std::string(1, char(b)));
        if (byte_level && it != model_vocab.end()) byte_token[b] = it->second;
    }

    if (j.contains("added_tokens")) load_added(j["added_tokens"]);
    if (j.contains("post_processor")) load_post_processor(j["post_processor"]);
    if (j.contains("decoder")) load_decoder(j["decoder"]);
    for (const auto* ids : {&prefix, &suffix})
        for (int32_t id : *ids)
            if (id < 0 || size_t(id) >= id_to_token.size())
                fail(fmt::format("the post-processor adds the id {}, outside the vocabulary of {}", id,
                                 id_to_token.size()));
}

void HfTokenizer::Impl::load_model(const json& m) {
    const std::string type = m.value("type", m.contains("merges") ? "BPE" : "");
    if (type != "BPE") fail(fmt::format("model type '{}' is not supported (only BPE)", type));
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
        fail("BPE dropout is not supported");
    for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (m.contains(field) && !m[field].is_null() && !m[field].get<std::string>().empty())
            fail(fmt::format("BPE {} is not supported", field));
    byte_fallback = m.value("byte_fallback", false);
    fuse_unk = m.value("fuse_unk", false);
    ignore_merges = m.value("ignore_merges", false);

    const json& v = m.at("vocab");
    if (!v.is_object()) fail("model.vocab is not an object");
    int32_t max_id = -1;
    for (const auto& [token, id_json] : v.items()) {
        const int64_t id = id_json.get<int64_t>();
        if (id < 0 || id >= (int64_t(1) << 30)) fail(fmt::format("token '{}' has the id {}", token, id));
        vocab[token] = int32_t(id);
        max_id = std::max(max_id, int32_t(id));
    }
    id_to_token.assign(size_t(max_id + 1), "");
    for (const auto& [token, id] : vocab) id_to_token[size_t(id)] = token;

    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
        const std::string name = m["unk_token"].get<std::string>();
        const auto it = vocab.find(name);
        if (it == vocab.end()) fail(fmt::format("the unk_token '{}' is not in the vocabulary", name));
        unk = it->second;
    }
    fallback.fill(-1);
    if (byte_fallback)
        for (int b = 0; b < 256; b++) {
            const auto it = vocab.find(fmt::format("<0x{:02X}>", b));
            if (it != vocab.end()) fallback[b] = it->second;
        }

    // Merges: "a b" (one space) or [a, b]; rank = position in the list.
    std::vector<std::array<int32_t, 4>> table;
    const json& ms = m.at("merges");
    if (!ms.is_array()) fail("model.merges is not a list");
    table.reserve(ms.size());
    for (size_t rank = 0; rank < ms.size(); rank++) {
        std::string a, b;
        if (ms[rank].is_string()) {
            const std::string s = ms[rank].get<std::string>();
            const size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                fail(fmt::format("merge {} ('{}') is not two tokens separated by one space", rank, s));
            a = s.substr(0, space), b = s.substr(space + 1);
        } else if (ms[rank].is_array() && ms[rank].size() == 2) {
            a = ms[rank][0].get<std::string>(), b = ms[rank][1].get<std::string>();
        } else {
            fail(fmt::format("merge {} is neither \"a b\" nor [a, b]", rank));
        }
        const auto ia = vocab.find(a), ib = vocab.find(b), ir = vocab.find(a + b);
        if (ia == vocab.end() || ib == vocab.end() || ir == vocab.end())
            fail(fmt::format("merge {} ('{}' '{}') names a token not in the vocabulary", rank, a, b));
        table.push_back({ia->second, ib->second, int32_t(rank), ir->second});
    }
    merges.build(table);
}

void HfTokenizer::Impl::load_normalizer(const json& n, int depth) {
    if (n.is_null()) return;
    if (depth > kMaxNesting) fail("Sequences nested too deeply");
    const std::string type = n.value("type", "");
    if (type == "Sequence") {
        for (const json& s : n.at("normalizers")) load_normalizer(s, depth + 1);
    } else if (type == "Prepend") {
        normalizers.push_back({.kind = Normalizer::Prepend, .text = n.at("prepend").get<std::string>()});
    } else if (type == "Replace") {
        normalizers.push_back({.kind = Normalizer::Replace,
                               .text = n.at("content").get<std::string>(),
                               .pattern = pattern_regex(path, n.at("pattern"))});
    } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
        UErrorCode err = U_ZERO_ERROR;
        const UNormalizer2* u = type == "NFC"    ? unorm2_getNFCInstance(&err)
                                : type == "NFKC" ? unorm2_getNFKCInstance(&err)
                                : type == "NFD"  ? unorm2_getNFDInstance(&err)
                                                 : unorm2_getNFKDInstance(&err);
        if (U_FAILURE(err)) fail(fmt::format("ICU has no {} normalizer: {}", type, u_errorName(err)));
        normalizers.push_back({.kind = Normalizer::Unicode, .text = type, .unicode = u});
    } else {
        fail(fmt::format("normalizer type '{}' is not supported", type));
    }
}

void HfTokenizer::Impl::load_pre_tokenizer(const json& p, int depth) {
    if (p.is_null()) return;
    if (depth > kMaxNesting) fail("Sequences nested too deeply");
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
        for (const json& s : p.at("pretokenizers")) load_pre_tokenizer(s, depth + 1);
    } else if (type == "Split") {
        PreTokenizer t;
        t.kind = PreTokenizer::Split;
        t.pattern = pattern_regex(path, p.at("pattern"));
        const std::string b = p.value("behavior", "Isolated");
        static const std::unordered_map<std::string, Behavior> behaviors{
            {"Removed", Behavior::Removed},
            {"Isolated", Behavior::Isolated},
            {"MergedWithPrevious", Behavior::MergedWithPrevious},
            {"MergedWithNext", Behavior::MergedWithNext},
            {"Contiguous", Behavior::Contiguous}};
        if (!behaviors.contains(b)) fail(fmt::format("Split behavior '{}' is not supported", b));
        t.behavior = behaviors.at(b);
        t.invert = p.value("invert", false);
        pre_tokenizers.push_back(std::move(t));
    } else if (type == "ByteLevel") {
        PreTokenizer t;
        t.kind = PreTokenizer::ByteLevel;
        t.add_prefix_space = p.value("add_prefix_space", true);
        if (p.value("use_regex", true))
            t.pattern = std::make_shared<Regex>(
                path, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", false);
        pre_tokenizers.push_back(std::move(t));
    } else if (type == "Metaspace") {
        PreTokenizer t;
        t.kind = PreTokenizer::Metaspace;
        t.replacement = p.value("replacement", std::string("\u2581"));
        single_char(path, "Metaspace's replacement", t.replacement);
        const std::string scheme = p.contains("prepend_scheme")        ? p["prepend_scheme"].get<std::string>()
                                   : p.value("add_prefix_space", true) ? "always"
                                                                       : "never";
        if (scheme == "always")
            t.scheme = PreTokenizer::Always;
        else if (scheme == "first")
            t.scheme = PreTokenizer::First;
        else if (scheme == "never")
            t.scheme = PreTokenizer::Never;
        else
            fail(fmt::format("Metaspace prepend_scheme '{}' is not supported", scheme));
        t.split = p.value("split", true);
        pre_tokenizers.push_back(std::move(t));
    } else {
        fail(fmt::format("pre-tokenizer type '{}' is not supported", type));
    }
}

void HfTokenizer::Impl::load_post_processor(const json& p, int depth) {
    if (p.is_null()) return;
    if (depth > kMaxNesting) fail("Sequences nested too deeply");
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
        for (const json& s : p.at("processors")) load_post_processor(s, depth + 1);
    } else if (type == "ByteLevel") {
        // Offsets only: the ids are unchanged.
    } else if (type == "TemplateProcessing") {
        if (!prefix.empty() || !suffix.empty()) fail("two TemplateProcessing post-processors");
        const json& specials = p.at("special_tokens");
        bool after = false, seen = false;
        for (const json& piece : p.at("single")) {
            if (piece.contains("Sequence")) {
                if (seen) fail("TemplateProcessing's single template names the sequence twice");
                seen = after = true;
            } else if (piece.contains("SpecialToken")) {
                const std::string name = piece["SpecialToken"].at("id").get<std::string>();
                if (!specials.contains(name)) fail(fmt::format("TemplateProcessing names an unknown token '{}'", name));
                for (const json& id : specials[name].at("ids")) (after ? suffix : prefix).push_back(id.get<int32_t>());
            } else {
                fail(fmt::format("TemplateProcessing piece {} is not supported", piece.dump().substr(0, 100)));
            }
        }
        if (!seen) fail("TemplateProcessing's single template has no $A");
    } else {
        fail(fmt::format("post-processor type '{}' is not supported", type));
    }
}

void HfTokenizer::Impl::load_decoder(const json& d, int depth) {
    if (d.is_null()) return;
    if (depth > kMaxNesting) fail("Sequences nested too deeply");
    has_decoder = true;
    const std::string type = d.value("type", "");
    if (type == "Sequence") {
        for (const json& s : d.at("decoders")) load_decoder(s, depth + 1);
    } else if (type == "ByteLevel") {
        decoders.push_back(Decoder{.kind = Decoder::ByteLevel});
    } else if (type == "Replace") {
        decoders.push_back(Decoder{.kind = Decoder::Replace,
                                   .pattern = pattern_regex(path, d.at("pattern")),
                                   .content = d.at("content").get<std::string>()});
    } else if (type == "ByteFallback") {
        decoders.push_back(Decoder{.kind = Decoder::ByteFallback});
    } else if (type == "Fuse") {
        decoders.push_back(Decoder{.kind = Decoder::Fuse});
    } else if (type == "Strip") {
        Decoder s{.kind = Decoder::Strip, .content = d.at("content").get<std::string>()};
        s.ch = single_char(path, "Strip's content", s.content);
        s.start = d.at("start").get<int>(), s.stop = d.at("stop").get<int>();
        if (s.start < 0 || s.stop < 0) fail("Strip's start and stop must not be negative");
        decoders.push_back(std::move(s));
    } else if (type == "Metaspace") {
        Decoder s{.kind = Decoder::Metaspace, .content = d.value("replacement", std::string("\u2581"))};
        s.ch = single_char(path, "Metaspace's replacement", s.content);
        const std::string scheme = d.contains("prepend_scheme")        ? d["prepend_scheme"].get<std::string>()
                                   : d.value("add_prefix_space", true) ? "always"
                                                                       : "never";
        s.prepend = scheme != "never";
        decoders.push_back(std::move(s));
    } else {
        fail(fmt::format("decoder type '{}' is not supported", type));
    }
}

void HfTokenizer::Impl::load_added(const json& added) {
    if (!added.is_array()) fail("added_tokens is not a list");
    for (const json& a : added) {
        AddedToken t{a.at("content").get<std::string>(), a.at("id").get<int32_t>(), a.value("single_word", false),
                     a.value("lstrip", false),           a.value("rstrip", false),  a.value("special", false)};
        if (t.id < 0 || t.id >= (1 << 30)) fail(fmt::format("added token '{}' has the id {}", t.content, t.id));
        if (t.content.empty() || !valid_utf8(t.content))
            fail(fmt::format("added token {} is empty or not UTF-8", t.id));
        if (size_t(t.id) >= id_to_token.size()) id_to_token.resize(size_t(t.id) + 1);
        const bool normalized = a.value("normalized", !t.special);
        added_by_id[t.id] = {t.content, normalized ? normalize(t.content) : t.content, t.special};
        if (normalized) {
            t.content = added_by_id[t.id].decoded;  // matched in the normalized text
            normalized_added.tokens.push_back(std::move(t));
        } else {
            raw_added.tokens.push_back(std::move(t));
        }
    }
    raw_added.build();
    normalized_added.build();
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::string HfTokenizer::Impl::normalize(std::string_view s) const {
    std::string out(s);
    for (const Normalizer& n : normalizers) {
        if (n.kind == Normalizer::Prepend) {
            if (!out.empty()) out.insert(0, n.text);
        } else if (n.kind == Normalizer::Replace) {
            out = replace_all(*n.pattern, out, n.text);
        } else {
            // ICU works on UTF-16: UTF-8 -> UTF-16 -> normalized -> UTF-8. ASCII is already normal.
            if (std::all_of(out.begin(), out.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
                continue;
            UErrorCode err = U_ZERO_ERROR;
            int32_t n16 = 0;
            u_strFromUTF8(nullptr, 0, &n16, out.data(), int32_t(out.size()), &err);
            std::u16string in16(size_t(n16), u'\0');
            err = U_ZERO_ERROR;
            u_strFromUTF8(in16.data(), n16, nullptr, out.data(), int32_t(out.size()), &err);
            std::u16string norm(in16.size() * 4 + 8, u'\0');
            err = U_ZERO_ERROR;
            const int32_t nn = unorm2_normalize(n.unicode, in16.data(), n16, norm.data(), int32_t(norm.size()), &err);
            if (U_FAILURE(err)) fail(fmt::format("{} normalization failed: {}", n.text, u_errorName(err)));
            int32_t n8 = 0;
            err = U_ZERO_ERROR;
            u_strToUTF8(nullptr, 0, &n8, norm.data(), nn, &err);
            std::string back(size_t(n8), '\0');
            err = U_ZERO_ERROR;
            u_strToUTF8(back.data(), n8, nullptr, norm.data(), nn, &err);
            out = std::move(back);
        }
    }
    return out;
}

// Splits a segment into pieces by each pre-tokenizer in turn; new strings live in arena.
void HfTokenizer::Impl::pre_tokenize(std::string_view segment, bool at_start, std::deque<std::string>& arena,
                                     std::vector<Piece>& pieces) const {
    pieces.clear();
    pieces.push_back({segment, at_start});
    struct Span {
        size_t b, e;
        bool match;
    };
    thread_local std::vector<Span> spans, merged;
    thread_local std::vector<Piece> next;
    for (const PreTokenizer& p : pre_tokenizers) {
        next.clear();
        for (const Piece& piece : pieces) {
            std::string_view s = piece.text;
            if (p.kind == PreTokenizer::ByteLevel) {
                if (p.add_prefix_space && !s.starts_with(' ')) s = arena.emplace_back(std::string(" ").append(s));
                if (!p.pattern) {
                    next.push_back({s, piece.at_start});
                    continue;
                }
            } else if (p.kind == PreTokenizer::Metaspace) {
                std::string& m = arena.emplace_back();
                for (char c : s) {
                    if (c == ' ')
                        m += p.replacement;
                    else
                        m += c;
                }
                const bool prepend =
                    p.scheme == PreTokenizer::Always || (p.scheme == PreTokenizer::First && piece.at_start);
                if (prepend && !std::string_view(m).starts_with(p.replacement)) m.insert(0, p.replacement);
                s = m;
                if (!p.split) {
                    if (!s.empty()) next.push_back({s, piece.at_start});
                    continue;
                }
                // MergedWithNext at each replacement character.
                size_t begin = 0;
                for (size_t i = s.find(p.replacement, 1); i != std::string_view::npos;
                     i = s.find(p.replacement, i + 1)) {
                    next.push_back({s.substr(begin, i - begin), piece.at_start && begin == 0});
                    begin = i;
                }
                if (begin < s.size()) next.push_back({s.substr(begin), piece.at_start && begin == 0});
                continue;
            }
            // Split (or ByteLevel's regex): the spans, then the behavior decides which form a piece
            // (the reference's NormalizedString::split).
            const Behavior behavior = p.kind == PreTokenizer::Split ? p.behavior : Behavior::Isolated;
            const bool invert = p.kind == PreTokenizer::Split && p.invert;
            spans.clear();
            p.pattern->spans(s, [&](size_t b, size_t e, bool match) { spans.push_back({b, e, match != invert}); });
            merged.clear();
            bool previous = false;
            if (behavior == Behavior::MergedWithNext) {
                for (size_t k = spans.size(); k-- > 0;) {
                    const Span sp = spans[k];
                    if (sp.match && !previous && !merged.empty())
                        merged.back().b = sp.b;
                    else
                        merged.push_back({sp.b, sp.e, false});
                    previous = sp.match;
                }
                std::reverse(merged.begin(), merged.end());
            } else {
                for (const Span& sp : spans) {
                    const bool join = behavior == Behavior::MergedWithPrevious ? sp.match && !previous
                                      : behavior == Behavior::Contiguous       ? sp.match == previous
                                                                               : false;
                    if (behavior == Behavior::Removed && sp.match) {
                        previous = sp.match;
                        continue;
                    }
                    if (join && !merged.empty())
                        merged.back().e = sp.e;
                    else
                        merged.push_back(sp);
                    previous = sp.match;
                }
            }
            for (const Span& sp : merged) next.push_back({s.substr(sp.b, sp.e - sp.b), piece.at_start && sp.b == 0});
        }
        pieces.swap(next);
    }
}

// The BPE of one piece in model bytes, appended to out.
void HfTokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges) {
        const auto it = model_vocab.find(piece);
        if (it != model_vocab.end()) {
            out.push_back(it->second);
            return;
        }
    }
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    thread_local std::vector<Symbol> symbols;
    symbols.clear();
    auto add = [&](int32_t id) {
        const int32_t n = int32_t(symbols.size());
        symbols.push_back({id, n - 1, n + 1, true});
    };
    if (byte_level) {
        for (char c : piece) {
            const int32_t id = byte_token[static_cast<unsigned char>(c)];
            if (id < 0)
                fail(fmt::format("the byte 0x{:02X} has no token in the vocabulary", static_cast<unsigned char>(c)));
            add(id);
        }
    } else {
        bool unk_pending = false;  // the last symbol is an unk that may fuse with the next
        for (size_t i = 0; i < piece.size();) {
            const int len = std::min<int>(utf8_len(static_cast<unsigned char>(piece[i])), int(piece.size() - i));
            const std::string_view ch = piece.substr(i, size_t(len));
            i += size_t(len);
            const auto it = model_vocab.find(ch);
            if (it != model_vocab.end()) {
                add(it->second);
                unk_pending = false;
                continue;
            }
            const auto has_fallback = [&](char c) { return fallback[static_cast<unsigned char>(c)] >= 0; };
            if (byte_fallback && std::all_of(ch.begin(), ch.end(), has_fallback)) {
                for (char c : ch) add(fallback[static_cast<unsigned char>(c)]);
                unk_pending = false;
                continue;
            }
            if (unk < 0) continue;  // no unk token: the character is dropped, as the reference does
            if (!(unk_pending && fuse_unk)) add(unk);
            unk_pending = true;
        }
    }
    if (symbols.empty()) return;
    if (!symbols.empty()) symbols.back().next = -1;

    // Lowest rank first, then leftmost; stale entries are skipped when popped.
    struct Merge {
        int32_t rank, pos, merged;
        bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<Merge> heap_storage;
    heap_storage.clear();
    std::priority_queue<Merge, std::vector<Merge>> queue(std::less<Merge>(), std::move(heap_storage));
    for (int32_t i = 0; i + 1 < int32_t(symbols.size()); i++)
        if (const auto* m = merges.find(symbols[i].id, symbols[i + 1].id)) queue.push({m->first, i, m->second});
    while (!queue.empty()) {
        const Merge top = queue.top();
        queue.pop();
        Symbol& left = symbols[size_t(top.pos)];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = symbols[size_t(left.next)];
        const auto* m = merges.find(left.id, right.id);
        if (!m || m->second != top.merged) continue;
        left.id = top.merged;
        right.alive = false;
        left.next = right.next;
        if (right.next >= 0) symbols[size_t(right.next)].prev = top.pos;
        if (left.prev >= 0)
            if (const auto* pm = merges.find(symbols[size_t(left.prev)].id, left.id))
                queue.push({pm->first, left.prev, pm->second});
        if (left.next >= 0)
            if (const auto* nm = merges.find(left.id, symbols[size_t(left.next)].id))
                queue.push({nm->first, top.pos, nm->second});
    }
    for (const Symbol& s : symbols)
        if (s.alive) out.push_back(s.id);
}

// One piece through the per-thread word cache: a piece seen before costs one hash lookup.
void HfTokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.empty()) return;
    struct Cache {
        uint64_t owner = 0;
        std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> words;
        std::vector<int32_t> ids;  // the words' ids, back to back
    };
    thread_local Cache cache;
    constexpr size_t kMaxWords = 1 << 18, kMaxWordBytes = 256;
    if (cache.owner != serial || cache.words.size() >= kMaxWords) {
        cache.words.clear();
        cache.ids.clear();
        cache.owner = serial;
    }
    if (piece.size() > kMaxWordBytes) return bpe(piece, out);
    if (const auto it = cache.words.find(piece); it != cache.words.end()) {
        out.insert(out.end(), cache.ids.begin() + it->second.first,
                   cache.ids.begin() + it->second.first + it->second.second);
        return;
    }
    const size_t before = out.size();
    bpe(piece, out);
    const auto start = uint32_t(cache.ids.size());
    cache.ids.insert(cache.ids.end(), out.begin() + long(before), out.end());
    cache.words.emplace(std::string(piece), std::pair{start, uint32_t(out.size() - before)});
}

// A segment between raw added tokens: normalized, cut at normalized added tokens, pre-tokenized.
void HfTokenizer::Impl::encode_segment(std::string_view segment, bool at_start, std::vector<int32_t>& out) const {
    std::string normalized;
    std::string_view s = segment;
    if (!normalizers.empty()) s = normalized = normalize(segment);
    std::deque<std::string> arena;
    std::vector<Piece> pieces;
    auto encode_plain = [&](std::string_view part, bool start) {
        pre_tokenize(part, start, arena, pieces);
        for (const Piece& p : pieces) encode_piece(p.text, out);
        arena.clear();
    };
    if (normalized_added.empty()) return encode_plain(s, at_start);
    split_added(normalized_added, s, [&](std::string_view part, size_t offset, int32_t id) {
        if (id >= 0)
            out.push_back(id);
        else
            encode_plain(part, at_start && offset == 0);
    });
}

// Calls f(text, offset, id) for the parts of s in order: added tokens (id >= 0) and the text
// between them (id -1), with the reference's single_word, lstrip and rstrip rules.
void HfTokenizer::Impl::split_added(const AddedMatcher& m, std::string_view s,
                                    const std::function<void(std::string_view, size_t, int32_t)>& f) const {
    if (s.empty()) return;
    size_t done = 0;  // s[0, done) is handed out
    for (size_t pos = 0; pos < s.size();) {
        const int k = m.match_at(s, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        const AddedToken& t = m.tokens[size_t(k)];
        size_t start = pos, stop = pos + t.content.size();
        pos = stop;  // the next search starts after this match, taken or not
        if (t.single_word) {
            size_t last = start;  // the character before the match
            while (last > 0 && (static_cast<unsigned char>(s[--last]) & 0xC0) == 0x80) {
            }
            const bool word_before = start > 0 && word_char_at(s, last);
            const bool word_after = stop < s.size() && word_char_at(s, stop);
            if (word_before || word_after) continue;
        }
        if (t.lstrip) {
            size_t b = start;
            while (b > done) {  // back over whitespace characters, not past what is handed out
                size_t c = b - 1;
                while (c > 0 && (static_cast<unsigned char>(s[c]) & 0xC0) == 0x80) c--;
                int len = 0;
                if (!is_space(decode_utf8(s, c, &len))) break;
                b = c;
            }
            start = b;
        }
        if (t.rstrip) {
            while (stop < s.size()) {
                int len = 0;
                if (!is_space(decode_utf8(s, stop, &len))) break;
                stop += size_t(len);
            }
            pos = stop;
        }
        if (start > done) f(s.substr(done, start - done), done, -1);
        f(s.substr(start, stop - start), start, t.id);
        done = stop;
    }
    if (done < s.size()) f(s.substr(done), done, -1);
}

// ---------------------------------------------------------------------------------------------
// Decoding: the tokens' strings through the decoder chain, as the reference's decode_chain.

std::string HfTokenizer::Impl::decode(std::span<const int32_t> ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        if (const auto it = added_by_id.find(id); it != added_by_id.end()) {
            if (!(skip_special && it->second.special)) tokens.push_back(it->second.decoded);
        } else if (id >= 0 && size_t(id) < id_to_token.size() && !id_to_token[size_t(id)].empty()) {
            tokens.push_back(id_to_token[size_t(id)]);
        }
    }
    if (!has_decoder) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); i++) out += (i ? " " : "") + tokens[i];
        return out;
    }
    static const auto chars = byte_level_chars();
    static const auto to_byte = [] {
        std::unordered_map<uint32_t, char> m;
        for (int b = 0; b < 256; b++) m[chars[b]] = char(b);
        return m;
    }();
    for (const Decoder& d : decoders) {
        std::vector<std::string> next;
        switch (d.kind) {
            case Decoder::ByteLevel: {
                std::string bytes;
                for (const std::string& t : tokens) {
                    std::string raw;
                    bool ok = true;
                    for (size_t i = 0; i < t.size() && ok;) {
                        int len = 0;
                        const auto it = to_byte.find(decode_utf8(t, i, &len));
                        ok = it != to_byte.end();
                        if (ok) raw += it->second;
                        i += size_t(len);
                    }
                    bytes += ok ? raw : t;
                }
                std::string text;
                append_lossy_utf8(text, bytes);
                next.push_back(std::move(text));
                break;
            }
            case Decoder::Replace:
                for (const std::string& t : tokens) next.push_back(replace_all(*d.pattern, t, d.content));
                break;
            case Decoder::ByteFallback: {
                std::string run;  // consecutive <0xNN> bytes
                auto flush = [&] {
                    if (run.empty()) return;
                    if (valid_utf8(run))
                        next.push_back(run);
                    else
                        for (size_t i = 0; i < run.size(); i++) next.emplace_back("\xEF\xBF\xBD");
                    run.clear();
                };
                for (const std::string& t : tokens) {
                    const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
                    const bool byte = t.size() == 6 && t.starts_with("<0x") && t[5] == '>' && hex(t[3]) && hex(t[4]);
                    if (byte) {
                        run += char(std::stoi(t.substr(3, 2), nullptr, 16));
                    } else {
                        flush();
                        next.push_back(t);
                    }
                }
                flush();
                break;
            }
            case Decoder::Fuse: {
                std::string all;
                for (const std::string& t : tokens) all += t;
                next.push_back(std::move(all));
                break;
            }
            case Decoder::Strip:
                for (const std::string& t : tokens) {
                    std::vector<std::pair<size_t, size_t>> cs;  // (offset, length) per character
                    for (size_t i = 0; i < t.size();) {
                        int len = 0;
                        decode_utf8(t, i, &len);
                        cs.emplace_back(i, size_t(len));
                        i += size_t(len);
                    }
                    size_t a = 0, b = cs.size();
                    for (int i = 0; i < d.start && a < cs.size(); i++) {
                        int len = 0;
                        if (decode_utf8(t, cs[a].first, &len) != d.ch) break;
                        a++;
                    }
                    for (int i = 0; i < d.stop && b > a; i++) {
                        int len = 0;
                        if (decode_utf8(t, cs[b - 1].first, &len) != d.ch) break;
                        b--;
                    }
                    next.push_back(a < b ? t.substr(cs[a].first, cs[b - 1].first + cs[b - 1].second - cs[a].first)
                                         : "");
                }
                break;
            case Decoder::Metaspace:
                for (size_t k = 0; k < tokens.size(); k++) {
                    const std::string& t = tokens[k];
                    std::string o;
                    for (size_t i = 0; i < t.size();) {
                        int len = 0;
                        const uint32_t cp = decode_utf8(t, i, &len);
                        if (cp != d.ch)
                            o.append(t, i, size_t(len));
                        else if (!(k == 0 && d.prepend))
                            o += ' ';
                        i += size_t(len);
                    }
                    next.push_back(std::move(o));
                }
                break;
        }
        tokens.swap(next);
    }
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
}

// ---------------------------------------------------------------------------------------------

HfTokenizer::HfTokenizer(const std::string& path) : impl_(std::make_unique<Impl>()) {
    impl_->path = path;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    if (!(in && bytes << in.rdbuf())) throw DataError(fmt::format("{}: cannot read", path));
    json j;
    try {
        j = json::parse(bytes.str());
    } catch (const json::exception& e) {
        throw DataError(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    try {
        impl_->load(j);
    } catch (const json::exception& e) {
        throw DataError(fmt::format("{}: malformed tokenizer.json: {}", path, e.what()));
    }
}

HfTokenizer::~HfTokenizer() = default;
HfTokenizer::HfTokenizer(HfTokenizer&&) noexcept = default;
HfTokenizer& HfTokenizer::operator=(HfTokenizer&&) noexcept = default;

void HfTokenizer::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
    const Impl& t = *impl_;
    std::string cleaned;
    if (!valid_utf8(text)) {
        append_lossy_utf8(cleaned, text);
        text = cleaned;
    }
    if (add_special_tokens) out.insert(out.end(), t.prefix.begin(), t.prefix.end());
    if (t.raw_added.empty()) {
        if (!text.empty()) t.encode_segment(text, true, out);
    } else {
        t.split_added(t.raw_added, text, [&](std::string_view part, size_t offset, int32_t id) {
            if (id >= 0)
                out.push_back(id);
            else
                t.encode_segment(part, offset == 0, out);
        });
    }
    if (add_special_tokens) out.insert(out.end(), t.suffix.begin(), t.suffix.end());
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
    std::vector<int32_t> out;
    encode(text, add_special_tokens, out);
    return out;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    return impl_->decode(ids, skip_special_tokens);
}

int HfTokenizer::vocab_size() const { return int(impl_->id_to_token.size()); }

std::optional<int32_t> HfTokenizer::token_id(std::string_view token) const {
    for (const auto& [id, added] : impl_->added_by_id)
        if (added.content == token) return id;
    if (const auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
    return std::nullopt;
}

std::string HfTokenizer::token(int32_t id) const {
    if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return it->second.content;
    if (id >= 0 && size_t(id) < impl_->id_to_token.size()) return impl_->id_to_token[size_t(id)];
    return "";
}

bool HfTokenizer::is_special(int32_t id) const {
    const auto it = impl_->added_by_id.find(id);
    return it != impl_->added_by_id.end() && it->second.special;
}

std::span<const int32_t> HfTokenizer::prefix_ids() const { return impl_->prefix; }
std::span<const int32_t> HfTokenizer::suffix_ids() const { return impl_->suffix; }
const std::string& HfTokenizer::path() const { return impl_->path; }

// ---------------------------------------------------------------------------------------------

DecodeStream::DecodeStream(const HfTokenizer& tokenizer, bool skip_special_tokens)
    : tok_(tokenizer), skip_(skip_special_tokens) {}

// The reference's step_decode_stream: decode the window; once it is longer than its decoded prefix
// and does not end in U+FFFD, the difference is new text and the window moves up.
std::string DecodeStream::push(int32_t id) {
    ids_.push_back(id);
    const std::string text = tok_.decode(ids_, skip_);
    if (text.size() <= prefix_.size() || text.ends_with("\xEF\xBF\xBD")) return "";
    if (!text.starts_with(prefix_))
        throw DataError(
            fmt::format("{}: decoding {} ids changed the text of the ids before them", tok_.path(), ids_.size()));
    std::string fresh = text.substr(prefix_.size());
    const size_t new_prefix_index = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
    prefix_ = tok_.decode(ids_, skip_);
    prefix_index_ = new_prefix_index;
    return fresh;
}

std::string DecodeStream::flush() {
    const std::string text = tok_.decode(ids_, skip_);
    std::string rest = text.size() > prefix_.size() && text.starts_with(prefix_) ? text.substr(prefix_.size()) : "";
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return rest;
}

}  // namespace rkv
