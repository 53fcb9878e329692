// DataLoader: batch k is the expected slice of the concatenated shards, ranks split
// global batches, shuffled epochs permute the windows, positions save and restore.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include <fmt/core.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "data/rng.h"

namespace fs = std::filesystem;
using Tokens = std::vector<int32_t>;

namespace {

constexpr int kVocab = 70000;  // above uint16 so version 7 shards carry wide ids

// Shards of uneven sizes (one empty, both versions) in a temp dir, and their
// concatenation: the stream the loader must serve.
struct Corpus {
    fs::path dir;
    Tokens stream;
    explicit Corpus(std::vector<int> sizes = {1000, 37, 0, 2500, 611}) {
        static int count = 0;
        dir = fs::temp_directory_path() / fmt::format("rkv_test_loader_{}_{}", ::getpid(), count++);
        fs::create_directories(dir);
        rkv::SplitMix64 rng(42);
        for (size_t s = 0; s < sizes.size(); s++) {
            int version = s % 2 ? 1 : 7;
            Tokens tokens(sizes[s]);
            for (auto& t : tokens) t = int32_t(rng.below(version == 1 ? 65536 : kVocab));
            rkv::write_shard((dir / fmt::format("shard_{:03}.bin", s)).string(), tokens, version);
            stream.insert(stream.end(), tokens.begin(), tokens.end());
        }
    }
    ~Corpus() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    rkv::LoaderOptions options(int B, int T, int rank = 0, int world = 1, bool shuffle = false,
                               uint64_t seed = 0) const {
        return {(dir / "shard_*.bin").string(), B, T, rank, world, shuffle, seed, kVocab};
    }
    // The B*T + 1 tokens starting at `start`, as (inputs, targets).
    std::pair<Tokens, Tokens> window(int64_t start, int64_t n) const {
        return {Tokens(stream.begin() + start, stream.begin() + start + n),
                Tokens(stream.begin() + start + 1, stream.begin() + start + n + 1)};
    }
};

std::pair<Tokens, Tokens> next(rkv::DataLoader& loader) {
    int64_t n = int64_t(loader.options().B) * loader.options().T;
    Tokens x(n), y(n);
    loader.next_batch(x.data(), y.data());
    return {x, y};
}

}  // namespace

TEST_CASE("unshuffled batch k is tokens [k*B*T, k*B*T + B*T], spanning shards, wrapping", "[data]") {
    Corpus corpus;  // 4148 tokens; shard boundaries at 1000, 1037, 3537
    const int B = 3, T = 16, n = B * T;
    rkv::DataLoader loader(corpus.options(B, T));
    REQUIRE(loader.num_tokens() == 4148);
    REQUIRE(loader.batches_per_epoch() == (4148 - 1) / n);
    REQUIRE(loader.shards().size() == 5);

    int spanning = 0;
    for (int64_t k = 0; k < 2 * loader.batches_per_epoch() + 3; k++) {
        int64_t start = (k % loader.batches_per_epoch()) * n;
        for (int64_t boundary : {1000, 1037, 3537}) spanning += start < boundary && boundary <= start + n;
        INFO("batch " << k);
        CHECK(next(loader) == corpus.window(start, n));
        CHECK(loader.state().epoch == (k + 1) / loader.batches_per_epoch());
    }
    CHECK(spanning >= 3 * 2);  // every boundary crossed, in both epochs

    // The last target may be the stream's last token.
    Corpus exact({2 * n + 1});
    rkv::DataLoader tight(exact.options(B, T));
    CHECK(tight.batches_per_epoch() == 2);
    next(tight);
    CHECK(next(tight) == exact.window(n, n));
    CHECK(tight.state() == rkv::LoaderState{1, 0});
}

TEST_CASE("ranks together cover what one rank covers over the same global batches", "[data]") {
    Corpus corpus;
    const int B = 2, T = 8, world = 3;
    rkv::DataLoader single(corpus.options(B, T));
    std::vector<rkv::DataLoader> ranks;
    for (int r = 0; r < world; r++) ranks.emplace_back(corpus.options(B, T, r, world));
    REQUIRE(ranks[0].batches_per_epoch() == (4148 - 1) / (B * T * world));

    for (int64_t k = 0; k < ranks[0].batches_per_epoch(); k++)
        for (int r = 0; r < world; r++) {
            INFO("global batch " << k << " rank " << r);
            CHECK(next(ranks[r]) == next(single));
        }
    // The next global batch is a new epoch for every rank: back to the start.
    for (int r = 0; r < world; r++) {
        CHECK(ranks[r].state() == rkv::LoaderState{1, 0});
        CHECK(next(ranks[r]) == corpus.window(r * B * T, B * T));
    }
}

