// The safetensors reader (src/safetensors.h): what it converts, what it refuses, and a fuzz
// test: hundreds of mutated headers, lengths and truncations from a fixed seed, none of
// which may crash it, each refused naming the file or read whole.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/llmc_checkpoint.h"
#include "src/safetensors.h"
#include "tests/temp_dir.h"

using namespace rkv;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A file of the given header text (padded with spaces to 8 bytes unless told the length)
// and data bytes.
std::string file_bytes(const std::string& header, const std::string& data, uint64_t len = UINT64_MAX) {
    std::string text = header;
    if (len == UINT64_MAX) {
        text.resize((text.size() + 7) / 8 * 8, ' ');
        len = text.size();
    }
    std::string out(8, '\0');
    std::memcpy(out.data(), &len, 8);
    return out + text + data;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

// The base of the fuzz test: F32, BF16 and F16 tensors, a U8 one (which files may carry but
// rkv does not read), an empty one, and metadata. Returns the header and the data.
std::pair<json, std::string> base_file() {
    std::string data;
    json h = {{"__metadata__", {{"format", "pt"}}}};
    auto add = [&](const std::string& name, const char* dtype, std::vector<int64_t> shape, size_t bytes) {
        h[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes}}};
        for (size_t i = 0; i < bytes; i++) data += char(0x3c + i % 7);  // finite in every float format
    };
    add("a", "F32", {2, 3}, 24);
    add("b", "BF16", {4}, 8);
    add("c", "F16", {3, 1}, 6);
    add("d", "U8", {5}, 5);
    add("e", "F32", {0, 4}, 0);
    add("f", "F32", {}, 4);
    return {h, data};
}

