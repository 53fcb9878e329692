// The built-in corpus: an endless stream of synthetic documents in lowercase ASCII.
//
// Each document starts with kDocStart (byte 0) and runs to a length drawn from
// [512, 2048] bytes. It has a cast of 3-6 made-up names ("kavo", "tesim"), each with
// 1-3 facts (a 4-digit key, a favourite color, a home town, an 8-letter password), and
// is a sequence of sentences, each one of:
//   filler    "the quiet dog finds a stone near the river."  a small fixed grammar whose
//             word choice is skewed toward the head of each list: unigram and bigram
//             structure that needs no attention beyond a few bytes
//   fact      "the key of kavo is 7351."   states a fact; favoured in the first half
//   question  "key of kavo? 7351."         asks a fact stated earlier, at any distance
//             (tens to ~2000 bytes back), at most twice: the answer is only in the
//             statement (or the first asking)
//   repeat    "again: <24-96 bytes of this document, verbatim>."
//   list      "list: qa=31 kx=07 mo=55. kx? 07 qa? 31."  key -> value recall at short range
// Answers (digits, passwords, towns, colors, copied spans) are uniformly random given
// everything before their first statement, so their loss can fall only as far as
// attention reaches back: that is what makes sharing the KV cache across layers show
// in the validation loss. Train and validation come from independent streams of the
// seed; the generator is deterministic and the same on every platform (rng.h).
//
// The QA task (builtin_qa) draws short documents of the same kind from streams of its own and
// asks one fact each: "key of kavo?" with the answer "7351" when the document states it, or a
// fact of its cast that it never states, unanswerable (no answer), as SQuAD v2 has them.
#include "data/corpus.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <fmt/core.h>

#include "data/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "src/file_io.h"

namespace rkv {

namespace {

constexpr std::array<std::string_view, 6> kDets = {"the", "a", "this", "that", "every", "one"};
constexpr std::array<std::string_view, 16> kAdjs = {"big",   "small", "little", "tall",   "quiet",  "happy",
                                                    "busy",  "cold",  "warm",   "dark",   "bright", "slow",
                                                    "quick", "brave", "tired",  "strange"};
constexpr std::array<std::string_view, 24> kNouns = {
    "dog",   "cat",    "bird",   "tree", "stone", "river", "house", "road", "child", "farmer", "king", "boat",
    "horse", "garden", "window", "door", "book",  "song",  "hill",  "lamp", "cup",   "wolf",   "fish", "bridge"};
constexpr std::array<std::string_view, 16> kVerbs = {"sees",    "finds",   "likes", "takes",  "holds",  "follows",
                                                     "carries", "watches", "helps", "builds", "paints", "hears",
                                                     "visits",  "leaves",  "opens", "moves"};
constexpr std::array<std::string_view, 8> kPreps = {"near",   "behind", "under",  "over",
                                                    "beside", "inside", "across", "past"};
constexpr std::array<std::string_view, 12> kColors = {"red",   "blue",  "green", "yellow", "purple", "orange",
                                                      "white", "black", "brown", "gray",   "pink",   "gold"};
constexpr std::string_view kConsonants = "bdfgklmnprstvz";
constexpr std::string_view kVowels = "aeiou";

// A fact about one cast member: stated as `lead` + answer + ".", asked as `prompt` + answer + ".".
struct Fact {
    std::string lead;    // "the key of kavo is "
    std::string prompt;  // "key of kavo? "
    std::string answer;  // "7351"
    int asked = 0;
};

class Generator {
public:
    explicit Generator(uint64_t seed) : rng_(seed) {}

    // Appends one whole document, of about lo to hi bytes, to out.
    void document(std::string& out, int64_t lo = 512, int64_t hi = 2048) {
        doc_.clear();
        doc_.push_back(char(kDocStart));
        cast();
        int64_t length = rng_.range(lo, hi);
        while (int64_t(doc_.size()) < length) {
            sentence(int64_t(doc_.size()) * 2 < length);
            doc_ += rng_.chance(1, 6) ? '\n' : ' ';
        }
        doc_.back() = '\n';
        out += doc_;
    }

