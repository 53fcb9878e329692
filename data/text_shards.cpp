// Documents -> llm.c token shards (see text_shards.h).
#include "data/text_shards.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <span>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "data/shard.h"

namespace rkv {

namespace fs = std::filesystem;

namespace {

int32_t token_of(const HfTokenizer& tok, const std::string& name, const char* what) {
    const auto id = tok.token_id(name);
    if (!id) throw DataError(fmt::format("{}: the {} token '{}' is not in the vocabulary", tok.path(), what, name));
    return *id;
}

// tokenizer_config.json's `key` (bos_token, eos_token): a string or {"content": ...}; "" when absent.
std::string config_token(const HfTokenizer& tok, const char* key) {
    const fs::path config = fs::path(tok.path()).parent_path() / "tokenizer_config.json";
    std::ifstream in(config);
    if (!in) return "";
    try {
        const nlohmann::json j = nlohmann::json::parse(in);
        const nlohmann::json t = j.value(key, nlohmann::json());
        if (t.is_string()) return t.get<std::string>();
        if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("{}: {}", config.string(), e.what()));
    }
    return "";
}

unsigned thread_count(int threads) {
    return threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
}

// Runs work(chunk) for chunks [0, n) on threads, each chunk once; calls tick() on this thread
// about every 200 ms while they run, and once at the end.
template <class Work, class Tick>
void run_chunks(size_t n, int threads, Work&& work, Tick&& tick) {
    std::atomic<size_t> next{0};
    size_t done = 0;  // under mutex
    std::mutex mutex;
    std::condition_variable all_done;
    auto worker = [&] {
        for (size_t c; (c = next++) < n;) {
            work(c);
            std::lock_guard<std::mutex> lock(mutex);
            if (++done == n) all_done.notify_one();
        }
    };
    const unsigned workers = std::min<unsigned>(thread_count(threads), unsigned(std::max<size_t>(n, 1)));
    if (workers == 1) {
        worker();
    } else {
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < workers; t++) pool.emplace_back(worker);
        std::unique_lock<std::mutex> lock(mutex);
        while (!all_done.wait_for(lock, std::chrono::milliseconds(200), [&] { return done == n; })) {
            lock.unlock();
            tick();
            lock.lock();
        }
        lock.unlock();
        for (auto& t : pool) t.join();
    }
    tick();
}

}  // namespace

DocumentTokens document_tokens(const HfTokenizer& tok, const std::string& start_token, const std::string& end_token) {
    DocumentTokens d;
    if (!start_token.empty()) {
        d.start = {token_of(tok, start_token, "document start")};
    } else if (!tok.prefix_ids().empty()) {
        d.start.assign(tok.prefix_ids().begin(), tok.prefix_ids().end());
    } else if (const std::string bos = config_token(tok, "bos_token"); !bos.empty()) {
        d.start = {token_of(tok, bos, "tokenizer_config.json bos_token")};
    } else if (const auto eot = tok.token_id("<|endoftext|>")) {
        d.start = {*eot};
    } else {
        throw DataError(
            fmt::format("{}: no document start token (no BOS in the post-processor, no bos_token in "
                        "tokenizer_config.json, no <|endoftext|>): name one with --doc-start",
                        tok.path()));
    }
    if (!end_token.empty()) d.end = {token_of(tok, end_token, "document end")};
    return d;
}

int32_t end_of_text(const HfTokenizer& tok, const std::string& end_token) {
    if (!end_token.empty()) return token_of(tok, end_token, "end of text");
    if (const std::string eos = config_token(tok, "eos_token"); !eos.empty())
        return token_of(tok, eos, "tokenizer_config.json eos_token");
    if (const auto eot = tok.token_id("<|endoftext|>")) return *eot;
    throw DataError(
        fmt::format("{}: no end-of-text token (no eos_token in tokenizer_config.json, no <|endoftext|>): "
                    "name one with --doc-end",
                    tok.path()));
}

