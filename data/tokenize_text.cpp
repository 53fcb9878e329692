// ./tokenize_text: text -> llm.c token shards, or ids per line.
//
//   tokenize_text --tokenizer tokenizer.json --ids FILE
//       one output line per input line: its ids without special tokens, space-separated (a check
//       anyone can run against another tokenizer)
//   tokenize_text --tokenizer tokenizer.json --out DIR [--field text] [--val-frac 0.1 | --val-tokens N]
//                 [--doc-start TOKEN] [--doc-end TOKEN] FILES...
//       shards (data/text_shards.h): a .jsonl/.json file, or any file with --field, holds one document
//       per line (the field's string); any other file is one document. Each document starts with the
//       model's document start (its BOS; GPT-2: <|endoftext|>, as llm.c).
//   tokenize_text --out DIR FILES...
//       without --tokenizer: byte-level shards (vocab 256), the same documents, each after byte 0.
//   tokenize_text --builtin-corpus --out DIR [FILES...]
//       the built-in corpus train_rkv trains on when given no --train (data/corpus.h), as
//       DIR/corpus_train.bin and DIR/corpus_val.bin: to mix it with other shards under one glob.
//       With FILES, their byte-level documents are spread evenly between the corpus's training
//       documents, so every window train_rkv draws holds some of both; validation stays the
//       corpus's own, comparable with any other run's.
//
// --out must lie outside the source tree (or under its runs/, which git ignores) unless --force:
// a corpus is large and never belongs in the repository.
//
//   tokenize_text [--tokenizer tokenizer.json] --sft T --out DIR [--val-frac F] FILES.jsonl
//       fine-tuning rows (data/sft_rows.h, data/sft_file.h): each line {"prompt", "completion"} one
//       row of T tokens, [document start] prompt completion [end of text], the loss on the
//       completion and its end only; train_rkv --train/--val read them at --seq-len T.
#include <chrono>
#include <climits>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/hf_tokenizer.h"
#include "data/sft_rows.h"
#include "data/shard.h"
#include "data/text_shards.h"
#include "data/tokenizer.h"
#include "src/cli_range.h"

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    if (!(in && bytes << in.rdbuf())) throw rkv::DataError(fmt::format("{}: cannot read", path));
    return std::move(bytes).str();
}

// The lines of text, without their "\n" (a last line without one counts).
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> lines;
    for (size_t start = 0; start < text.size();) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

bool is_json_lines(const std::string& path, const std::string& field_given) {
    const std::string ext = fs::path(path).extension().string();
    return !field_given.empty() || ext == ".jsonl" || ext == ".json";
}

struct Options {
    std::string tokenizer, ids_file, field, doc_start, doc_end;
    rkv::SplitOptions split;
    rkv::SftOptions sft;  // --sft T: fine-tuning rows of T tokens
    int threads = 0;
    bool force = false;
    bool builtin_corpus = false;
    std::vector<std::string> files;
};

// The rule for --out at the top of this file.
void check_out_dir(const Options& o) {
    if (!o.force && !rkv::out_dir_allowed(o.split.dir, RKV_SOURCE_DIR))
        throw std::invalid_argument(
            fmt::format("--out {} is inside the source tree {}: write it elsewhere (or under runs/), or pass --force",
                        o.split.dir, RKV_SOURCE_DIR));
}

