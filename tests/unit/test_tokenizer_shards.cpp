// Documents -> shards with a tokenizer.json (data/text_shards.h, what ./tokenize_text runs): the
// ids read back are the ids written, uint16 or uint32 by the vocabulary, each document after the
// model's start token, validation split sizes, and the same stream on any number of threads.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "data/hf_tokenizer.h"
#include "data/shard.h"
#include "data/text_shards.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(RKV_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers";

std::vector<int32_t> read_all(const std::vector<std::string>& paths, int vocab) {
    std::vector<int32_t> all;
    for (const auto& p : paths) {
        const auto t = rkv::read_shard(p, vocab);
        all.insert(all.end(), t.begin(), t.end());
    }
    return all;
}

const std::vector<std::string> kDocs = {"The first document.\nIt has two lines.",
                                        "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD 123", "",
                                        "the last one <|eot_id|> with a special token"};

}  // namespace

TEST_CASE("text shards: each document after the model's start token, in order on any threads", "[tokenizer]") {
    const rkv::HfTokenizer tok((kFixtures / "bytelevel_llama3.json").string());
    const rkv::DocumentTokens around = rkv::document_tokens(tok);
    REQUIRE(around.start == std::vector<int32_t>{*tok.token_id("<|begin_of_text|>")});
    CHECK(around.end.empty());
    std::vector<std::string_view> docs;
    for (int rep = 0; rep < 300; rep++)  // several chunks of documents
        for (const auto& d : kDocs) docs.push_back(d);
    std::vector<int32_t> want;
    for (auto d : docs) {
        want.push_back(around.start[0]);
        for (int32_t id : tok.encode(d)) want.push_back(id);
    }
    CHECK(rkv::encode_documents(tok, docs, around, 1) == want);
    CHECK(rkv::encode_documents(tok, docs, around, 3) == want);

    const rkv::DocumentTokens ended = rkv::document_tokens(tok, "<|end_of_text|>", "<|eot_id|>");
    CHECK(ended.start == std::vector<int32_t>{*tok.token_id("<|end_of_text|>")});
    CHECK(ended.end == std::vector<int32_t>{*tok.token_id("<|eot_id|>")});
    CHECK_THROWS_AS(rkv::document_tokens(tok, "<|no such token|>"), rkv::DataError);

    // GPT-2: no BOS in the post-processor, <|endoftext|> starts documents as in llm.c; Llama 2 style: <s>.
    const rkv::HfTokenizer gpt2((kFixtures / "bytelevel_gpt2.json").string());
    CHECK(rkv::document_tokens(gpt2).start == std::vector<int32_t>{*gpt2.token_id("<|endoftext|>")});
    const rkv::HfTokenizer spm((kFixtures / "spm_prepend.json").string());
    CHECK(rkv::document_tokens(spm).start == std::vector<int32_t>{*spm.token_id("<s>")});
}

TEST_CASE("text shards: tokenizer_config.json's bos_token starts documents when the post-processor has none",
          "[tokenizer]") {
    rkv::test::TempDir dir("text_shards");
    fs::copy_file(kFixtures / "bytelevel_gpt2.json", dir.path / "tokenizer.json");
    // A bos_token that is an ordinary vocabulary token, to tell it from the <|endoftext|> default.
    std::ofstream(dir.path / "tokenizer_config.json") << R"({"bos_token": {"content": "the"}})";
    const rkv::HfTokenizer tok((dir.path / "tokenizer.json").string());
    CHECK(rkv::document_tokens(tok).start == std::vector<int32_t>{*tok.token_id("the")});
}

TEST_CASE("text shards: an output folder inside the source tree is refused, but under runs/", "[tokenizer]") {
    rkv::test::TempDir dir("text_shards");
    const std::string src = (dir.path / "repo").string();
    fs::create_directories(dir.path / "repo" / "data");
    CHECK(!rkv::out_dir_allowed(src + "/data/shards", src));
    CHECK(!rkv::out_dir_allowed(src, src));
    CHECK(!rkv::out_dir_allowed(src + "/runs/../data", src));
    CHECK(rkv::out_dir_allowed(src + "/runs/out/corpus", src));
    CHECK(rkv::out_dir_allowed((dir.path / "elsewhere").string(), src));
    CHECK(rkv::out_dir_allowed(src + "/../repo-shards", src));
}

TEST_CASE("text shards: round trip, validation sizes, uint16 or uint32 by the vocabulary", "[tokenizer]") {
    rkv::test::TempDir dir("text_shards");
    std::vector<int32_t> tokens(1000);
    for (int i = 0; i < 1000; i++) tokens[size_t(i)] = (i * 7919) % 1503;

    rkv::SplitOptions o;
    o.dir = (dir.path / "frac").string();
    o.val_frac = 0.1;
    o.shard_tokens = 300;
    auto files = rkv::write_splits(tokens, 1503, o);
    CHECK(files.version == 1);
    CHECK(files.val_tokens == 100);
    CHECK(files.train_tokens == 900);
    CHECK(files.train.size() == 3);  // 300 + 300 + 300
    CHECK(files.val.size() == 1);
    std::vector<int32_t> back = read_all(files.train, 1503);
    const std::vector<int32_t> tail = read_all(files.val, 1503);
    back.insert(back.end(), tail.begin(), tail.end());  // val is the stream's end
    CHECK(back == tokens);

    o.dir = (dir.path / "first").string();
    o.val_tokens = 250;
    files = rkv::write_splits(tokens, 1503, o);
    CHECK(files.val_tokens == 250);
    CHECK(files.train_tokens == 750);
    std::vector<int32_t> front = read_all(files.val, 1503);  // val is the stream's start
    const std::vector<int32_t> rest = read_all(files.train, 1503);
    front.insert(front.end(), rest.begin(), rest.end());
    CHECK(front == tokens);

    // A vocabulary over 65536 needs uint32 tokens: version 7, magic 20240801.
    tokens.back() = 151000;
    o.dir = (dir.path / "wide").string();
    o.val_tokens = 0;
    files = rkv::write_splits(tokens, 151936, o);
    CHECK(files.version == 7);
    CHECK(files.val.empty());
    CHECK(read_all(files.train, 151936) == tokens);
    std::ifstream in(files.train[0], std::ios::binary);
    int32_t header[3];
    in.read(reinterpret_cast<char*>(header), sizeof header);
    CHECK(header[0] == rkv::kShardMagicV7);
    CHECK(header[1] == 7);
    CHECK(rkv::shard_version(65536) == 1);
    CHECK(rkv::shard_version(65537) == 7);
}
