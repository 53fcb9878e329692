#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "src/route.h"

using namespace rkv;

TEST_CASE("the sampler keeps its own K/V with probability p_own", "[route]") {
    const int L = 12, draws = 4000;
    for (double p : {0.25, 0.5, 0.6, 0.75}) {
        RouteSampler sampler(L, p);
        int own = 0;
        for (int i = 0; i < draws; i++) {
            const Route r = sampler.sample({2024, uint64_t(i), 0});
            REQUIRE_NOTHROW(validate_route(r, L));
            REQUIRE(r.kv_src[0] == 0);
            for (int l = 1; l < L; l++) own += r.kv_src[l] == l;
        }
        const double n = double(draws) * (L - 1), frac = own / n;
        INFO("p_own " << p << " observed " << frac);
        CHECK(std::abs(frac - p) < 3 * std::sqrt(p * (1 - p) / n));
    }
    RouteSampler ones(L, 1.0), zeros(L, 0.0);
    for (uint64_t i = 0; i < 100; i++) {
        CHECK(ones.sample({1, i, 0}) == all_own(L));
        const Route r = zeros.sample({1, i, 0});
        for (int l = 1; l < L; l++) CHECK(r.kv_src[l] < l);
    }
}

TEST_CASE("borrowed sources are uniform over the earlier layers", "[route]") {
    // Chi-square of each layer's borrowed sources against uniform over {0..l-1}; the sum
    // over layers 2..L-1 has sum(l-1) degrees of freedom. Fail beyond ~4.3 sigma.
    const int L = 10, draws = 20000;
    RouteSampler sampler(L, 0.3);
    std::vector<std::vector<int>> counts(L);
    for (int l = 0; l < L; l++) counts[l].assign(l, 0);
    for (int i = 0; i < draws; i++) {
        const Route r = sampler.sample({99, uint64_t(i), 3});
        for (int l = 1; l < L; l++)
            if (r.kv_src[l] != l) counts[l][r.kv_src[l]]++;
    }
    double chi2 = 0;
    int dof = 0;
    for (int l = 2; l < L; l++) {
        int total = 0;
        for (int c : counts[l]) total += c;
        const double expect = double(total) / l;
        for (int c : counts[l]) chi2 += (c - expect) * (c - expect) / expect;
        dof += l - 1;
    }
    INFO("chi2 " << chi2 << " with " << dof << " degrees of freedom");
    CHECK(chi2 < dof + 4.3 * std::sqrt(2.0 * dof));
    CHECK(chi2 > 0);
}

TEST_CASE("the same key draws the same route, another key another", "[route]") {
    const int L = 16;
    RouteSampler a(L, 0.5), b(L, 0.5);
    for (uint64_t i = 0; i < 50; i++) {
        const RouteKey key{7, i, 1};
        CHECK(a.sample(key) == b.sample(key));
        CHECK(a.sample(key) != a.sample({8, i, 1}));      // seed
        CHECK(a.sample(key) != a.sample({7, i + 1, 1}));  // micro-batch
        CHECK(a.sample(key) != a.sample({7, i, 2}));      // rank
    }
    CHECK_THROWS(RouteSampler(L, 1.5));
}

TEST_CASE("inference patterns", "[route]") {
    CHECK(keep_every(7, 1) == all_own(7));
    CHECK(keep_every(7, 2).kv_src == std::vector<int>{0, 0, 2, 2, 4, 4, 6});
    CHECK(keep_every(7, 3).kv_src == std::vector<int>{0, 0, 0, 3, 3, 3, 6});
    CHECK(keep_every(8, 4).kv_src == std::vector<int>{0, 0, 0, 0, 4, 4, 4, 4});
    for (int k = 1; k <= 4; k++) {
        const Route r = keep_every(12, k);
        CHECK(int(r.kept_layers().size()) == (12 + k - 1) / k);  // cache holds |S| of L layers
        for (int l = 0; l < 12; l++) CHECK(r.is_read(l) == (l % k == 0));
    }
    CHECK(keep_layers(6, {0, 4, 1}).kv_src == std::vector<int>{0, 1, 1, 1, 4, 4});
    CHECK(keep_layers(6, {0, 4, 1}).kept_layers() == std::vector<int>{0, 1, 4});
    const Route r{{0, 0, 1, 1, 4, 4}};
    const std::vector<int> last{1, 3, -1, -1, 5, -1};  // each layer's highest reader
    for (int j = 0; j < 6; j++) CHECK(r.last_reader(j) == last[j]);
    CHECK_THROWS_WITH(keep_layers(6, {1, 4}), Catch::Contains("layer 0"));
    CHECK_THROWS_WITH(keep_layers(6, {0, 6}), Catch::Contains("kept layer 6"));
    CHECK_THROWS(keep_every(6, 0));
}

TEST_CASE("route validation", "[route]") {
    CHECK_NOTHROW(validate_route(Route{{0, 0, 1, 3}}, 4));
    CHECK_THROWS_WITH(validate_route(Route{{0, 2, 1}}, 3), Catch::Contains("layer 1 reads layer 2"));
    CHECK_THROWS_WITH(validate_route(Route{{1, 1}}, 2), Catch::Contains("layer 0 reads layer 1"));
    CHECK_THROWS_WITH(validate_route(Route{{0, -1}}, 2), Catch::Contains("layer 1 reads layer -1"));
    CHECK_THROWS_WITH(validate_route(Route{{0, 0}}, 3), Catch::Contains("2 layers, the model 3"));
}

