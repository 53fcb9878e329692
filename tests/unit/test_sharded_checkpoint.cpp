#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "src/sharded_checkpoint.h"
#include "tests/fixtures.h"
#include "tests/temp_dir.h"

using namespace rkv;
namespace fs = std::filesystem;

TEST_CASE("shard ranges: ceil(total / world) per rank, cut at total", "[sharded]") {
    CHECK(shard_elements(10, 4) == 3);
    CHECK(shard_range(10, 4, 0) == ElementRange{0, 3});
    CHECK(shard_range(10, 4, 3) == ElementRange{9, 10});  // 2 of its 3 elements are padding
    CHECK(shard_elements(5, 4) == 2);
    CHECK(shard_range(5, 4, 2) == ElementRange{4, 5});
    CHECK(shard_range(5, 4, 3) == ElementRange{5, 5});  // all padding: nothing of the table
    CHECK(shard_range(7, 1, 0) == ElementRange{0, 7});
    CHECK(shard_range(3, 8, 7).size() == 0);
    // Every split tiles the table in rank order.
    for (size_t total = 1; total <= 50; total++)
        for (int world = 1; world <= 9; world++) {
            size_t at = 0;
            for (int r = 0; r < world; r++) {
                const ElementRange x = shard_range(total, world, r);
                REQUIRE(x.begin == at);
                REQUIRE(x.size() <= shard_elements(total, world));
                at = x.end;
            }
            REQUIRE(at == total);
        }
}

TEST_CASE("reshard pieces: a new rank's range from the old ranks' files", "[sharded]") {
    // 10 elements on 4 old ranks ([0,3) [3,6) [6,9) [9,10)); a new rank wants [2, 8).
    CHECK(reshard_pieces(10, 4, {2, 8}) == std::vector<ShardPiece>{{0, 2, 0, 1}, {1, 0, 1, 3}, {2, 0, 4, 2}});
    // Past the table is padding: nothing is read for it.
    CHECK(reshard_pieces(10, 4, {8, 12}) == std::vector<ShardPiece>{{2, 2, 0, 1}, {3, 0, 1, 1}});
    CHECK(reshard_pieces(10, 4, {10, 12}).empty());
    CHECK(reshard_pieces(10, 1, {3, 7}) == std::vector<ShardPiece>{{0, 3, 0, 4}});
    // Against the element-by-element answer, for every old and new split of uneven totals.
    for (size_t total = 1; total <= 40; total++)
        for (int old_world = 1; old_world <= 7; old_world++)
            for (int world = 1; world <= 7; world++)
                for (int r = 0; r < world; r++) {
                    const size_t shard = shard_elements(total, world);
                    const ElementRange want{shard * r, shard * (r + 1)};
                    std::vector<std::pair<int, size_t>> got(shard, {-1, 0});  // (old rank, index in its file)
                    for (const ShardPiece& p : reshard_pieces(total, old_world, want))
                        for (size_t i = 0; i < p.count; i++) {
                            REQUIRE(p.to + i < shard);
                            REQUIRE(got[p.to + i].first == -1);  // no overlap
                            got[p.to + i] = {p.rank, p.from + i};
                        }
                    for (size_t i = 0; i < shard; i++) {
                        const size_t e = want.begin + i;
                        if (e >= total) {
                            REQUIRE(got[i].first == -1);
                            continue;
                        }
                        const int owner = int(e / shard_elements(total, old_world));
                        REQUIRE(got[i].first == owner);
                        REQUIRE(got[i].second == e - shard_range(total, old_world, owner).begin);
                    }
                }
}

namespace {

// The whole state of `total` elements, written as `world` ranks' files into dir.
struct WholeState {
    std::vector<float> m, v, master;
};

WholeState write_split(const std::string& dir, long step, size_t total, int world, bool master) {
    std::mt19937_64 rng(std::random_device{}());
    WholeState w{std::vector<float>(total), std::vector<float>(total), {}};
    rkv::test::fill_normal(w.m.data(), total, rng);
    rkv::test::fill_normal(w.v.data(), total, rng);
    if (master) {
        w.master.resize(total);
        rkv::test::fill_normal(w.master.data(), total, rng);
    }
    const size_t shard = shard_elements(total, world);
    for (int r = 0; r < world; r++) {
        // As AdamW holds it: shard elements, the padding zero.
        auto slice = [&](const std::vector<float>& x) {
            std::vector<float> s(shard, 0.0f);
            for (size_t i = 0; i < shard && r * shard + i < total; i++) s[i] = x[r * shard + i];
            return s;
        };
        OptimizerSlice s{slice(w.m), slice(w.v), master ? slice(w.master) : std::vector<float>()};
        write_optimizer_shard(dir, step, total, world, r, s);
    }
    return w;
}

}  // namespace

