#include "src/sharded_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "src/safetensors.h"

namespace fs = std::filesystem;

namespace rkv {

namespace {

constexpr const char* kFormat = "rkv-optimizer-shard";
constexpr const char* kVersion = "1";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", path, what));
}

// A metadata entry that must read `expected`; `of` says whose file it should be.
void expect(const SafetensorsFile& file, const std::string& key, const std::string& expected, const std::string& of) {
    const auto& meta = file.metadata();
    auto it = meta.find(key);
    if (it == meta.end()) fail(file.path(), fmt::format("its metadata lacks \"{}\": not an rkv optimizer shard", key));
    if (it->second != expected)
        fail(file.path(),
             fmt::format("its metadata has {} = {}, but the file of {} has {}", key, it->second, of, expected));
}

}  // namespace

size_t shard_elements(size_t total, int world) { return (total + size_t(world) - 1) / size_t(world); }

ElementRange shard_range(size_t total, int world, int rank) {
    const size_t shard = shard_elements(total, world);
    return {std::min(total, shard * size_t(rank)), std::min(total, shard * (size_t(rank) + 1))};
}

std::vector<ShardPiece> reshard_pieces(size_t total, int world, ElementRange want) {
    std::vector<ShardPiece> pieces;
    const size_t end = std::min(want.end, total), shard = shard_elements(total, world);
    for (size_t at = want.begin; at < end;) {
        const int rank = int(at / shard);
        const ElementRange has = shard_range(total, world, rank);
        const size_t count = std::min(end, has.end) - at;
        pieces.push_back({rank, at - has.begin, at - want.begin, count});
        at += count;
    }
    return pieces;
}

std::string shard_file_name(int rank, int world) {
    return fmt::format("optimizer-{:05d}-of-{:05d}.safetensors", rank, world);
}

void write_optimizer_shard(const std::string& dir, long step, size_t total, int world, int rank,
                           const OptimizerSlice& s) {
    const ElementRange r = shard_range(total, world, rank);
    const std::string path = dir + "/" + shard_file_name(rank, world);
    auto sized = [&](const std::vector<float>& x) { return x.size() >= r.size(); };
    if (!sized(s.m) || !sized(s.v) || (!s.master.empty() && !sized(s.master)))
        fail(path, fmt::format("rank {}'s slice has {} elements, fewer than its {}", rank, s.m.size(), r.size()));
    const std::vector<int64_t> shape = {int64_t(r.size())};
    std::vector<TensorRef> tensors = {{"m", shape, s.m.data()}, {"v", shape, s.v.data()}};
    if (!s.master.empty()) tensors.push_back({"master", shape, s.master.data()});
    const std::map<std::string, std::string> meta = {{"format", kFormat},
                                                     {"version", kVersion},
                                                     {"step", std::to_string(step)},
                                                     {"world", std::to_string(world)},
                                                     {"rank", std::to_string(rank)},
                                                     {"total", std::to_string(total)},
                                                     {"begin", std::to_string(r.begin)},
                                                     {"end", std::to_string(r.end)}};
    write_safetensors(path, tensors, meta);
}

OptimizerSlice read_optimizer_shards(const std::string& dir, long step, size_t total, int world, size_t begin,
                                     size_t count, bool master) {
    // Every file first: a missing or damaged one is refused whichever rank would read it.
    std::vector<SafetensorsFile> files;
    for (int rank = 0; rank < world; rank++) {
        const std::string path = dir + "/" + shard_file_name(rank, world);
        std::error_code ec;
        if (!fs::exists(path, ec))
            fail(path, fmt::format("missing: the checkpoint was written by {} ranks and holds no file of rank {} "
                                   "(incomplete or damaged checkpoint)",
                                   world, rank));
        const SafetensorsFile& f = files.emplace_back(path);  // refuses a truncated file by its size
        const ElementRange r = shard_range(total, world, rank);
        const std::string of = fmt::format("rank {} of {} at step {}, {} parameters", rank, world, step, total);
        expect(f, "format", kFormat, of);
        expect(f, "version", kVersion, of);
        expect(f, "step", std::to_string(step), of);
        expect(f, "world", std::to_string(world), of);
        expect(f, "rank", std::to_string(rank), of);
        expect(f, "total", std::to_string(total), of);
        expect(f, "begin", std::to_string(r.begin), of);
        expect(f, "end", std::to_string(r.end), of);
        const std::vector<int64_t> shape = {int64_t(r.size())};
        f.check("m", shape);
        f.check("v", shape);
        if (master)
            f.check("master", shape);
        else if (f.has("master"))
            fail(path,
                 "holds fp32 master weights, but this run's storage is fp32 and keeps none: resume it with a "
                 "build of the precision that wrote it");
        if (f.tensors().size() != (master ? 3u : 2u))
            fail(path, fmt::format("holds {} tensors; an optimizer shard holds m, v{}", f.tensors().size(),
                                   master ? " and master" : ""));
    }
    OptimizerSlice s;
    s.m.assign(count, 0.0f);
    s.v.assign(count, 0.0f);
    if (master) s.master.assign(count, 0.0f);
    for (const ShardPiece& p : reshard_pieces(total, world, {begin, begin + count})) {
        const SafetensorsFile& f = files[size_t(p.rank)];
        f.read_range("m", p.from, p.count, s.m.data() + p.to);
        f.read_range("v", p.from, p.count, s.v.data() + p.to);
        if (master) f.read_range("master", p.from, p.count, s.master.data() + p.to);
    }
    return s;
}

}  // namespace rkv
