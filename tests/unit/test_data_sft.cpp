// Fine-tuning rows: the file round-trips and refuses every malformed file by name, JSON Lines
// become the rows the policy in data/sft_rows.h says (truncation and drops counted, bad lines
// named by file:line), the loader serves them with no loss on prompt and padding, and the
// model's loss on such a batch is the loss over the completion tokens alone.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "data/loader.h"
#include "data/rng.h"
#include "data/sft_file.h"
#include "data/sft_rows.h"
#include "data/tokenizer.h"
#include "src/cpu_ops.h"
#include "src/model.h"
#include "tests/data_error.h"
#include "tests/fixtures.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Tokens = std::vector<int32_t>;

namespace {

// R random rows of T tokens below vocab, each with a random mask that obeys the format.
rkv::SftRows random_rows(int64_t R, int T, int vocab, uint64_t seed) {
    rkv::SplitMix64 rng(seed);
    rkv::SftRows rows;
    rows.T = T;
    for (int64_t r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            rows.tokens.push_back(int32_t(rng.below(vocab)));
            rows.mask.push_back(t > 0 && rng.below(3) == 0);
        }
        rows.mask[r * T + 1 + rng.below(T - 1)] = 1;  // some loss in every row
    }
    return rows;
}

std::string bytes_of(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void overwrite(const std::string& path, int64_t offset, const void* data, size_t n) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(offset);
    f.write(static_cast<const char*>(data), n);
}

void patch_header(const std::string& path, int i, int32_t value) {
    overwrite(path, i * sizeof(int32_t), &value, sizeof(value));
}

// The byte encoder as an Encoder.
std::vector<int32_t> bytes(std::string_view s) { return rkv::encode_bytes(s); }

}  // namespace

TEST_CASE("row files round-trip tokens and masks, 2 and 4 bytes per token", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    for (int width : {2, 4}) {
        const int vocab = width == 2 ? 65536 : 200000;
        const auto rows = random_rows(37, 11, vocab, width);
        const std::string path = dir.file(fmt::format("rows{}.bin", width));
        rkv::write_sft_rows(path, rows, width);
        CHECK(fs::file_size(path) == size_t(1024 + 37 * 11 * (width + 1)));
        CHECK(rkv::is_sft_file(path));
        const auto back = rkv::read_sft_rows(path, vocab);
        CHECK(back.T == 11);
        CHECK(back.tokens == rows.tokens);
        CHECK(back.mask == rows.mask);

        // A row as inputs and targets: the token after each position, where the mask marks it.
        rkv::SftFile file(path, vocab);
        CHECK(file.rows() == 37);
        CHECK(file.loss_tokens() == std::count(rows.mask.begin(), rows.mask.end(), 1));
        Tokens x(11), y(11);
        for (int64_t r : {0, 17, 36}) {
            file.row(r, x.data(), y.data());
            for (int t = 0; t < 11; t++) {
                CHECK(x[t] == rows.tokens[r * 11 + t]);
                CHECK(y[t] == (t + 1 < 11 && rows.mask[r * 11 + t + 1] ? rows.tokens[r * 11 + t + 1] : -1));
            }
        }
    }
    // Zero rows is a valid file; a shard is not a row file.
    rkv::write_sft_rows(dir.file("empty.bin"), rkv::SftRows{5, {}, {}}, 2);
    CHECK(rkv::SftFile(dir.file("empty.bin"), 256).rows() == 0);
    rkv::write_shard(dir.file("shard.bin"), Tokens{1, 2, 3}, 1);
    CHECK_FALSE(rkv::is_sft_file(dir.file("shard.bin")));
    CHECK_FALSE(rkv::is_sft_file(dir.file("no_such_file.bin")));
}

