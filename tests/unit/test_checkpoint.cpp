#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "src/checkpoint.h"
#include "src/safetensors.h"
#include "tests/fixtures.h"
#include "tests/temp_dir.h"

using namespace rkv;
namespace fs = std::filesystem;

TEST_CASE("a checkpoint round-trips parameters, optimizer state and run state exactly", "[checkpoint]") {
    const test::TempDir tmp("ckpt");
    const fs::path& dir = tmp.path;
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        const ParamTable table(c);
        std::mt19937_64 rng(std::random_device{}());
        std::vector<float> params(table.total), m(table.total), v(table.total);
        test::fill_normal(params.data(), params.size(), rng);
        test::fill_normal(m.data(), m.size(), rng);
        test::fill_normal(v.data(), v.size(), rng);
        const nlohmann::json state = {{"step", 42}, {"train_loader", {{"epoch", 1}, {"batch", 7}}}};
        const fs::path out = dir / family;
        fs::create_directories(out);
        const std::string path = save_checkpoint(out, 42, c, params.data(), m, v, state);
        CHECK(path == (out / "ckpt_00000042").string());
        CHECK(latest_checkpoint(out) == path);
        CHECK(!fs::exists(path + ".tmp"));
        const Checkpoint ck = load_checkpoint(path, true);
        CHECK(to_json(ck.config) == to_json(c));
        CHECK(ck.params == params);
        CHECK(ck.state == state);
        const OptimizerSlice whole = load_optimizer(path, ck.state, table, 0, table.total, true);
        CHECK(whole.m == m);
        CHECK(whole.v == v);
        CHECK(whole.master.empty());  // the model's weights are the master
        // A shard of it, as a rank of a ZeRO run takes it: padded with zeros past the table.
        const size_t begin = table.total - 5;
        const OptimizerSlice tail = load_optimizer(path, ck.state, table, begin, 8, false);
        CHECK(tail.m == std::vector<float>{m[begin], m[begin + 1], m[begin + 2], m[begin + 3], m[begin + 4], 0, 0, 0});
        CHECK(tail.v[4] == v.back());
        // A newer step becomes the latest; a leftover temporary never counts.
        fs::create_directories(out / "ckpt_00000099.tmp");
        save_checkpoint(out, 43, c, params.data(), m, v, state);
        CHECK(latest_checkpoint(out) == (out / "ckpt_00000043").string());
    }
    fs::remove_all(dir);
}

TEST_CASE("safetensors: bad files are refused naming the file", "[checkpoint]") {
    const test::TempDir tmp("st");
    const fs::path& dir = tmp.path;
    const std::string path = (dir / "x.safetensors").string();
    const std::vector<float> data = {1, 2, 3, 4, 5, 6};
    write_safetensors(path, {{"w", {2, 3}, data.data()}});
    std::vector<float> back(6);
    SafetensorsFile(path).read("w", {2, 3}, back.data());
    CHECK(back == data);
    CHECK_THROWS_WITH(SafetensorsFile(path).read("w", {3, 2}, back.data()), Catch::Contains("shape [2, 3]"));
    CHECK_THROWS_WITH(SafetensorsFile(path).read("u", {2, 3}, back.data()), Catch::Contains("no tensor 'u'"));
    fs::resize_file(path, fs::file_size(path) - 4);  // truncated
    CHECK_THROWS_WITH(SafetensorsFile(path).read("w", {2, 3}, back.data()),
                      Catch::Contains(path) && Catch::Contains("truncated"));
    std::ofstream(path, std::ios::trunc) << "nonsense";
    CHECK_THROWS_WITH(SafetensorsFile(path), Catch::Contains(path));
    CHECK_THROWS_WITH(SafetensorsFile((dir / "missing").string()), Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(load_checkpoint((dir / "missing").string(), false), Catch::Contains("not a checkpoint"));
    fs::remove_all(dir);
}
