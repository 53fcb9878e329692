// The built-in corpus: deterministic per seed, byte tokens, independent splits,
// and questions whose answers are the facts stated earlier in the same document.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "data/corpus.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace fs = std::filesystem;
using rkv::CorpusSplit;

TEST_CASE("built-in corpus is deterministic per seed and split", "[data]") {
    auto a = rkv::builtin_corpus(1, CorpusSplit::train, 100000);
    REQUIRE(a.size() == 100000);
    CHECK(a == rkv::builtin_corpus(1, CorpusSplit::train, 100000));
    CHECK(a != rkv::builtin_corpus(2, CorpusSplit::train, 100000));
    CHECK(a != rkv::builtin_corpus(1, CorpusSplit::val, 100000));
    // Shorter requests are prefixes of the same stream.
    auto head = rkv::builtin_corpus(1, CorpusSplit::train, 3000);
    CHECK(std::equal(head.begin(), head.end(), a.begin()));
    for (int32_t t : a) REQUIRE((t >= 0 && t < rkv::kByteVocab));

    // Text with structure: far below the 8 bits of uniform bytes.
    double h = rkv::unigram_entropy(a, rkv::kByteVocab);
    CHECK(h > 2.0);
    CHECK(h < 3.5);
    std::vector<int32_t> uniform = {0, 1, 2, 3, 0, 1, 2, 3};
    CHECK(rkv::unigram_entropy(uniform, 4) == Approx(std::log(4.0)));
}

TEST_CASE("built-in corpus bytes are pinned across compilers and platforms", "[data]") {
    // FNV-1a of the first 1 MB: runs and their logs rely on this exact text. Change the
    // value only with a deliberate change to the generator.
    std::string text = rkv::builtin_corpus_text(0, CorpusSplit::train, 1 << 20);
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
    CHECK(h == 0x14c486b160be01c8ull);
}

TEST_CASE("corpus documents ask what they stated earlier", "[data]") {
    std::string text = rkv::builtin_corpus_text(5, CorpusSplit::val, 200000);
    REQUIRE(text[0] == char(rkv::kDocStart));
    CHECK(text.find("again: ") != std::string::npos);
    CHECK(text.find("list: ") != std::string::npos);

    // Every "key of NAME? DDDD." answers a "the key of NAME is DDDD." earlier in its
    // document; the same for passwords. A copied span ("again: ...") may cut an answer
    // short, so the stated value need only start with it. Documents begin at kDocStart.
    const std::regex question(R"((key|password) of (\w+)\? (\w+)\.)");
    int asked = 0;
    for (size_t begin = 0, end; begin < text.size(); begin = end) {
        end = std::min(text.find(char(rkv::kDocStart), begin + 1), text.size());
        std::string doc = text.substr(begin, end - begin);
        for (std::sregex_iterator it(doc.begin(), doc.end(), question), last; it != last; ++it) {
            const std::smatch& m = *it;
            std::string stated = fmt::format("the {} of {} is ", m[1].str(), m[2].str());
            size_t at = doc.find(stated);
            INFO(m.str(0));
            REQUIRE(at < size_t(m.position(0)));
            CHECK(doc.compare(at + stated.size(), m[3].length(), m[3].str()) == 0);
            asked++;
        }
    }
    CHECK(asked > 100);
}

TEST_CASE("write_builtin_corpus writes version 1 shards of the generator's tokens", "[data]") {
    fs::path dir = fs::temp_directory_path() / fmt::format("rkv_test_corpus_{}", ::getpid());
    auto files = rkv::write_builtin_corpus((dir / "sub").string(), 9, 20000, 5000);
    CHECK(rkv::Shard(files.train, rkv::kByteVocab).version() == 1);
    CHECK(rkv::read_shard(files.train, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::train, 20000));
    CHECK(rkv::read_shard(files.val, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::val, 5000));
    fs::remove_all(dir);
}