TEST_CASE("malformed row files throw DataError naming the file and the problem", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    const auto rows = random_rows(10, 8, 256, 7);
    const std::string good = dir.file("good.bin");
    rkv::write_sft_rows(good, rows, 2);
    const std::string content = bytes_of(good);
    const int64_t mask_at = 1024 + 10 * 8 * 2;
    auto fresh = [&](const std::string& name) {
        std::string p = dir.file(name);
        std::ofstream(p, std::ios::binary) << content;
        return p;
    };
    auto refused = [&](const std::string& path, const std::string& problem, int vocab = 256) {
        std::string msg = rkv::test::data_error([&] { rkv::SftFile(path, vocab); });
        CHECK_THAT(msg, Contains(path) && Contains(problem));
    };

    std::string p = dir.file("short.bin");
    std::ofstream(p, std::ios::binary) << content.substr(0, 100);
    refused(p, "too short for a row file header");
    p = dir.file("truncated.bin");
    std::ofstream(p, std::ios::binary) << content.substr(0, content.size() - 3);
    refused(p, "truncated: header says 10 rows of 8 tokens");
    p = dir.file("trailing.bin");
    std::ofstream(p, std::ios::binary) << content << "xy";
    refused(p, "trailing bytes");
    patch_header(p = fresh("magic.bin"), 0, rkv::kShardMagicV1);
    refused(p, "bad magic 20240520");
    patch_header(p = fresh("version.bin"), 1, 2);
    refused(p, "unsupported row file version 2");
    patch_header(p = fresh("width.bin"), 2, 3);
    refused(p, "bytes per token 3");
    patch_header(p = fresh("T.bin"), 3, 1);
    refused(p, "row length 1");
    patch_header(p = fresh("count.bin"), 4, 11);
    refused(p, "truncated");
    patch_header(p = fresh("reserved.bin"), 200, 9);
    refused(p, "header int 200 is 9");
    const uint8_t two = 2, one = 1, zero = 0;
    overwrite(p = fresh("mask_value.bin"), mask_at + 3 * 8 + 5, &two, 1);
    refused(p, "row 3: mask byte 2 at position 5");
    overwrite(p = fresh("mask_first.bin"), mask_at + 4 * 8, &one, 1);
    refused(p, "row 4: mask byte 1 on position 0");
    p = fresh("no_loss.bin");
    for (int t = 0; t < 8; t++) overwrite(p, mask_at + 6 * 8 + t, &zero, 1);
    refused(p, "row 6: no token carries loss");
    const uint16_t big = 300;
    overwrite(p = fresh("vocab.bin"), 1024 + (2 * 8 + 3) * 2, &big, 2);
    refused(p, "token id 300 at row 2 position 3 is out of range for vocab size 256");
    refused(dir.file("missing.bin"), "cannot open");

    // The writer refuses what the reader would, and ids the width cannot hold.
    auto bad = rows;
    bad.mask[8 * 2] = 1;
    CHECK_THAT(rkv::test::data_error([&] { rkv::write_sft_rows(dir.file("w1.bin"), bad, 2); }),
               Contains("row 2: mask byte 1 on position 0"));
    bad = rows;
    bad.tokens[9] = 70000;
    CHECK_THAT(rkv::test::data_error([&] { rkv::write_sft_rows(dir.file("w2.bin"), bad, 2); }),
               Contains("token id 70000 at row 1 position 1 does not fit 2 bytes"));
    CHECK_NOTHROW(rkv::write_sft_rows(dir.file("w3.bin"), bad, 4));
    CHECK_FALSE(fs::exists(dir.file("w1.bin")));
}