// --ids: each line's ids, space-separated, one output line per input line.
int print_ids(const Options& o) {
    if (o.tokenizer.empty()) throw std::invalid_argument("--ids needs --tokenizer");
    const rkv::HfTokenizer tok(o.tokenizer);
    const std::string text = read_file(o.ids_file);
    const auto t0 = std::chrono::steady_clock::now();
    const auto all = rkv::encode_lines(tok, lines_of(text), o.threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "encoded {:.2f} MB in {:.3f} s: {:.2f} MB/s\n", text.size() / 1e6, s,
               s > 0 ? text.size() / 1e6 / s : 0.0);
    std::string buf;
    for (const auto& line : all) {
        for (size_t i = 0; i < line.size(); i++) buf.append(i ? " " : "").append(std::to_string(line[i]));
        buf += '\n';
        if (buf.size() > (1 << 20)) std::fwrite(buf.data(), 1, buf.size(), stdout), buf.clear();
    }
    std::fwrite(buf.data(), 1, buf.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

// The documents of the files, in order: a text file is one, a JSON Lines file one per non-blank line
// (its field's string, unescaped into owned).
std::vector<std::string_view> documents(const Options& o, const std::vector<std::string>& contents,
                                        std::deque<std::string>& owned) {
    std::vector<std::string_view> docs;
    const std::string key = o.field.empty() ? "text" : o.field;
    for (size_t f = 0; f < o.files.size(); f++) {
        if (!is_json_lines(o.files[f], o.field)) {
            docs.push_back(contents[f]);
            continue;
        }
        const auto lines = lines_of(contents[f]);
        for (size_t i = 0; i < lines.size(); i++) {
            if (lines[i].find_first_not_of(" \t\r") == std::string_view::npos) continue;
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(lines[i]);
            } catch (const nlohmann::json::exception& e) {
                throw rkv::DataError(fmt::format("{}:{}: not JSON: {}", o.files[f], i + 1, e.what()));
            }
            if (!j.is_object() || !j.contains(key) || !j[key].is_string())
                throw rkv::DataError(fmt::format("{}:{}: no string field '{}'", o.files[f], i + 1, key));
            docs.push_back(owned.emplace_back(j[key].get<std::string>()));
        }
    }
    return docs;
}

// The files' bytes, in order; documents are views into them.
std::vector<std::string> read_files(const Options& o) {
    std::vector<std::string> contents;
    contents.reserve(o.files.size());
    for (const std::string& path : o.files) contents.push_back(read_file(path));
    return contents;
}

// Byte-level tokens of the documents: each one's bytes after the document start (byte 0).
std::vector<int32_t> byte_documents(const std::vector<std::string_view>& docs) {
    std::vector<int32_t> tokens;
    for (std::string_view doc : docs) {
        tokens.push_back(rkv::kDocStart);
        for (int32_t t : rkv::encode_bytes(doc)) tokens.push_back(t);
    }
    return tokens;
}

// --out: the files' documents as validation and training shards.
int write_shards(const Options& o) {
    if (o.split.dir.empty() || o.files.empty()) throw std::invalid_argument("give --out DIR and FILES (or --ids FILE)");
    check_out_dir(o);
    const std::vector<std::string> contents = read_files(o);

    std::vector<int32_t> tokens;
    int vocab_size = rkv::kByteVocab;
    std::deque<std::string> owned;
    const std::vector<std::string_view> docs = documents(o, contents, owned);
    if (o.tokenizer.empty()) {
        if (!o.doc_start.empty() || !o.doc_end.empty())
            throw std::invalid_argument("--doc-start and --doc-end need --tokenizer");
        tokens = byte_documents(docs);
    } else {
        const rkv::HfTokenizer tok(o.tokenizer);
        vocab_size = tok.vocab_size();
        const rkv::DocumentTokens around = rkv::document_tokens(tok, o.doc_start, o.doc_end);
        int64_t total_bytes = 0;
        for (auto d : docs) total_bytes += int64_t(d.size());
        const auto t0 = std::chrono::steady_clock::now();
        tokens = rkv::encode_documents(tok, docs, around, o.threads, [&](int64_t bytes, int64_t n) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            fmt::print(stderr, "\rtokenized {:.1f} of {:.1f} MB, {} tokens, {:.1f} MB/s", bytes / 1e6,
                       total_bytes / 1e6, n, s > 0 ? bytes / 1e6 / s : 0.0);
        });
        fmt::print(stderr, "\n");
        fmt::print("{} documents, {} tokens (document start: {}{})\n", docs.size(), tokens.size(),
                   fmt::join(around.start, " "),
                   around.end.empty() ? "" : fmt::format(", end: {}", fmt::join(around.end, " ")));
    }
    const rkv::ShardFiles written = rkv::write_splits(tokens, vocab_size, o.split);
    for (const auto& path : written.val) fmt::print("{}\n", path);
    for (const auto& path : written.train) fmt::print("{}\n", path);
    fmt::print("train {} tokens, val {} tokens, version {} shards ({}) in {}\n", written.train_tokens,
               written.val_tokens, written.version, written.version == 1 ? "uint16" : "uint32", o.split.dir);
    return 0;
}

// --builtin-corpus: the built-in corpus's two shards, as train_rkv generates them, and the files'
// documents mixed into the training one.
int write_corpus(const Options& o) {
    if (o.split.dir.empty() || !o.tokenizer.empty() || !o.doc_start.empty() || !o.doc_end.empty())
        throw std::invalid_argument(
            "--builtin-corpus takes --out DIR, and no --tokenizer, --doc-start or --doc-end: "
            "the corpus is byte-level");
    check_out_dir(o);
    const std::vector<std::string> contents = read_files(o);  // first, so that a bad file writes nothing
    std::deque<std::string> owned;
    const std::vector<std::string_view> docs = documents(o, contents, owned);
    const std::vector<int32_t> extra = byte_documents(docs);
    const rkv::CorpusFiles files = rkv::write_builtin_corpus(o.split.dir, rkv::kBuiltinCorpusSeed,
                                                             rkv::kCorpusTrainTokens, rkv::kCorpusValTokens, extra);
    const int64_t train_tokens = rkv::kCorpusTrainTokens + int64_t(extra.size());  // every token is kept
    if (!docs.empty())
        fmt::print("{} documents of {} mixed into the training split: {} tokens of {}\n", docs.size(),
                   fmt::join(o.files, ", "), extra.size(), train_tokens);
    fmt::print("{}\n{}\ntrain {} tokens, val {} tokens, version 1 shards (uint16) in {}\n", files.val, files.train,
               train_tokens, rkv::kCorpusValTokens, o.split.dir);
    return 0;
}