TEST_CASE("interleave_documents spreads one stream's documents evenly through another's", "[data]") {
    // base: 6 documents; extra: 2 documents, the j-th before base document (j + 1) * 6 / 3 = 2, 4.
    const std::vector<int32_t> base = {0, 1, 1, 0, 2, 0, 3, 3, 3, 0, 4, 0, 5, 0, 6};
    const std::vector<int32_t> extra = {0, 70, 0, 80, 80};
    CHECK(rkv::interleave_documents(base, extra) ==
          std::vector<int32_t>{0, 1, 1, 0, 2, 0, 70, 0, 3, 3, 3, 0, 4, 0, 80, 80, 0, 5, 0, 6});
    CHECK(rkv::interleave_documents(base, {}) == base);
    // More extra documents than base ones: some go before the first, and none is lost.
    const std::vector<int32_t> one = {0, 1};
    CHECK(rkv::interleave_documents(one, extra) == std::vector<int32_t>{0, 70, 0, 80, 80, 0, 1});
}

TEST_CASE("write_builtin_corpus mixes documents into the training split only", "[data]") {
    fs::path dir = fs::temp_directory_path() / fmt::format("rkv_test_corpus_mix_{}", ::getpid());
    const std::vector<int32_t> extra = {0, 'a', 'b', 0, 'c'};
    auto files = rkv::write_builtin_corpus(dir.string(), 9, 20000, 5000, extra);
    const auto train = rkv::builtin_corpus(9, CorpusSplit::train, 20000);
    CHECK(rkv::read_shard(files.train, rkv::kByteVocab) == rkv::interleave_documents(train, extra));
    CHECK(rkv::read_shard(files.val, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::val, 5000));
    fs::remove_all(dir);
}

TEST_CASE("cached_builtin_corpus writes once per parameters into RKV_CACHE_DIR and cleans a dead writer's temporary",
          "[data]") {
    const fs::path cache = fs::temp_directory_path() / fmt::format("rkv_test_corpus_cache_{}", ::getpid());
    const char* before = std::getenv("RKV_CACHE_DIR");
    const std::string saved = before ? before : "";
    ::setenv("RKV_CACHE_DIR", cache.c_str(), 1);
    CHECK(rkv::cache_dir() == cache.string());

    const auto files = rkv::cached_builtin_corpus(9, 20000, 5000);
    CHECK(fs::path(files.train).parent_path().parent_path() == cache);
    CHECK(rkv::read_shard(files.train, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::train, 20000));
    CHECK(rkv::read_shard(files.val, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::val, 5000));

    // The same parameters: the same files, not written again; others: another directory.
    const auto written = fs::last_write_time(files.train);
    const auto again = rkv::cached_builtin_corpus(9, 20000, 5000);
    CHECK(again.train == files.train);
    CHECK(fs::last_write_time(files.train) == written);
    CHECK(fs::path(rkv::cached_builtin_corpus(10, 20000, 5000).train).parent_path() !=
          fs::path(files.train).parent_path());
    CHECK(fs::path(rkv::cached_builtin_corpus(9, 20001, 5000).train).parent_path() !=
          fs::path(files.train).parent_path());

    // A writer killed before its rename (a process that no longer runs) left a temporary;
    // a live one's is left alone. A damaged shard is written again.
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    ::waitpid(child, nullptr, 0);
    char host[256] = {};
    REQUIRE(::gethostname(host, sizeof(host) - 1) == 0);
    const std::string dead = files.val + fmt::format(".tmp.{}.{}.1f2e", host, child);
    const std::string live = files.val + fmt::format(".tmp.{}.{}.3a4b", host, ::getppid());
    const std::string elsewhere = files.val + fmt::format(".tmp.other-{}.{}.5c6d", host, child);
    std::ofstream(dead) << "half a shard";
    std::ofstream(live) << "being written";
    std::ofstream(elsewhere) << "being written on another machine";
    fs::resize_file(files.val, 100);
    rkv::cached_builtin_corpus(9, 20000, 5000);
    CHECK_FALSE(fs::exists(dead));
    CHECK(fs::exists(live));
    CHECK(fs::exists(elsewhere));
    CHECK(rkv::read_shard(files.val, rkv::kByteVocab) == rkv::builtin_corpus(9, CorpusSplit::val, 5000));

    fs::remove_all(cache);
    if (before)
        ::setenv("RKV_CACHE_DIR", saved.c_str(), 1);
    else
        ::unsetenv("RKV_CACHE_DIR");
}