TEST_CASE("row file reader: random corruption is refused or read, never a crash", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    const std::string content = [&] {
        rkv::write_sft_rows(dir.file("seed.bin"), random_rows(6, 9, 256, 3), 2);
        return bytes_of(dir.file("seed.bin"));
    }();
    rkv::SplitMix64 rng(99);
    int refused = 0, read = 0;
    for (int i = 0; i < 300; i++) {
        std::string bytes = content;
        const int edits = 1 + int(rng.below(4));
        for (int e = 0; e < edits; e++) {
            // Mostly the header's live fields and the mask, where a change matters.
            const uint64_t at = rng.below(3) == 0 ? rng.below(20) : rng.below(bytes.size());
            bytes[at] = char(rng.below(256));
        }
        if (rng.below(4) == 0) bytes.resize(rng.below(bytes.size() + 8));
        const std::string p = dir.file("fuzz.bin");
        std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
        try {
            rkv::SftRows rows = rkv::read_sft_rows(p, 256);
            CHECK(int64_t(rows.tokens.size()) == rows.rows() * rows.T);
            read++;
        } catch (const rkv::DataError& e) {
            CHECK_THAT(std::string(e.what()), Contains(p));
            refused++;
        }
    }
    CHECK(refused > 50);
    CHECK(read > 0);  // edits to token bytes below the vocabulary leave a valid file
}

TEST_CASE("JSON Lines become one row per example: [bos] prompt completion [eos] padding", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    const std::string f = dir.write("a.jsonl",
                                    "{\"prompt\": \"ab\", \"completion\": \"xyz\", \"id\": 7}\n"
                                    "\n"
                                    "{\"completion\": \"q\", \"prompt\": \"\"}\n");
    rkv::SftOptions o;
    o.T = 8;
    o.bos = 1;
    o.eos = 2;
    o.pad = 3;
    const auto s = rkv::make_sft_rows({f}, bytes, o);
    CHECK(s.counts.examples == 2);
    CHECK(s.counts.train_rows == 2);
    CHECK(s.counts.val_rows == 0);
    CHECK(s.train.tokens == Tokens{1, 'a', 'b', 'x', 'y', 'z', 2, 3,  //
                                   1, 'q', 2, 3, 3, 3, 3, 3});
    CHECK(s.train.mask == std::vector<uint8_t>{0, 0, 0, 1, 1, 1, 1, 0,  //
                                               0, 1, 1, 0, 0, 0, 0, 0});
    CHECK(s.counts.loss_tokens == 6);

    // Without bos, an empty prompt leaves the first completion token unpredicted; a custom field.
    const std::string g = dir.write("b.jsonl", "{\"q\": \"\", \"a\": \"hi\"}\n{\"q\": \"\", \"a\": \"h\"}\n");
    const auto n = rkv::make_sft_rows({g}, bytes, {.T = 4, .prompt_field = "q", .completion_field = "a"});
    CHECK(n.train.tokens == Tokens{'h', 'i', 0, 0});
    CHECK(n.train.mask == std::vector<uint8_t>{0, 1, 0, 0});
    CHECK(n.counts.dropped_no_loss == 1);  // "h" alone: nothing predicts it
}

