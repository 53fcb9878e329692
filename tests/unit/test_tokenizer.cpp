// The tokenizer.json reader against the Hugging Face `tokenizers` package: ids and decoded text
// of every line of the fixtures scripts/make_tokenizer_fixtures.py wrote with that package, then
// files of kinds not supported, malformed files and damaged copies of good ones.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data/hf_tokenizer.h"
#include "data/shard.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kFixtures = fs::path(RKV_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers";
const char* const kNames[] = {"bytelevel_llama3", "bytelevel_gpt2", "bytelevel_split", "bytelevel_nfc",
                              "spm_prepend",      "spm_metaspace",  "spm_split"};

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A file under the test's temporary folder holding text.
std::string write_temp(const std::string& name, const std::string& text) {
    const fs::path dir = fs::temp_directory_path() / "rkv_test_tokenizer";
    fs::create_directories(dir);
    const fs::path path = dir / name;
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
}

// The error loading a tokenizer.json with this text gives ("" when it loads).
std::string load_error(const json& spec) {
    const std::string path = write_temp("bad.json", spec.dump());
    try {
        rkv::HfTokenizer tok(path);
        return "";
    } catch (const rkv::DataError& e) {
        return e.what();
    }
}

}  // namespace

TEST_CASE("tokenizer.json: ids and text equal the tokenizers package's on every line", "[tokenizer]") {
    for (const char* name : kNames) {
        DYNAMIC_SECTION(name) {
            const rkv::HfTokenizer tok((kFixtures / (std::string(name) + ".json")).string());
            const json expected = json::parse(slurp(kFixtures / (std::string(name) + ".expected.json")));
            REQUIRE(expected.at("lines").size() >= 30);
            for (const json& line : expected["lines"]) {
                const std::string text = line.at("text");
                INFO(name << ": '" << text << "'");
                const auto ids = line.at("ids").get<std::vector<int32_t>>();
                CHECK(tok.encode(text) == ids);
                CHECK(tok.encode(text, true) == line.at("ids_special").get<std::vector<int32_t>>());
                CHECK(tok.decode(ids) == line.at("decoded").get<std::string>());
                CHECK(tok.decode(ids, true) == line.at("decoded_skip").get<std::string>());
            }
            for (const json& d : expected.at("decodes")) {
                const auto ids = d.at("ids").get<std::vector<int32_t>>();
                INFO(name << ": decode " << d.at("ids").dump());
                CHECK(tok.decode(ids) == d.at("decoded").get<std::string>());
                CHECK(tok.decode(ids, true) == d.at("decoded_skip").get<std::string>());
            }
        }
    }
}

TEST_CASE("tokenizer.json: the post-processor's BOS, vocabulary and special tokens", "[tokenizer]") {
    const rkv::HfTokenizer llama((kFixtures / "bytelevel_llama3.json").string());
    REQUIRE(llama.token_id("<|begin_of_text|>").has_value());
    CHECK(std::vector<int32_t>(llama.prefix_ids().begin(), llama.prefix_ids().end()) ==
          std::vector<int32_t>{*llama.token_id("<|begin_of_text|>")});
    CHECK(llama.suffix_ids().empty());
    CHECK(llama.is_special(*llama.token_id("<|eot_id|>")));
    CHECK(!llama.is_special(*llama.token_id("zork")));
    CHECK(llama.vocab_size() == 1503);
    CHECK(llama.token(*llama.token_id("<|eot_id|>")) == "<|eot_id|>");
    const rkv::HfTokenizer gpt2((kFixtures / "bytelevel_gpt2.json").string());
    CHECK(gpt2.prefix_ids().empty());
    const rkv::HfTokenizer spm((kFixtures / "spm_prepend.json").string());
    CHECK(std::vector<int32_t>(spm.prefix_ids().begin(), spm.prefix_ids().end()) == std::vector<int32_t>{1});
}

TEST_CASE("tokenizer.json: threads encode alike and text not in UTF-8 reads as U+FFFD", "[tokenizer]") {
    const rkv::HfTokenizer tok((kFixtures / "bytelevel_llama3.json").string());
    const std::string text = slurp(kFixtures / "text.txt");
    const std::vector<int32_t> want = tok.encode(text);
    std::vector<std::vector<int32_t>> got(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) threads.emplace_back([&, t] { got[size_t(t)] = tok.encode(text); });
    for (auto& t : threads) t.join();
    for (const auto& g : got) CHECK(g == want);
    CHECK(tok.decode(tok.encode("a\xff"
                                "b")) ==
          "a\xEF\xBF\xBD"
          "b");
    CHECK(tok.encode("").empty());
}

TEST_CASE("tokenizer.json: decoding a stream of ids gives decode's text, whole characters only", "[tokenizer]") {
    for (const char* name : kNames) {
        const rkv::HfTokenizer tok((kFixtures / (std::string(name) + ".json")).string());
        const std::string text = slurp(kFixtures / "text.txt");
        const std::vector<int32_t> ids = tok.encode(text);
        rkv::DecodeStream stream(tok, false);
        std::string streamed;
        for (int32_t id : ids) {
            const std::string piece = stream.push(id);
            CHECK(piece.find("\xEF\xBF\xBD") == std::string::npos);
            streamed += piece;
        }
        INFO(name);
        CHECK(streamed == tok.decode(ids));
    }
}