TEST_CASE("rank files read back at any number of ranks", "[sharded]") {
    for (bool master : {false, true})
        for (size_t total : {1, 7, 101, 1000}) {
            for (int old_world : {1, 2, 3, 4}) {
                INFO("total " << total << ", written by " << old_world << ", master " << master);
                test::TempDir dir("shards");
                const WholeState w = write_split(dir.path.string(), 9, total, old_world, master);
                CHECK(fs::exists(dir.file(shard_file_name(old_world - 1, old_world))));
                for (int world : {1, 2, 3, 4, 5}) {
                    const size_t shard = shard_elements(total, world);
                    for (int r = 0; r < world; r++) {
                        INFO("read by rank " << r << " of " << world);
                        const OptimizerSlice s =
                            read_optimizer_shards(dir.path.string(), 9, total, old_world, shard * r, shard, master);
                        REQUIRE(s.m.size() == shard);
                        REQUIRE(s.master.size() == (master ? shard : 0));
                        for (size_t i = 0; i < shard; i++) {
                            const size_t e = shard * r + i;
                            REQUIRE(s.m[i] == (e < total ? w.m[e] : 0.0f));
                            REQUIRE(s.v[i] == (e < total ? w.v[e] : 0.0f));
                            if (master) REQUIRE(s.master[i] == (e < total ? w.master[e] : 0.0f));
                        }
                    }
                }
            }
        }
}

TEST_CASE("a missing, truncated or foreign rank file is refused by name", "[sharded]") {
    test::TempDir dir("bad_shards");
    const std::string d = dir.path.string();
    constexpr size_t total = 101;
    write_split(d, 4, total, 3, true);
    const std::string f1 = dir.file(shard_file_name(1, 3));
    auto read = [&](long step = 4, bool master = true, size_t total_asked = 101) {
        return read_optimizer_shards(d, step, total_asked, 3, 0, shard_elements(total_asked, 2), master);
    };
    CHECK_NOTHROW(read());
    // Every file is checked, also those holding none of the range read ([0, 5) is in rank 0's).
    const std::string f2 = dir.file(shard_file_name(2, 3));
    fs::rename(f2, f2 + ".away");
    CHECK_THROWS_WITH(read_optimizer_shards(d, 4, total, 3, 0, 5, true),
                      Catch::Contains(f2) && Catch::Contains("missing"));
    fs::rename(f2 + ".away", f2);
    fs::copy_file(f1, f1 + ".good");
    fs::resize_file(f1, fs::file_size(f1) - 4);
    CHECK_THROWS_WITH(read(), Catch::Contains(f1) && Catch::Contains("truncated"));
    fs::copy_file(dir.file(shard_file_name(0, 3)), f1, fs::copy_options::overwrite_existing);  // rank 0's, as 1's
    CHECK_THROWS_WITH(read(), Catch::Contains(f1) && Catch::Contains("rank = 0"));
    fs::copy_file(f1 + ".good", f1, fs::copy_options::overwrite_existing);
    CHECK_NOTHROW(read());
    CHECK_THROWS_WITH(read(5), Catch::Contains(dir.file(shard_file_name(0, 3))) && Catch::Contains("step = 4"));
    CHECK_THROWS_WITH(read(4, true, 100), Catch::Contains("total = 101"));
    CHECK_THROWS_WITH(read(4, false), Catch::Contains("master weights"));
    test::TempDir plain("plain_shards");
    write_split(plain.path.string(), 4, total, 2, false);
    CHECK_THROWS_WITH(read_optimizer_shards(plain.path.string(), 4, total, 2, 0, 51, true),
                      Catch::Contains(plain.file(shard_file_name(0, 2))) && Catch::Contains("no tensor 'master'"));
}