TEST_CASE("too long: the prompt is cut from its left, a completion that does not fit drops the example",
          "[data][sft]") {
    rkv::test::TempDir dir("sft");
    // Row lengths with bos and eos, T = 8:
    const std::string f = dir.write("long.jsonl",
                                    "{\"prompt\": \"0123456789\", \"completion\": \"abc\"}\n"  // 15: cut 7
                                    "{\"prompt\": \"01\", \"completion\": \"abcd\"}\n"         // 8: fits
                                    "{\"prompt\": \"012\", \"completion\": \"abcdef\"}\n"      // 8 + 1 prompt: drop
                                    "{\"prompt\": \"\", \"completion\": \"abcdefg\"}\n"        // 9: drop
                                    "{\"prompt\": \"0123\", \"completion\": \"abcde\"}\n"      // 11: cut 3
                                    "{\"prompt\": \"x\", \"completion\": \"\"}\n");            // eos alone: kept
    rkv::SftOptions o;
    o.T = 8;
    o.bos = 1;
    o.eos = 2;
    const auto s = rkv::make_sft_rows({f}, bytes, o);
    CHECK(s.counts.examples == 6);
    CHECK(s.counts.train_rows == 4);
    CHECK(s.counts.prompts_truncated == 2);
    CHECK(s.counts.prompt_tokens_cut == 7 + 3);
    CHECK(s.counts.dropped_too_long == 2);
    CHECK(s.counts.dropped_no_loss == 0);
    auto row = [&](int r) { return Tokens(s.train.tokens.begin() + r * 8, s.train.tokens.begin() + (r + 1) * 8); };
    CHECK(row(0) == Tokens{1, '7', '8', '9', 'a', 'b', 'c', 2});
    CHECK(row(1) == Tokens{1, '0', '1', 'a', 'b', 'c', 'd', 2});
    CHECK(row(2) == Tokens{1, '3', 'a', 'b', 'c', 'd', 'e', 2});
    CHECK(row(3) == Tokens{1, 'x', 2, 0, 0, 0, 0, 0});
    CHECK(std::vector<uint8_t>(s.train.mask.begin() + 24, s.train.mask.end()) ==
          std::vector<uint8_t>{0, 0, 1, 0, 0, 0, 0, 0});
    const std::string report = rkv::sft_report(s.counts);
    CHECK_THAT(report, Contains("6 examples: 4 train rows") && Contains("2 prompts truncated") &&
                           Contains("(10 tokens cut)") && Contains("2 with a completion too long"));
}

TEST_CASE("the validation split takes the given share of the examples, spread evenly", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    std::string text;
    for (int i = 0; i < 100; i++) text += fmt::format("{{\"prompt\": \"p\", \"completion\": \"{}\"}}\n", i);
    const std::string f = dir.write("many.jsonl", text);
    rkv::SftOptions o;
    o.T = 6;
    o.val_fraction = 0.1;
    const auto s = rkv::make_sft_rows({f, f}, bytes, o);  // two files: one stream of 200 examples
    CHECK(s.counts.val_rows == 20);
    CHECK(s.counts.train_rows == 180);
    // Every tenth example: 9, 19, ... of each file.
    for (int64_t r = 0; r < 20; r++) {
        const std::string completion = std::to_string((r * 10 + 9) % 100);
        CHECK(Tokens(s.val.tokens.begin() + r * 6 + 1, s.val.tokens.begin() + r * 6 + 1 + completion.size()) ==
              bytes(completion));
    }
    const auto paths = rkv::write_sft_splits(dir.path.string(), "chat", s, 256);
    REQUIRE(paths == std::vector<std::string>{dir.file("chat_train.bin"), dir.file("chat_val.bin")});
    CHECK(rkv::read_sft_rows(paths[1], 256).tokens == s.val.tokens);
    CHECK(rkv::read_sft_rows(paths[0], 256).mask == s.train.mask);
    o.val_fraction = 0;
    CHECK(rkv::write_sft_splits(dir.path.string(), "noval", rkv::make_sft_rows({f}, bytes, o), 256) ==
          std::vector<std::string>{dir.file("noval_train.bin")});
    CHECK(bytes_of(dir.file("chat_train.bin")).substr(8, 4) == std::string("\2\0\0\0", 4));  // 2 bytes per token
    rkv::write_sft_splits(dir.path.string(), "wide", s, 70000);
    CHECK(bytes_of(dir.file("wide_train.bin")).substr(8, 4) == std::string("\4\0\0\0", 4));
}