TEST_CASE("Training route specs parse, and bad ones are refused by name", "[route][train_route]") {
    CHECK(parse_train_route("stochastic").kind == TrainRouteSpec::Kind::stochastic);
    const TrainRouteSpec every = parse_train_route("keep-every:3");
    CHECK((every.kind == TrainRouteSpec::Kind::keep_every && every.k == 3 && every.str() == "keep-every:3"));
    const TrainRouteSpec layers = parse_train_route("layers:0,3,5");
    CHECK((layers.kind == TrainRouteSpec::Kind::layers && layers.layers == std::vector<int>{0, 3, 5}));
    CHECK(layers.str() == "layers:0,3,5");
    for (auto [spec, why] : std::vector<std::pair<std::string, std::string>>{{"", "unknown route kind"},
                                                                             {"cla", "unknown route kind"},
                                                                             {"stochastic:0.5", "no argument"},
                                                                             {"keep-every", "needs an argument"},
                                                                             {"keep-every:0", ">= 1"},
                                                                             {"keep-every:-2", ">= 1"},
                                                                             {"keep-every:2x", ">= 1"},
                                                                             {"keep-every:", ">= 1"},
                                                                             {"layers:", "not a layer index"},
                                                                             {"layers:1,2", "include layer 0"},
                                                                             {"layers:0,3,3", "increasing order"},
                                                                             {"layers:0,5,3", "increasing"},
                                                                             {"layers:0, 3", "not a layer index"},
                                                                             {"layers:0,3,", "not a layer index"}}) {
        INFO(spec);
        CHECK_THROWS_WITH(parse_train_route(spec), Catch::Contains("'" + spec + "'") && Catch::Contains(why));
    }
    CHECK_THROWS_WITH(TrainRoute(parse_train_route("layers:0,6"), 6, 0.5, 0.5, 10),
                      Catch::Contains("layers:0,6") && Catch::Contains("kept layer 6"));
}

TEST_CASE("fixed training routes are the same for every micro-batch and step", "[route][train_route]") {
    const int L = 6;
    const TrainRoute every(parse_train_route("keep-every:2"), L, 0.5, 0.5, 100);
    const TrainRoute layers(parse_train_route("layers:0,3,5"), L, 0.5, 0.5, 100);
    for (long step : {0L, 7L, 99L})
        for (uint64_t mb : {0ULL, 1ULL, 12345ULL}) {
            CHECK(every.at(step, {1, mb, 0}) == keep_every(L, 2));
            CHECK(layers.at(step, {1, mb, 0}) == Route{{0, 0, 0, 3, 3, 5}});
        }
}

TEST_CASE("the p_own schedule is linear in the update step, and routes follow it", "[route][train_route]") {
    const int L = 8;
    // 5 steps from 0.25 to 0.75 (exact in binary): 0.25, 0.375, 0.5, 0.625, 0.75.
    const TrainRoute sched(parse_train_route("stochastic"), L, 0.25, 0.75, 5);
    const std::vector<double> expect = {0.25, 0.375, 0.5, 0.625, 0.75};
    for (long s = 0; s < 5; s++) CHECK(sched.p_own(s) == expect[s]);
    // The route of a micro-batch is the sampler's at that step's p_own: a function of the
    // step and the key alone.
    for (long s = 0; s < 5; s++)
        for (uint64_t mb = 0; mb < 20; mb++)
            CHECK(sched.at(s, {9, mb, 0}) == RouteSampler(L, expect[s]).sample({9, mb, 0}));
    // Without a final p, p_own is constant; a one-step run uses p_own.
    const TrainRoute flat(parse_train_route("stochastic"), L, 0.6, 0.6, 100);
    for (long s : {0L, 50L, 99L}) CHECK(flat.p_own(s) == 0.6);
    CHECK(TrainRoute(parse_train_route("stochastic"), L, 0.3, 0.9, 1).p_own(0) == 0.3);
    // From 1 (the plain transformer) down to 0 (never its own K/V except layer 0).
    const TrainRoute down(parse_train_route("stochastic"), L, 1.0, 0.0, 3);
    CHECK(down.at(0, {1, 0, 0}) == all_own(L));
    const Route last = down.at(2, {1, 0, 0});
    for (int l = 1; l < L; l++) CHECK(last.kv_src[l] < l);
    CHECK_THROWS_WITH(TrainRoute(parse_train_route("stochastic"), L, 0.5, 1.5, 10), Catch::Contains("1.5"));
}

TEST_CASE("Training route spec parsing never crashes on random specs", "[route][train_route]") {
    std::mt19937_64 rng(std::random_device{}());
    const std::string alphabet = "stochaiclyerkp-v:0123456789,, x-";
    for (int i = 0; i < 20000; i++) {
        std::string spec;
        const int n = int(rng() % 16);
        if (rng() % 2) spec = std::vector<std::string>{"keep-every:", "layers:", "stochastic"}[rng() % 3];
        for (int j = 0; j < n; j++) spec += alphabet[rng() % alphabet.size()];
        try {
            const TrainRouteSpec r = parse_train_route(spec);
            CHECK(parse_train_route(r.str()).str() == r.str());  // what parses has a canonical form
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find(spec) != std::string::npos);
        }
    }
}