    // A QA example from a short document (lo to hi bytes): the document is the context (without
    // its start byte and final newline), the question asks one fact it states, whose answer is a
    // span of it; or, one time in five when the cast has a fact the document never states, that
    // fact, unanswerable. nullopt when the document states no fact.
    std::optional<QaExample> qa_example(int64_t lo, int64_t hi) {
        std::string text;
        document(text, lo, hi);
        if (stated_.empty()) return std::nullopt;
        QaExample ex;
        ex.context = text.substr(1, text.size() - 2);
        const bool unanswerable = !unstated_.empty() && rng_.chance(1, 5);
        const std::vector<Fact>& pool = unanswerable ? unstated_ : stated_;
        const Fact& f = pool[rng_.below(pool.size())];
        ex.question = f.prompt.substr(0, f.prompt.size() - 1);  // "key of kavo?"
        if (!unanswerable) ex.answers = {f.answer};
        return ex;
    }

private:
    // Draws the document's names and their facts; none is stated yet.
    void cast() {
        names_.clear();
        unstated_.clear();
        askable_.clear();
        stated_.clear();
        int n = int(rng_.range(3, 6));
        while (int(names_.size()) < n) {
            std::string name = word(2);
            if (std::find(names_.begin(), names_.end(), name) != names_.end()) continue;
            names_.push_back(name);
            // 1-3 distinct kinds of fact per name, in random order.
            std::array<int, 4> kinds = {0, 1, 2, 3};
            for (int i = 3; i > 0; i--) std::swap(kinds[i], kinds[rng_.below(i + 1)]);
            for (int i = 0, m = int(rng_.range(1, 3)); i < m; i++) unstated_.push_back(fact(kinds[i], name));
        }
    }

    Fact fact(int kind, const std::string& name) {
        switch (kind) {
            case 0:
                return {fmt::format("the key of {} is ", name), fmt::format("key of {}? ", name),
                        fmt::format("{:04}", rng_.below(10000))};
            case 1:
                return {fmt::format("{} likes the color ", name), fmt::format("what color does {} like? ", name),
                        std::string(kColors[rng_.below(kColors.size())])};
            case 2: return {fmt::format("{} lives in ", name), fmt::format("where does {} live? ", name), word(3)};
            default:
                return {fmt::format("the password of {} is ", name), fmt::format("password of {}? ", name), letters(8)};
        }
    }

    // One sentence, its kind drawn with weights; facts are stated mostly in the first half.
    void sentence(bool first_half) {
        int w_fact = unstated_.empty() ? 0 : first_half ? 30 : 8;
        int w_question = askable_.empty() ? 0 : 25;
        int w_repeat = doc_.size() > 200 ? 6 : 0;
        int w_list = 6;
        int w_filler = 35;
        int64_t r = rng_.below(w_fact + w_question + w_repeat + w_list + w_filler);
        if ((r -= w_fact) < 0) return state_fact();
        if ((r -= w_question) < 0) return question();
        if ((r -= w_repeat) < 0) return repeat();
        if ((r -= w_list) < 0) return list();
        filler();
    }

    void state_fact() {
        size_t i = rng_.below(unstated_.size());
        append(unstated_[i].lead, unstated_[i].answer, ".");
        stated_.push_back(unstated_[i]);
        askable_.push_back(std::move(unstated_[i]));
        unstated_.erase(unstated_.begin() + i);
    }

    void question() {
        size_t i = rng_.below(askable_.size());
        Fact& f = askable_[i];
        append(f.prompt, f.answer, ".");
        if (++f.asked == 2) askable_.erase(askable_.begin() + i);
    }

    // A verbatim copy of an earlier span of this document, starting at a word.
    void repeat() {
        int64_t len = rng_.range(24, 96);
        int64_t start = 1 + rng_.below(doc_.size() - len - 1);
        while (start > 1 && doc_[start - 1] != ' ') start--;
        std::string span = doc_.substr(start, len);  // copied first: doc_ grows below
        append("again: ", span, ".");
    }