TEST_CASE("shuffled epochs permute the windows, same on every rank, seeded", "[data]") {
    Corpus corpus;
    const int B = 2, T = 8, n = B * T, world = 2;
    // Windows served in epochs 0..2, by window index, with all ranks interleaved.
    auto serve = [&](uint64_t seed) {
        std::vector<rkv::DataLoader> ranks;
        for (int r = 0; r < world; r++) ranks.emplace_back(corpus.options(B, T, r, world, true, seed));
        // Every whole window of the stream may be served, whatever the world size.
        const int64_t windows = (ranks[0].num_tokens() - 1) / n;
        std::map<std::pair<Tokens, Tokens>, int64_t> index;  // batch content -> window
        for (int64_t w = 0; w < windows; w++) index[corpus.window(w * n, n)] = w;
        REQUIRE(index.size() == size_t(windows));
        std::vector<std::vector<int64_t>> epochs(3);
        for (auto& order : epochs)
            for (int64_t k = 0; k < ranks[0].batches_per_epoch(); k++)
                for (auto& rank : ranks) {
                    auto it = index.find(next(rank));
                    REQUIRE(it != index.end());
                    order.push_back(it->second);
                }
        return epochs;
    };
    auto a = serve(1), b = serve(1), c = serve(2);
    CHECK(a == b);
    CHECK(a != c);
    for (auto& order : a) {  // distinct windows: a permutation, less the tail that does not fill a global batch
        std::vector<int64_t> sorted = order;
        std::sort(sorted.begin(), sorted.end());
        CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
        std::vector<int64_t> identity(order.size());
        std::iota(identity.begin(), identity.end(), 0);
        CHECK(order != identity);
    }
    CHECK(a[0] != a[1]);
    CHECK(a[1] != a[2]);
}

TEST_CASE("ranks x micro-batches: two ranks serve what one rank serves in two micro-batches", "[data]") {
    Corpus corpus;
    const int B = 2, T = 8;
    for (bool shuffle : {false, true}) {
        rkv::DataLoader one(corpus.options(B, T, 0, 1, shuffle, 3));
        std::vector<rkv::DataLoader> two;
        for (int r = 0; r < 2; r++) two.emplace_back(corpus.options(B, T, r, 2, shuffle, 3));
        for (int64_t k = 0; k < two[0].batches_per_epoch(); k++)
            for (auto& rank : two) CHECK(next(rank) == next(one));
    }
}

TEST_CASE("a restored loader serves exactly the batches it would have served", "[data]") {
    Corpus corpus;
    const int B = 2, T = 8;
    for (bool shuffle : {false, true}) {
        rkv::DataLoader loader(corpus.options(B, T, 1, 2, shuffle, 7));
        int64_t skip = loader.batches_per_epoch() + 5;  // stop inside the second epoch
        for (int64_t i = 0; i < skip; i++) next(loader);
        nlohmann::json saved = loader.state();
        CHECK(saved == nlohmann::json{{"epoch", 1}, {"batch", 5}});

        rkv::DataLoader resumed(corpus.options(B, T, 1, 2, shuffle, 7));
        resumed.restore(saved.get<rkv::LoaderState>());
        for (int64_t i = 0; i < 2 * loader.batches_per_epoch(); i++) {
            INFO("shuffle " << shuffle << " batch " << i);
            REQUIRE(next(resumed) == next(loader));
        }

        // reset() is a fresh loader: what validation uses.
        rkv::DataLoader fresh(corpus.options(B, T, 1, 2, shuffle, 7));
        resumed.reset();
        CHECK(resumed.state() == rkv::LoaderState{});
        for (int i = 0; i < 5; i++) CHECK(next(resumed) == next(fresh));
    }
}

TEST_CASE("loader errors: too few tokens, bad position, bad shards", "[data]") {
    Corpus corpus;
    std::string pattern = (corpus.dir / "shard_*.bin").string();
    CHECK_THROWS_WITH(rkv::DataLoader(corpus.options(4148, 1)), Catch::Contains(pattern) && Catch::Contains("too few"));
    CHECK_THROWS_AS(rkv::DataLoader(corpus.options(0, 8)), std::invalid_argument);
    CHECK_THROWS_AS(rkv::DataLoader(corpus.options(2, 8, 2, 2)), std::invalid_argument);

    rkv::DataLoader loader(corpus.options(2, 8));
    CHECK_THROWS_AS(loader.restore({0, loader.batches_per_epoch()}), rkv::DataError);
    CHECK_THROWS_AS(loader.restore({-1, 0}), rkv::DataError);

    auto small_vocab = corpus.options(2, 8);
    small_vocab.vocab_size = 256;
    CHECK_THROWS_WITH(rkv::DataLoader(small_vocab),
                      Catch::Contains("shard_000.bin") && Catch::Contains("vocab size 256"));
    auto nothing = corpus.options(2, 8);
    nothing.pattern = (corpus.dir / "none_*.bin").string();
    CHECK_THROWS_WITH(rkv::DataLoader(nothing), Catch::Contains(nothing.pattern));
}
