// src/file_io.h's readers: JSON files, and what is refused by name instead of blocking or crashing.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "src/file_io.h"
#include "tests/temp_dir.h"

using Catch::Contains;

TEST_CASE("read_json_file parses a file and names it when it cannot", "[file_io]") {
    rkv::test::TempDir dir("file_io");
    const std::string good = dir.write("good.json", R"({"step": 12, "name": "x"})");
    const nlohmann::json j = rkv::read_json_file(good);
    CHECK(j.at("step") == 12);
    CHECK(j.at("name") == "x");

    const std::string missing = dir.file("missing.json");
    CHECK_THROWS_WITH(rkv::read_json_file(missing), Contains(missing) && Contains("cannot open"));

    const std::string cut = dir.write("cut.json", R"({"step": 1)");
    CHECK_THROWS_WITH(rkv::read_json_file(cut), Contains(cut) && Contains("parse error"));

    const std::string empty = dir.write("empty.json", "");
    CHECK_THROWS_WITH(rkv::read_json_file(empty), Contains(empty));

    // A FIFO would block a reader with no writer; a directory is not a file.
    const std::string fifo = dir.file("fifo.json");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(rkv::read_json_file(fifo), Contains(fifo) && Contains("not a regular file"));
    CHECK_THROWS_WITH(rkv::read_json_file(dir.path.string()), Contains("not a regular file"));
}