// Opens path and reads every float tensor; "" when all went well, else the refusal.
std::string open_and_read(const std::string& path) {
    try {
        const SafetensorsFile f(path);
        for (auto& [name, e] : f.tensors()) {
            if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16") continue;
            size_t n = 1;
            for (auto d : e.shape) n *= size_t(d);
            std::vector<float> dst(n);
            f.read(name, e.shape, dst.data());
        }
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

// One mutation of the base file, drawn from rng: its bytes.
std::string mutate(std::mt19937_64& rng) {
    auto [h, data] = base_file();
    auto pick = [&](size_t n) { return size_t(rng() % n); };
    const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f"};
    const std::string name = names[pick(names.size())];
    const std::vector<json> odd = {json(-4096),
                                   json(-1),
                                   json(0),
                                   json(1),
                                   json(61440),
                                   json(uint64_t(1) << 63),
                                   json(UINT64_MAX),
                                   json(data.size()),
                                   json(data.size() + 1),
                                   json(2.5),
                                   json("12"),
                                   json(nullptr),
                                   json::array(),
                                   json::object(),
                                   json(true),
                                   json(int64_t(rng() % 64))};
    auto any = [&] { return odd[pick(odd.size())]; };
    const std::string header = h.dump();
    switch (pick(14)) {
        case 0: h[name]["data_offsets"] = {any(), any()}; break;
        case 1: {  // a list of the wrong length, or not a list
            const std::vector<json> shapes = {json::array(), json::array({any()}), json::array({0, 4, 8}), any()};
            h[name]["data_offsets"] = shapes[pick(shapes.size())];
            break;
        }
        case 2: h[name]["data_offsets"][pick(2)] = int64_t(h[name]["data_offsets"][0]) + int64_t(pick(9)) - 4; break;
        case 3: h[name]["shape"] = {any(), any()}; break;
        case 4: h[name]["shape"] = json::array({int64_t(1) << 62, int64_t(1) << 62, 16}); break;
        case 5: {
            const std::vector<json> dtypes = {"F64", "I64", "F8_E4M3", "BOOL", "F4", "f32", "", "BF16 ", 3, nullptr};
            h[name]["dtype"] = dtypes[pick(dtypes.size())];
            break;
        }
        case 6: h[name].erase(std::vector<std::string>{"dtype", "shape", "data_offsets"}[pick(3)]); break;
        case 7: h[name] = any(); break;
        case 8: h["__metadata__"] = pick(2) ? any() : json{{"k", any()}}; break;
        case 9: {  // the header length field off by a little, or wild
            const int64_t len = int64_t((header.size() + 7) / 8 * 8);
            const std::vector<uint64_t> lens = {uint64_t(len - 1),
                                                uint64_t(len + 1),
                                                uint64_t(len - 8),
                                                0,
                                                uint64_t(len + int64_t(data.size())),
                                                UINT64_MAX,
                                                uint64_t(1) << 40,
                                                uint64_t(len + int64_t(pick(17)) - 8)};
            std::string text = header;
            text.resize(size_t(len), ' ');
            return file_bytes(text, data, lens[pick(lens.size())]);
        }
        case 10: {  // truncated anywhere
            const std::string whole = file_bytes(header, data);
            return whole.substr(0, pick(whole.size()));
        }
        case 11: {  // bytes of the header flipped
            std::string whole = file_bytes(header, data);
            for (size_t i = 0, n = 1 + pick(4); i < n; i++) whole[8 + pick(header.size())] ^= char(1 + pick(255));
            return whole;
        }
        case 12: {  // two tensors' ranges swapped or made equal (overlap), or bytes added to the data
            const std::string other = names[pick(names.size())];
            if (pick(3) == 0) return file_bytes(header, data + std::string(1 + pick(9), 'x'));
            if (pick(2))
                std::swap(h[name]["data_offsets"], h[other]["data_offsets"]);
            else
                h[name]["data_offsets"] = h[other]["data_offsets"];
            break;
        }
        default: {  // random bytes, sometimes behind a plausible length
            std::string junk(pick(200), '\0');
            for (auto& c : junk) c = char(rng());
            if (pick(2) && junk.size() >= 8) {
                const uint64_t len = junk.size() - 8 - pick(junk.size() - 7);
                std::memcpy(junk.data(), &len, 8);
            }
            return junk;
        }
    }
    return file_bytes(h.dump(), data);
}

}  // namespace

TEST_CASE("safetensors: F32, BF16 and F16 read as float; written as F32 or BF16", "[safetensors]") {
    const test::TempDir tmp("st_read");
    const fs::path& dir = tmp.path;
    // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), 2^-14 (smallest normal), inf, -0.
    const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0x8000};
    const std::vector<float> want = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1p-14f, INFINITY, -0.0f};
    std::string data(reinterpret_cast<const char*>(half.data()), half.size() * 2);
    const json h = {{"h", {{"dtype", "F16"}, {"shape", {7}}, {"data_offsets", {0, 14}}}}};
    write_bytes(dir / "h.safetensors", file_bytes(h.dump(), data));
    std::vector<float> got(7);
    SafetensorsFile((dir / "h.safetensors").string()).read("h", {7}, got.data());
    for (size_t i = 0; i < want.size(); i++) {
        CHECK(got[i] == want[i]);
        CHECK(std::signbit(got[i]) == std::signbit(want[i]));
    }
    CHECK(std::isnan(f16_to_float(0x7e00)));

    // BF16 written rounds to nearest even; read back it widens exactly.
    std::mt19937_64 rng(3);
    std::normal_distribution<float> normal;
    std::vector<float> x(6 * 5);
    for (auto& v : x) v = normal(rng);
    const std::string path = (dir / "w.safetensors").string();
    write_safetensors(path, {{"w", {6, 5}, x.data()}}, {{"format", "pt"}}, Dtype::BF16);
    const SafetensorsFile f(path);
    CHECK(f.tensors().at("w").dtype == "BF16");
    CHECK(f.metadata().at("format") == "pt");
    std::vector<float> back(30), t(30);
    f.read("w", {6, 5}, back.data());
    for (size_t i = 0; i < x.size(); i++) CHECK(back[i] == bf16_to_float(float_to_bf16(x[i])));
    f.read("w", {6, 5}, t.data(), true);  // transposed into (5, 6)
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 5; c++) CHECK(t[c * 6 + r] == back[r * 5 + c]);
    CHECK_THROWS_WITH(write_safetensors(path, {{"w", {6, 5}, x.data()}}, {}, Dtype::F16), Catch::Contains(path));
    CHECK(parse_dtype("bf16") == Dtype::BF16);
    CHECK_THROWS_WITH(parse_dtype("fp8"), Catch::Contains("fp8"));
    fs::remove_all(dir);
}