TEST_CASE("bad JSON Lines stop the conversion naming file:line", "[data][sft]") {
    rkv::test::TempDir dir("sft");
    rkv::SftOptions o;
    o.T = 8;
    const std::string ok = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
    auto refused = [&](const std::string& line, const std::string& problem) {
        const std::string f = dir.write("bad.jsonl", ok + ok + line + "\n" + ok);
        CHECK_THAT(rkv::test::data_error([&] { rkv::make_sft_rows({f}, bytes, o); }), Contains(f + ":3: " + problem));
    };
    refused("{\"prompt\": \"a\", \"completion\": ", "not JSON");
    refused("[1, 2]", "a JSON array, not an object");
    refused("{\"prompt\": \"a\"}", "no \"completion\" field");
    refused("{\"prompt\": 5, \"completion\": \"b\"}", "\"prompt\" is number, not a string");
    CHECK_THAT(rkv::test::data_error([&] { rkv::make_sft_rows({dir.file("none.jsonl")}, bytes, o); }),
               Contains(dir.file("none.jsonl") + ": cannot open"));
    o.T = 1;
    CHECK_THAT(rkv::test::data_error([&] { rkv::make_sft_rows({}, bytes, o); }), Contains("row length 1"));
    o.T = 8;
    o.val_fraction = 1.5;
    CHECK_THAT(rkv::test::data_error([&] { rkv::make_sft_rows({}, bytes, o); }), Contains("validation fraction 1.5"));
}

namespace {

// Row files of R random rows of T tokens (vocab 256), split over several files.
struct RowCorpus {
    rkv::test::TempDir dir{"sft"};
    rkv::SftRows all;
    RowCorpus(std::vector<int64_t> rows_per_file, int T) {
        all.T = T;
        for (size_t f = 0; f < rows_per_file.size(); f++) {
            auto rows = random_rows(rows_per_file[f], T, 256, 100 + f);
            rkv::write_sft_rows(dir.file(fmt::format("rows_{:02}.bin", f)), rows, f % 2 ? 4 : 2);
            all.tokens.insert(all.tokens.end(), rows.tokens.begin(), rows.tokens.end());
            all.mask.insert(all.mask.end(), rows.mask.begin(), rows.mask.end());
        }
    }
    rkv::LoaderOptions options(int B, int T, int rank = 0, int world = 1, bool shuffle = false, uint64_t seed = 0) {
        return {dir.file("rows_*.bin"), B, T, rank, world, shuffle, seed, 256};
    }
    // Row r as (inputs, targets), computed here from the tokens and the mask.
    std::pair<Tokens, Tokens> row(int64_t r) const {
        const int T = all.T;
        Tokens x(all.tokens.begin() + r * T, all.tokens.begin() + (r + 1) * T), y(T, -1);
        for (int t = 0; t + 1 < T; t++)
            if (all.mask[r * T + t + 1]) y[t] = x[t + 1];
        return {x, y};
    }
};

// The rows a batch holds, identified by matching the corpus.
std::vector<int64_t> served_rows(rkv::DataLoader& loader, const RowCorpus& c) {
    const int B = loader.options().B, T = loader.options().T;
    Tokens x(B * T), y(B * T);
    loader.next_batch(x.data(), y.data());
    std::vector<int64_t> out;
    for (int b = 0; b < B; b++) {
        const Tokens xb(x.begin() + b * T, x.begin() + (b + 1) * T), yb(y.begin() + b * T, y.begin() + (b + 1) * T);
        int64_t found = -1;
        for (int64_t r = 0; r < c.all.rows() && found < 0; r++)
            if (c.row(r) == std::pair{xb, yb}) found = r;
        REQUIRE(found >= 0);
        out.push_back(found);
    }
    return out;
}

}  // namespace

