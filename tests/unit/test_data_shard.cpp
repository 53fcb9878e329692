// Token shards: round trips, every malformed file, glob expansion; the byte tokenizer.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <catch2/catch.hpp>

#include "data/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "tests/data_error.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

std::vector<int32_t> random_tokens(int64_t n, int vocab, uint64_t seed) {
    rkv::SplitMix64 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

// Overwrites header int i of a shard file.
void patch_header(const std::string& path, int i, int32_t value) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(i * sizeof(int32_t));
    f.write(reinterpret_cast<const char*>(&value), sizeof(value));
}

}  // namespace

TEST_CASE("shard round trip, version 1 (uint16) and 7 (uint32)", "[data]") {
    rkv::test::TempDir dir("shard");
    auto v1 = random_tokens(5000, 65536, 1);
    auto v7 = random_tokens(5000, 200000, 2);
    rkv::write_shard(dir.file("v1.bin"), v1, 1);
    rkv::write_shard(dir.file("v7.bin"), v7, 7);
    CHECK(fs::file_size(dir.file("v1.bin")) == 1024 + 5000 * 2);
    CHECK(fs::file_size(dir.file("v7.bin")) == 1024 + 5000 * 4);
    CHECK(rkv::read_shard(dir.file("v1.bin"), 65536) == v1);
    CHECK(rkv::read_shard(dir.file("v7.bin"), 200000) == v7);

    rkv::Shard shard(dir.file("v7.bin"), 200000);
    CHECK(shard.version() == 7);
    CHECK(shard.size() == 5000);
    std::vector<int32_t> part(10);
    shard.copy(4990, 10, part.data());
    CHECK(part == std::vector<int32_t>(v7.end() - 10, v7.end()));

    // An empty shard is valid; the writer leaves no temporary files behind.
    rkv::write_shard(dir.file("empty.bin"), {}, 1);
    CHECK(rkv::read_shard(dir.file("empty.bin"), 256).empty());
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 3);
}

TEST_CASE("malformed shards throw DataError naming the file and the problem", "[data]") {
    rkv::test::TempDir dir("shard");
    auto tokens = random_tokens(1000, 256, 3);
    auto good = [&](const std::string& name, int version = 1) {
        std::string path = dir.file(name);
        rkv::write_shard(path, tokens, version);
        return path;
    };

    std::string truncated = good("truncated.bin");
    fs::resize_file(truncated, 1024 + 1000 * 2 - 1);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(truncated, 256); }),
               Contains(truncated) && Contains("truncated") && Contains("1000 tokens"));

    std::string oversized = good("oversized.bin");
    fs::resize_file(oversized, 1024 + 1000 * 2 + 2);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(oversized, 256); }),
               Contains(oversized) && Contains("trailing bytes"));

    std::string headerless = dir.file("headerless.bin");
    std::ofstream(headerless) << "not a shard";
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(headerless, 256); }),
               Contains(headerless) && Contains("too short"));

    std::string magic = good("magic.bin");
    patch_header(magic, 0, 12345);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(magic, 256); }), Contains(magic) && Contains("bad magic 12345"));

    std::string version = good("version.bin");
    patch_header(version, 1, 7);  // uint16 magic with the uint32 version
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(version, 256); }),
               Contains(version) && Contains("unsupported version 7"));

    std::string range = dir.file("range.bin");
    auto bad = tokens;
    bad[777] = 300;
    rkv::write_shard(range, bad, 7);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(range, 256); }),
               Contains(range) && Contains("token id 300 at position 777"));
    CHECK_NOTHROW(rkv::Shard(range, 301));

    std::string missing = dir.file("missing.bin");
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(missing, 256); }), Contains(missing) && Contains("No such file"));
    // A plain path is not a pattern: it passes through to the reader's clearer message.
    CHECK(rkv::expand_glob(missing) == std::vector<std::string>{missing});

    std::string none = dir.file("nothing_*.bin");
    CHECK_THAT(rkv::test::data_error([&] { rkv::expand_glob(none); }), Contains(none) && Contains("no files match"));

    // Not regular files: refused by name at once (a FIFO with no writer would block a plain open).
    std::string fifo = dir.file("fifo.bin");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(fifo, 256); }), Contains(fifo) && Contains("is a FIFO"));
    std::string directory = dir.file("directory.bin");
    fs::create_directories(directory);
    CHECK_THAT(rkv::test::data_error([&] { rkv::Shard(directory, 256); }),
               Contains(directory) && Contains("is a directory"));
}

TEST_CASE("write_shard refuses tokens that do not fit the version", "[data]") {
    rkv::test::TempDir dir("shard");
    std::string path = dir.file("wide.bin");
    std::vector<int32_t> tokens = {1, 2, 70000};
    CHECK_THAT(rkv::test::data_error([&] { rkv::write_shard(path, tokens, 1); }),
               Contains(path) && Contains("token id 70000 at position 2"));
    CHECK_FALSE(fs::exists(path));
    std::vector<int32_t> negative = {-1};
    CHECK_THROWS_AS(rkv::write_shard(path, negative, 7), rkv::DataError);
    CHECK_THROWS_AS(rkv::write_shard(path, tokens, 3), rkv::DataError);
    CHECK(fs::is_empty(dir.path));
}

TEST_CASE("expand_glob returns the matches sorted by name", "[data]") {
    rkv::test::TempDir dir("shard");
    for (const char* name : {"b_001.bin", "a_002.bin", "b_000.bin", "c.txt"}) rkv::write_shard(dir.file(name), {}, 1);
    auto files = rkv::expand_glob(dir.file("*.bin"));
    CHECK(files == std::vector<std::string>{dir.file("a_002.bin"), dir.file("b_000.bin"), dir.file("b_001.bin")});
}

TEST_CASE("byte tokenizer round-trips any bytes", "[data]") {
    std::string text = "hello, world\n";
    for (int b = 0; b < 256; b++) text += char(b);
    auto tokens = rkv::encode_bytes(text);
    REQUIRE(tokens.size() == text.size());
    CHECK(tokens[0] == 'h');
    CHECK(tokens.back() == 255);
    CHECK(rkv::decode_bytes(tokens) == text);
    std::vector<int32_t> bad = {104, 256};
    CHECK_THROWS_AS(rkv::decode_bytes(bad), std::out_of_range);
}