std::vector<int32_t> encode_documents(const HfTokenizer& tok, const std::vector<std::string_view>& docs,
                                      const DocumentTokens& around, int threads, const Progress& progress) {
    // Chunks of about 1 MB of text: enough to keep threads busy, small enough to balance.
    std::vector<size_t> bounds{0};
    for (size_t i = 0, bytes = 0; i < docs.size(); i++) {
        bytes += docs[i].size();
        if (bytes >= (1 << 20) || i + 1 == docs.size()) bounds.push_back(i + 1), bytes = 0;
    }
    const size_t chunks = bounds.size() - 1;
    std::vector<std::vector<int32_t>> out(chunks);
    std::atomic<int64_t> bytes_done{0}, tokens_done{0};
    run_chunks(
        chunks, threads,
        [&](size_t c) {
            int64_t bytes = 0;
            for (size_t i = bounds[c]; i < bounds[c + 1]; i++) {
                out[c].insert(out[c].end(), around.start.begin(), around.start.end());
                tok.encode(docs[i], false, out[c]);
                out[c].insert(out[c].end(), around.end.begin(), around.end.end());
                bytes += int64_t(docs[i].size());
            }
            bytes_done += bytes;
            tokens_done += int64_t(out[c].size());
        },
        [&] {
            if (progress) progress(bytes_done, tokens_done);
        });
    std::vector<int32_t> all;
    all.reserve(size_t(tokens_done.load()));
    for (auto& o : out) {
        all.insert(all.end(), o.begin(), o.end());
        std::vector<int32_t>().swap(o);
    }
    return all;
}

std::vector<std::vector<int32_t>> encode_lines(const HfTokenizer& tok, const std::vector<std::string_view>& lines,
                                               int threads) {
    std::vector<std::vector<int32_t>> ids(lines.size());
    constexpr size_t kChunk = 256;
    run_chunks((lines.size() + kChunk - 1) / kChunk, threads,
               [&](size_t c) {
                   for (size_t i = c * kChunk; i < std::min(lines.size(), (c + 1) * kChunk); i++)
                       ids[i] = tok.encode(lines[i]);
               },
               [] {});
    return ids;
}

bool out_dir_allowed(const std::string& dir, const std::string& source_dir) {
    const fs::path src = fs::weakly_canonical(fs::absolute(source_dir));
    const fs::path out = fs::weakly_canonical(fs::absolute(dir));
    auto inside = [](const fs::path& p, const fs::path& root) {
        const fs::path rel = p.lexically_relative(root);
        return !rel.empty() && *rel.begin() != "..";
    };
    return !inside(out, src) || inside(out, src / "runs");
}

ShardFiles write_splits(const std::vector<int32_t>& tokens, int vocab_size, const SplitOptions& o) {
    if (o.shard_tokens < 1) throw DataError(fmt::format("{}: shard_tokens must be positive", o.dir));
    const int64_t n = int64_t(tokens.size());
    int64_t n_val = o.val_tokens >= 0 ? std::min(o.val_tokens, n) : int64_t(std::llround(o.val_frac * double(n)));
    n_val = std::clamp<int64_t>(n_val, 0, n);
    // val: the first n_val tokens with val_tokens, the last n_val with val_frac.
    const int64_t val_begin = o.val_tokens >= 0 ? 0 : n - n_val;
    const std::span<const int32_t> all(tokens);
    const std::span<const int32_t> val = all.subspan(size_t(val_begin), size_t(n_val));
    const std::span<const int32_t> train =
        o.val_tokens >= 0 ? all.subspan(size_t(n_val)) : all.subspan(0, size_t(n - n_val));
    ShardFiles files;
    files.version = shard_version(vocab_size);
    files.train_tokens = int64_t(train.size());
    files.val_tokens = int64_t(val.size());
    fs::create_directories(o.dir);
    auto write = [&](std::span<const int32_t> split, const char* what, std::vector<std::string>& paths) {
        for (int64_t i = 0; i * o.shard_tokens < int64_t(split.size()); i++) {
            const std::string path = fmt::format("{}/{}_{}_{:06}.bin", o.dir, o.name, what, i);
            const auto count = std::min<int64_t>(o.shard_tokens, int64_t(split.size()) - i * o.shard_tokens);
            write_shard(path, split.subspan(size_t(i * o.shard_tokens), size_t(count)), files.version);
            paths.push_back(path);
        }
    };
    write(val, "val", files.val);
    write(train, "train", files.train);
    return files;
}

}  // namespace rkv