TEST_CASE("the loader serves row files: B rows per batch, -1 where no loss, shuffled by seed", "[data][sft]") {
    RowCorpus c({7, 0, 12, 4}, 6);  // 23 rows
    const int B = 2, T = 6;
    rkv::DataLoader loader(c.options(B, T));
    CHECK(loader.rows());
    CHECK(loader.batches_per_epoch() == 11);
    CHECK(loader.num_tokens() == 23 * 6);
    CHECK(loader.summary() ==
          fmt::format("23 rows of 6 tokens, {} carry loss", std::count(c.all.mask.begin(), c.all.mask.end(), 1)));
    for (int64_t k = 0; k < 11; k++) CHECK(served_rows(loader, c) == std::vector<int64_t>{2 * k, 2 * k + 1});
    CHECK(loader.state() == rkv::LoaderState{1, 0});
    CHECK(served_rows(loader, c) == std::vector<int64_t>{0, 1});

    // Shuffled: each epoch serves distinct rows, the same for the same seed, new per epoch and seed;
    // two ranks together serve what one rank serves in two micro-batches.
    auto epochs = [&](uint64_t seed, int world) {
        std::vector<rkv::DataLoader> ranks;
        for (int r = 0; r < world; r++) ranks.emplace_back(c.options(B, T, r, world, true, seed));
        std::vector<std::vector<int64_t>> out(3);
        for (int e = 0; e < 3; e++)
            for (int64_t k = 0; k < 22 / (B * world); k++)
                for (auto& rank : ranks)
                    for (int64_t r : served_rows(rank, c)) out[e].push_back(r);
        return out;
    };
    const auto a = epochs(5, 1);
    CHECK(a == epochs(5, 1));
    const auto two = epochs(5, 2);  // epochs of 20 rows: 23 / (B * world) batches of 4
    CHECK(std::vector<int64_t>(a[0].begin(), a[0].begin() + 20) == two[0]);
    CHECK(a != epochs(6, 1));
    CHECK(a[0] != a[1]);
    for (const auto& e : a) CHECK(std::set<int64_t>(e.begin(), e.end()).size() == e.size());

    // Restore: the next batch is the one served at that state.
    rkv::DataLoader run(c.options(B, T, 0, 1, true, 5)), resumed(c.options(B, T, 0, 1, true, 5));
    for (int i = 0; i < 14; i++) served_rows(run, c);
    resumed.restore(run.state());
    CHECK(served_rows(resumed, c) == served_rows(run, c));
}

TEST_CASE("the loader refuses mixed kinds, a row length that is not T, and too few rows", "[data][sft]") {
    RowCorpus c({5}, 6);
    rkv::write_shard(c.dir.file("rows_zz.bin"), Tokens(100, 7), 1);
    CHECK_THAT(rkv::test::data_error([&] { rkv::DataLoader(c.options(1, 6)); }),
               Contains(c.dir.file("rows_zz.bin") + ": not a fine-tuning row file among the row files"));
    fs::remove(c.dir.file("rows_zz.bin"));
    rkv::write_shard(c.dir.file("rows_00a.bin"), Tokens(100, 7), 1);   // sorts after rows_00.bin
    fs::rename(c.dir.file("rows_00.bin"), c.dir.file("rows_01.bin"));  // now the shard is first
    CHECK_THAT(rkv::test::data_error([&] { rkv::DataLoader(c.options(1, 6)); }),
               Contains(c.dir.file("rows_01.bin") + ": a fine-tuning row file among the token shards"));
    fs::remove(c.dir.file("rows_00a.bin"));
    CHECK_THAT(rkv::test::data_error([&] { rkv::DataLoader(c.options(1, 8)); }),
               Contains("rows of 6 tokens, but the sequence length is 8"));
    CHECK_THAT(rkv::test::data_error([&] { rkv::DataLoader(c.options(3, 6, 0, 2)); }),
               Contains("5 rows in 1 file(s), too few for one batch of B*world = 3x2 rows"));
    rkv::LoaderOptions small = c.options(1, 6);
    small.vocab_size = 10;
    CHECK_THAT(rkv::test::data_error([&] { rkv::DataLoader{small}; }), Contains("out of range for vocab size 10"));
}

namespace {

// A tokenizer for a 32-token model: bos 1, eos 2, pad 0, letters 'a'.. from 3 on.
constexpr int32_t kBos = 1, kEos = 2;
std::vector<int32_t> letters(std::string_view s) {
    std::vector<int32_t> out;
    for (char ch : s) out.push_back(3 + (ch - 'a') % 29);
    return out;
}

}  // namespace