    void list() {
        int n = int(rng_.range(4, 8));
        std::vector<std::pair<std::string, std::string>> pairs;  // (n,) key, value
        while (int(pairs.size()) < n) {
            std::string key = letters(2);
            bool dup = false;
            for (auto& p : pairs) dup |= p.first == key;
            if (!dup) pairs.emplace_back(key, fmt::format("{:02}", rng_.below(100)));
        }
        doc_ += "list:";
        for (auto& [key, value] : pairs) doc_ += fmt::format(" {}={}", key, value);
        doc_ += '.';
        // 2-4 distinct keys asked, in random order: a partial Fisher-Yates shuffle.
        for (int i = 0, m = int(rng_.range(2, 4)); i < m; i++) {
            std::swap(pairs[i], pairs[i + rng_.below(n - i)]);
            doc_ += fmt::format(" {}? {}", pairs[i].first, pairs[i].second);
        }
        doc_ += '.';
    }

    // At most one draw per statement, so their order is not left to the compiler's
    // order of evaluating function arguments.
    void filler() {
        switch (rng_.below(4)) {
            case 0: clause(); break;
            case 1:
                clause();
                append(" ", pick(kPreps), " ");
                noun_phrase();
                break;
            case 2:
                doc_ += names_[rng_.below(names_.size())];
                append(" ", pick(kVerbs), " ");
                noun_phrase();
                break;
            default:
                clause();
                doc_ += ", and ";
                clause();
        }
        doc_ += '.';
    }

    void clause() {
        noun_phrase();
        append(" ", pick(kVerbs), " ");
        noun_phrase();
    }

    void noun_phrase() {
        append(pick(kDets), " ");
        if (rng_.chance(1, 2)) append(pick(kAdjs), " ");
        doc_ += pick(kNouns);
    }

    template <class... Pieces>
    void append(const Pieces&... pieces) {
        (doc_.append(pieces), ...);
    }

    // A word from a list, the first ones more often: the smaller of two uniform draws.
    template <size_t N>
    std::string_view pick(const std::array<std::string_view, N>& words) {
        uint64_t a = rng_.below(N), b = rng_.below(N);
        return words[std::min(a, b)];
    }

    // A pronounceable made-up word of consonant-vowel syllables, maybe closed by a consonant.
    std::string word(int syllables) {
        std::string w;
        for (int i = 0; i < syllables; i++) {
            w += kConsonants[rng_.below(kConsonants.size())];
            w += kVowels[rng_.below(kVowels.size())];
        }
        if (rng_.chance(1, 2)) w += kConsonants[rng_.below(kConsonants.size())];
        return w;
    }

    std::string letters(int n) {
        std::string s(n, ' ');
        for (char& c : s) c = char('a' + rng_.below(26));
        return s;
    }