TEST_CASE("tokenizer.json: kinds not supported are refused by name", "[tokenizer]") {
    const json good = json::parse(slurp(kFixtures / "bytelevel_llama3.json"));
    const json spm = json::parse(slurp(kFixtures / "spm_prepend.json"));
    struct Case {
        json spec;
        std::string words;
    };
    std::vector<Case> cases;
    auto with = [](json spec, const json::json_pointer& at, const json& value) {
        spec[at] = value;
        return spec;
    };
    cases.push_back({with(good, "/model/type"_json_pointer, "WordPiece"), "model type 'WordPiece'"});
    cases.push_back({with(good, "/model/type"_json_pointer, "Unigram"), "model type 'Unigram'"});
    cases.push_back(
        {with(good, "/normalizer"_json_pointer, {{"type", "BertNormalizer"}}), "normalizer type 'BertNormalizer'"});
    cases.push_back(
        {with(good, "/pre_tokenizer"_json_pointer, {{"type", "Whitespace"}}), "pre-tokenizer type 'Whitespace'"});
    cases.push_back({with(good, "/decoder"_json_pointer, {{"type", "WordPiece"}}), "decoder type 'WordPiece'"});
    cases.push_back({with(good, "/post_processor"_json_pointer, {{"type", "RobertaProcessing"}}),
                     "post-processor type 'RobertaProcessing'"});
    cases.push_back(
        {with(good, "/pre_tokenizer/pretokenizers/0/pattern"_json_pointer, {{"Regex", "(?<=a+)b"}}), "regex"});
    cases.push_back({with(good, "/model/dropout"_json_pointer, 0.1), "dropout"});
    cases.push_back({with(good, "/model/merges/0"_json_pointer, json::array({"nope", "t"})), "merge 0"});
    cases.push_back({with(good, "/model/vocab"_json_pointer, json::array()), "vocab"});
    cases.push_back({with(spm, "/model/unk_token"_json_pointer, "<missing>"), "unk_token"});
    cases.push_back({with(good, "/pre_tokenizer/pretokenizers/0/behavior"_json_pointer, "Sideways"), "Sideways"});
    cases.push_back({json::array(), "top level"});
    json nested = {{"type", "Fuse"}};
    for (int i = 0; i < 1000; i++) {
        json outer = {{"type", "Sequence"}, {"decoders", json::array()}};
        outer["decoders"].push_back(std::move(nested));
        nested = std::move(outer);
    }
    cases.push_back({with(good, "/decoder"_json_pointer, nested), "nested too deeply"});
    for (const Case& c : cases) {
        const std::string error = load_error(c.spec);
        INFO(error);
        CHECK(error.find("bad.json") != std::string::npos);
        CHECK(error.find(c.words) != std::string::npos);
    }
    CHECK_THROWS_AS(rkv::HfTokenizer("/nonexistent/tokenizer.json"), rkv::DataError);
}

TEST_CASE("tokenizer.json: truncated or damaged files give an error, never a crash", "[tokenizer]") {
    const std::string good = slurp(kFixtures / "spm_prepend.json");
    std::mt19937 rng(14);
    int loaded = 0, refused = 0;
    for (int trial = 0; trial < 300; trial++) {
        std::string text = good;
        if (trial % 3 == 0) {
            text.resize(std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng));
        } else {
            for (int k = 0; k < 1 + trial % 5; k++)
                text[std::uniform_int_distribution<size_t>(0, text.size() - 1)(rng)] =
                    "\"{}[]:,0 -1ab\\"[std::uniform_int_distribution<int>(0, 14)(rng)];
        }
        const std::string path = write_temp("damaged.json", text);
        try {
            rkv::HfTokenizer tok(path);
            (void)tok.decode(tok.encode("hello world <s> caf\xC3\xA9 \xF0\x9F\x98\x80"));
            loaded++;
        } catch (const rkv::DataError& e) {
            CHECK(std::string(e.what()).find("damaged.json") != std::string::npos);
            refused++;
        }
    }
    CHECK(refused > 100);
    CHECK(loaded + refused == 300);
}

TEST_CASE("tokenizer.json: long runs and random characters round-trip through encode and decode", "[tokenizer]") {
    // Long runs are single pieces (and the look-ahead \s+(?!\S) over 200k spaces needs a large JIT
    // stack); random code points from every plane test byte-level bytes and byte fallback.
    std::mt19937 rng(7);
    const auto run = [](char c, size_t n, const char* after) { return std::string("x").append(n, c).append(after); };
    std::vector<std::string> texts = {run(' ', 200000, "y"), run('a', 100000, ""), run('7', 50000, ""),
                                      run('\n', 30000, "z")};
    for (int t = 0; t < 20; t++) {
        std::string s = "x";
        for (int i = 0; i < 200; i++) {
            uint32_t cp = std::uniform_int_distribution<uint32_t>(1, 0x10FFFF)(rng);
            if (cp >= 0xD800 && cp < 0xE000) cp = 'q';  // surrogates are not characters
            if (cp < 0x80)
                s += char(cp);
            else if (cp < 0x800)
                s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
            else if (cp < 0x10000)
                s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
            else
                s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F)),
                    s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
        }
        texts.push_back(s);
    }
    // Not spm_metaspace: its Metaspace decoder (as the reference's) leaves <0xNN> tokens as they are.
    for (const char* name : {"bytelevel_llama3", "bytelevel_gpt2", "spm_prepend"}) {
        const rkv::HfTokenizer tok((kFixtures / (std::string(name) + ".json")).string());
        for (const std::string& text : texts) {
            INFO(name << ": a text of " << text.size() << " bytes starting " << text.substr(0, 20));
            CHECK(tok.decode(tok.encode(text)) == text);
        }
    }
}