TEST_CASE("a masked batch's loss is the loss over the completion tokens alone; prompt and padding carry none",
          "[data][sft][model]") {
    const rkv::ModelConfig cfg = rkv::test::tiny_config("llama3");  // vocab 32, T up to 8
    const int B = 3, T = 8, V = cfg.vocab_size;
    const std::vector<std::pair<std::string, std::string>> examples = {{"abc", "de"}, {"f", "ghijk"}, {"lmnop", ""}};
    rkv::test::TempDir dir("sft");
    std::string jsonl;
    for (auto& [p, c] : examples) jsonl += fmt::format("{{\"prompt\": \"{}\", \"completion\": \"{}\"}}\n", p, c);
    rkv::SftOptions o;
    o.T = T;
    o.bos = kBos;
    o.eos = kEos;
    auto splits = rkv::make_sft_rows({dir.write("ex.jsonl", jsonl)}, letters, o);
    rkv::write_sft_splits(dir.path.string(), "ex", splits, V);
    o.pad = 9;  // the same examples padded with another token
    rkv::write_sft_splits(dir.path.string(), "pad9", rkv::make_sft_rows({dir.file("ex.jsonl")}, letters, o), V);

    auto batch = [&](const std::string& name) {
        rkv::DataLoader loader({dir.file(name + "_train.bin"), B, T, 0, 1, false, 0, V});
        std::pair<Tokens, Tokens> xy{Tokens(B * T), Tokens(B * T)};
        loader.next_batch(xy.first.data(), xy.second.data());
        return xy;
    };
    const auto [x, y] = batch("ex");
    const auto [x9, y9] = batch("pad9");
    REQUIRE(x != x9);

    std::mt19937_64 rng(std::random_device{}());
    rkv::CpuOps<double> ops;
    rkv::Model<double> model(cfg, ops, B, T);
    rkv::test::random_params(model.params, model.table, rng);
    const rkv::Route route = rkv::all_own(cfg.num_hidden_layers);

    // Independently: -log softmax(logits at position j - 1)[token j] over each example's
    // completion tokens and eos, positions counted from the example's text.
    model.forward(x.data(), nullptr, route);
    const std::vector<double> logits = model.logits(T);  // (B, T, V)
    double sum = 0;
    int count = 0;
    for (int b = 0; b < B; b++) {
        const auto& [p, c] = examples[b];
        std::vector<int32_t> row = {kBos};
        for (int32_t t : letters(p)) row.push_back(t);
        const int first = int(row.size());
        for (int32_t t : letters(c)) row.push_back(t);
        row.push_back(kEos);
        for (int j = first; j < int(row.size()); j++) {
            const double* l = logits.data() + (size_t(b) * T + j - 1) * V;
            double m = *std::max_element(l, l + V), z = 0;
            for (int v = 0; v < V; v++) z += std::exp(l[v] - m);
            sum += m + std::log(z) - l[row[j]];
            count++;
        }
    }
    REQUIRE(count == 3 + 6 + 1);
    const double loss = model.forward(x.data(), y.data(), route);
    CHECK(loss == Approx(sum / count).epsilon(1e-12));

    // Other padding tokens: the same loss, bitwise (positions after the example cannot reach it).
    CHECK(model.forward(x9.data(), y9.data(), route) == loss);

    // No gradient from a position whose target is a prompt or padding token, some from every other.
    model.zero_grad();
    CHECK(model.forward_backward(x.data(), y.data(), route) == Approx(loss).epsilon(1e-12));
    const std::vector<double> dlogits = model.logits(T);
    for (int i = 0; i < B * T; i++) {
        const bool any = std::any_of(dlogits.begin() + size_t(i) * V, dlogits.begin() + size_t(i + 1) * V,
                                     [](double d) { return d != 0; });
        INFO("position " << i << " target " << y[i]);
        CHECK(any == (y[i] >= 0));
    }
}