TEST_CASE("safetensors: headers that break the format's promises are refused naming file and tensor", "[safetensors]") {
    const test::TempDir tmp("st_bad");
    const fs::path& dir = tmp.path;
    const std::string path = (dir / "x.safetensors").string();
    auto [base, data] = base_file();
    auto refusal = [&](const json& h, const std::string& d, uint64_t len = UINT64_MAX) {
        write_bytes(path, file_bytes(h.dump(), d, len));
        return open_and_read(path);
    };
    REQUIRE(refusal(base, data) == "");
    auto with = [&](const std::string& name, const std::string& key, const json& value) {
        json h = base;
        h[name][key] = value;
        return h;
    };
    // The two that crashed the earlier reader, and the one-byte-short header it accepted.
    CHECK_THAT(refusal(with("a", "data_offsets", {-4096, 61440}), data),
               Catch::Contains(path) && Catch::Contains("tensor 'a'") && Catch::Contains("not two sizes"));
    CHECK_THAT(refusal(with("a", "data_offsets", json::array()), data),
               Catch::Contains(path) && Catch::Contains("tensor 'a'"));
    const std::string text = base.dump();
    CHECK_THAT(refusal(base, data, text.size() - 1), Catch::Contains(path) && Catch::Contains("not JSON"));
    // Overlap, gap, bytes past the last tensor, out of order, wrong size.
    CHECK_THAT(refusal(with("b", "data_offsets", {20, 28}), data), Catch::Contains(path) && Catch::Contains("overlap"));
    json gap = with("b", "data_offsets", {26, 34});
    gap["c"]["data_offsets"] = {34, 40};
    gap["d"]["data_offsets"] = {40, 45};
    gap["e"]["data_offsets"] = {45, 45};
    gap["f"]["data_offsets"] = {45, 49};
    CHECK_THAT(refusal(gap, data + "xx"), Catch::Contains(path) && Catch::Contains("unused"));
    CHECK_THAT(refusal(base, data + "x"), Catch::Contains(path) && Catch::Contains("1 bytes past the last tensor"));
    CHECK_THAT(refusal(with("a", "data_offsets", {24, 0}), data),
               Catch::Contains("tensor 'a'") && Catch::Contains("out of order"));
    CHECK_THAT(refusal(with("a", "shape", {3, 3}), data), Catch::Contains("tensor 'a'") && Catch::Contains("needs 36"));
    CHECK_THAT(refusal(base, data.substr(0, data.size() - 3)), Catch::Contains(path) && Catch::Contains("truncated"));
    // Dtypes, shapes, entries, metadata, the header itself.
    CHECK_THAT(refusal(with("a", "dtype", "F4"), data), Catch::Contains("tensor 'a'") && Catch::Contains("'F4'"));
    CHECK_THAT(refusal(with("a", "shape", {-2, -3}), data), Catch::Contains("tensor 'a'") && Catch::Contains("-2"));
    CHECK_THAT(refusal(with("a", "shape", {int64_t(1) << 62, 8}), data),
               Catch::Contains("tensor 'a'") && Catch::Contains("overflows"));
    json no_dtype = base;
    no_dtype["c"].erase("dtype");
    CHECK_THAT(refusal(no_dtype, data), Catch::Contains("tensor 'c'") && Catch::Contains("no 'dtype'"));
    CHECK_THAT(refusal(with("__metadata__", "k", 3), data), Catch::Contains(path) && Catch::Contains("__metadata__"));
    CHECK_THAT(refusal(json::array({1, 2}), ""), Catch::Contains(path) && Catch::Contains("not an object"));
    write_bytes(path, "abc");
    CHECK_THAT(open_and_read(path), Catch::Contains(path) && Catch::Contains("shorter than"));
    write_bytes(path, file_bytes(text, data, uint64_t(1) << 40));
    CHECK_THAT(open_and_read(path), Catch::Contains(path) && Catch::Contains("exceeds"));
    // What the caller expects: a name, a shape, a float dtype.
    write_bytes(path, file_bytes(text, data));
    const SafetensorsFile f(path);
    std::vector<float> buf(8);
    CHECK_THROWS_WITH(f.read("z", {1}, buf.data()), Catch::Contains(path) && Catch::Contains("no tensor 'z'"));
    CHECK_THROWS_WITH(f.read("a", {3, 2}, buf.data()), Catch::Contains("tensor 'a' has shape [2, 3], expected [3, 2]"));
    CHECK_THROWS_WITH(f.read("d", {5}, buf.data()), Catch::Contains("tensor 'd' has dtype U8"));
    CHECK_THROWS_WITH(SafetensorsFile((dir / "missing").string()),
                      Catch::Contains("missing") && Catch::Contains("cannot open"));
    fs::remove_all(dir);
}

TEST_CASE("safetensors fuzz: mutated headers and truncations never crash, refusals name the file",
          "[safetensors][fuzz]") {
    const test::TempDir tmp("st_fuzz");
    const fs::path& dir = tmp.path;
    const std::string path = (dir / "fuzz.safetensors").string();
    std::mt19937_64 rng(20261204);
    int refused = 0, read = 0;
    for (int i = 0; i < 1000; i++) {
        write_bytes(path, mutate(rng));
        const std::string why = open_and_read(path);
        INFO("case " << i << ": " << why);
        if (why.empty())
            read++;
        else
            refused++;
        CHECK((why.empty() || why.find(path) != std::string::npos));
    }
    INFO(refused << " refused, " << read << " read");
    CHECK(refused > 800);  // most mutations break a promise; some (e.g. another metadata value) do not
    CHECK(read > 0);
    fs::remove_all(dir);
}