// --sft: prompt/completion JSON Lines as fine-tuning rows (data/sft_rows.h), validation split
// spread evenly through the examples. Byte-level: rows start with the document start (byte 0)
// and the completion ends with it too, so a byte-level model learns where an answer stops.
int write_sft(Options o) {
    if (o.split.dir.empty() || o.files.empty()) throw std::invalid_argument("--sft needs --out DIR and FILES");
    check_out_dir(o);
    o.sft.val_fraction = o.split.val_frac;
    std::optional<rkv::HfTokenizer> tok;
    rkv::Encoder encode;
    int vocab_size = rkv::kByteVocab;
    if (o.tokenizer.empty()) {
        o.sft.bos = o.sft.eos = rkv::kDocStart;
        encode = [](std::string_view text) { return rkv::encode_bytes(text); };
    } else {
        tok.emplace(o.tokenizer);
        vocab_size = tok->vocab_size();
        const rkv::DocumentTokens start = rkv::document_tokens(*tok, o.doc_start);
        if (start.start.size() != 1)
            throw std::invalid_argument(fmt::format("{}: the document start is {} tokens; name one with --doc-start",
                                                    o.tokenizer, start.start.size()));
        o.sft.bos = start.start[0];
        o.sft.eos = rkv::end_of_text(*tok, o.doc_end);
        encode = [&tok](std::string_view text) { return tok->encode(text); };
    }
    const rkv::SftSplits splits = rkv::make_sft_rows(o.files, encode, o.sft);
    for (const std::string& path : rkv::write_sft_splits(o.split.dir, o.split.name, splits, vocab_size))
        fmt::print("{}\n", path);
    fmt::print("{}\n", rkv::sft_report(splits.counts));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Turn text into llm.c token shards (a Hugging Face tokenizer.json, or byte-level), or print ids."};
    Options o;
    app.add_option("--tokenizer", o.tokenizer, "a Hugging Face tokenizer.json (default: byte-level, vocab 256)")
        ->check(CLI::ExistingFile);
    auto* ids = app.add_option("--ids", o.ids_file, "print each line's ids (no special tokens), one line each")
                    ->check(CLI::ExistingFile);
    auto* out = app.add_option("--out", o.split.dir, "output directory for shards (created if missing)");
    ids->excludes(out);
    app.add_option("--name", o.split.name, "shard name prefix")->capture_default_str();
    auto* frac = app.add_option("--val-frac", o.split.val_frac, "validation: this fraction of the stream, from its end")
                     ->check(CLI::Range(0.0, 1.0))
                     ->capture_default_str();
    app.add_option("--val-tokens", o.split.val_tokens, "validation: the first N tokens of the stream instead")
        ->check(rkv::in_range<int64_t>(0, INT64_MAX))
        ->excludes(frac);
    app.add_option("--shard-tokens", o.split.shard_tokens, "most tokens per shard")
        ->check(CLI::Range(int64_t(1), int64_t(INT32_MAX)))
        ->capture_default_str();
    auto* sft = app.add_option("--sft", o.sft.T,
                               "fine-tuning rows of this many tokens (train_rkv --seq-len) from "
                               "JSON Lines of {\"prompt\", \"completion\"}")
                    ->check(CLI::Range(2, 1 << 24));
    sft->excludes(ids);
    app.add_option("--prompt-field", o.sft.prompt_field, "--sft: the prompt's field")->capture_default_str();
    app.add_option("--completion-field", o.sft.completion_field, "--sft: the completion's field")
        ->capture_default_str();
    app.add_option("--field", o.field, "JSON Lines: the field holding each document's text (default: text)");
    app.add_option("--doc-start", o.doc_start, "token starting every document (default: the model's BOS)");
    app.add_option("--doc-end", o.doc_end, "token ending every document (default: none)");
    app.add_option("--threads", o.threads, "encoding threads (0: all cores)")->check(rkv::in_range(0, 4096));
    app.add_flag("--force", o.force, "allow an --out inside the source tree");
    app.add_flag("--builtin-corpus", o.builtin_corpus,
                 "write the built-in corpus (train_rkv's data when given no --train) to --out, with FILES' "
                 "documents spread through its training split")
        ->excludes(ids)
        ->excludes(sft);
    app.add_option("files", o.files, "text files (one document each) or JSON Lines (one document per line)")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);

    try {
        // Modes: ids per line, fine-tuning rows, the built-in corpus, or pretraining shards.
        if (!o.ids_file.empty()) return print_ids(o);
        if (o.builtin_corpus) return write_corpus(o);
        if (o.sft.T > 0) return write_sft(o);
        return write_shards(o);
    } catch (const std::exception& e) {
        fmt::print(stderr, "tokenize_text: {}\n", e.what());
        return 1;
    }
}