    SplitMix64 rng_;
    std::string doc_;                       // the document being written
    std::vector<std::string> names_;        // its cast
    std::vector<Fact> unstated_, askable_;  // facts not yet stated; stated, asked < 2 times
    std::vector<Fact> stated_;              // every fact the document has stated
};

}  // namespace

std::string builtin_corpus_text(uint64_t seed, CorpusSplit split, int64_t n_bytes) {
    Generator gen(stream_seed(seed, split == CorpusSplit::train ? 1 : 2));
    std::string text;
    text.reserve(n_bytes + 4096);
    while (int64_t(text.size()) < n_bytes) gen.document(text);
    text.resize(n_bytes);
    return text;
}

std::vector<int32_t> builtin_corpus(uint64_t seed, CorpusSplit split, int64_t n_tokens) {
    return encode_bytes(builtin_corpus_text(seed, split, n_tokens));
}

std::vector<QaExample> builtin_qa(uint64_t seed, CorpusSplit split, int n) {
    // Streams of their own: the QA documents are not those of the language-model splits.
    Generator gen(stream_seed(seed, split == CorpusSplit::train ? 3 : 4));
    std::vector<QaExample> out;
    while (int(out.size()) < n)
        if (auto ex = gen.qa_example(kQaContextBytes / 2, kQaContextBytes)) out.push_back(std::move(*ex));
    return out;
}

CorpusFiles builtin_corpus_files(const std::string& dir) {
    return {dir + "/corpus_train.bin", dir + "/corpus_val.bin"};
}

namespace {

// Where the documents of a token stream begin: at 0 and at every document start after it.
std::vector<int64_t> document_offsets(std::span<const int32_t> stream) {
    std::vector<int64_t> at{0};
    for (int64_t i = 1; i < int64_t(stream.size()); i++)
        if (stream[i] == kDocStart) at.push_back(i);
    return at;
}

}  // namespace

std::vector<int32_t> interleave_documents(std::span<const int32_t> base, std::span<const int32_t> extra) {
    const std::vector<int64_t> b = document_offsets(base), e = document_offsets(extra);
    const int64_t n = int64_t(b.size()), m = extra.empty() ? 0 : int64_t(e.size());
    auto document = [](std::span<const int32_t> stream, const std::vector<int64_t>& at, int64_t i) {
        const int64_t end = i + 1 < int64_t(at.size()) ? at[i + 1] : int64_t(stream.size());
        return stream.subspan(at[i], end - at[i]);
    };
    std::vector<int32_t> out;
    out.reserve(base.size() + extra.size());
    auto append = [&out](std::span<const int32_t> doc) { out.insert(out.end(), doc.begin(), doc.end()); };
    for (int64_t i = 0, j = 0; i < n; i++) {
        for (; j < m && (j + 1) * n / (m + 1) <= i; j++) append(document(extra, e, j));
        append(document(base, b, i));
    }  // every extra document is placed: (j + 1) * n / (m + 1) < n for j < m
    return out;
}

CorpusFiles write_builtin_corpus(const std::string& dir, uint64_t seed, int64_t train_tokens, int64_t val_tokens,
                                 std::span<const int32_t> mixed_in) {
    std::filesystem::create_directories(dir);
    const CorpusFiles files = builtin_corpus_files(dir);
    const std::vector<int32_t> train = builtin_corpus(seed, CorpusSplit::train, train_tokens);
    write_shard(files.train, mixed_in.empty() ? train : interleave_documents(train, mixed_in), 1);
    write_shard(files.val, builtin_corpus(seed, CorpusSplit::val, val_tokens), 1);
    return files;
}

std::string cache_dir() {
    if (const char* dir = std::getenv("RKV_CACHE_DIR"); dir && *dir) return dir;
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/rkv";
    if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/rkv";
    throw std::runtime_error("no cache directory for the built-in corpus: set RKV_CACHE_DIR (or HOME)");
}

CorpusFiles cached_builtin_corpus(uint64_t seed, int64_t train_tokens, int64_t val_tokens) {
    uint64_t key = 0xcbf29ce484222325ull;  // FNV-1a of the generator's parameters
    for (unsigned char c :
         fmt::format("rkv corpus v{} seed {} train {} val {}", kCorpusVersion, seed, train_tokens, val_tokens))
        key = (key ^ c) * 0x100000001b3ull;
    const std::string dir = fmt::format("{}/corpus-{:016x}", cache_dir(), key);
    const CorpusFiles files = builtin_corpus_files(dir);
    auto whole = [](const std::string& path, int64_t tokens) {  // a version 1 shard of that many tokens
        std::error_code ec;
        return std::filesystem::file_size(path, ec) == uint64_t(kShardHeaderBytes + 2 * tokens) && !ec;
    };
    if (whole(files.train, train_tokens) && whole(files.val, val_tokens)) return files;
    try {
        std::filesystem::create_directories(dir);
    } catch (const std::exception& e) {
        throw std::runtime_error(
            fmt::format("{}: cannot create the corpus cache ({}); set RKV_CACHE_DIR to a "
                        "writable directory",
                        dir, e.what()));
    }
    remove_stale_temporaries(dir);
    return write_builtin_corpus(dir, seed, train_tokens, val_tokens);
}

double unigram_entropy(std::span<const int32_t> tokens, int vocab_size) {
    std::vector<int64_t> counts(vocab_size);  // (vocab_size,)
    for (int32_t t : tokens) counts.at(t)++;
    double h = 0;
    for (int64_t c : counts)
        if (c) {
            double p = double(c) / double(tokens.size());
            h -= p * std::log(p);
        }
    return h;
}

}  // namespace rkv
