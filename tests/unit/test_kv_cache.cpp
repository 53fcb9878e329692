// Inference with a shared KV cache (src/kv_cache.h, Model::forward_cached): feeding a sequence
// in pieces through the cache gives the logits of one forward over the whole sequence under the
// same route, and the cache holds the kept layers only.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "src/cpu_ops.h"
#include "src/model.h"
#include "tests/fixtures.h"
#include "tests/rel_error.h"

using namespace rkv;

TEST_CASE("decoding through the KV cache gives the logits of the whole-sequence forward", "[model][kv_cache]") {
    constexpr int B = 2, T = 13, chunk = 5;
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        ModelConfig c = test::tiny_config(family);
        c.max_position_embeddings = 16;
        const int L = c.num_hidden_layers, V = c.vocab_size;
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<double> ops;
        Model<double> full(c, ops, B, T);
        test::random_params(full.params, full.table, rng);
        Model<double> cached(c, ops, B, chunk, 0, false);
        CHECK(cached.grads == nullptr);
        std::copy_n(full.params, full.table.total, cached.params);
        const auto tokens = test::random_batch(B * T, V, rng).first;

        const std::vector<Route> routes{all_own(L), keep_every(L, 2), keep_every(L, 3), Route{{0, 0, 1, 1}}};
        for (size_t r = 0; r < routes.size(); r++) {
            const Route& route = routes[r];
            INFO(family << " route " << route.str());
            full.forward(tokens.data(), nullptr, route);
            const auto want = full.logits(T);

            KvCache<double> cache(ops, c, route, B, 15);
            REQUIRE(cache.slots() == int(route.kept_layers().size()));
            CHECK(cache.bytes_per_token() == 2 * size_t(cache.slots()) * c.kv_dim() * sizeof(double));
            // A prefill of 5 (or of 1), a chunk of 3 (or 4), then one token at a time.
            const std::vector<int> pieces =
                r % 2 ? std::vector<int>{1, 4, 3, 1, 1, 1, 1, 1} : std::vector<int>{5, 3, 1, 1, 1, 1, 1};
            int t0 = 0;
            for (int n : pieces) {
                INFO("positions " << t0 << " .. " << t0 + n - 1);
                const auto inputs = test::positions(tokens, B, T, 1, t0, n);
                cached.forward_cached(inputs.data(), n, cache);
                CHECK(kcheck::max_rel_error(cached.logits(n), test::positions(want, B, T, V, t0, n)) < 1e-12);
                CHECK(cached.logits(n, n - 1) ==
                      test::positions(cached.logits(n), B, n, V, n - 1, 1));  // the newest only
                t0 += n;
            }
            CHECK(cache.length == T);
        }
    }
}

TEST_CASE("the KV cache keeps only the layers its route reads", "[model][kv_cache]") {
    ModelConfig c = test::tiny_config("llama3");
    c.num_hidden_layers = 6;
    CpuOps<float> ops;
    const size_t full = KvCache<float>(ops, c, all_own(6), 3, 8).bytes();
    CHECK(full == 2 * size_t(6) * 3 * 8 * c.kv_dim() * sizeof(float));
    for (int k : {2, 3, 4}) {
        KvCache<float> cache(ops, c, keep_every(6, k), 3, 8);
        CHECK(cache.kept_layers() == keep_every(6, k).kept_layers());
        CHECK(cache.bytes() * 6 == full * size_t(cache.slots()));
        // Each layer reads the slot of its nearest kept layer at or below it.
        for (int l = 0; l < 6; l++) CHECK(cache.kept_layers()[cache.kv_slot()[l]] == l / k * k);
    }
}

TEST_CASE("forward_cached refuses what does not fit", "[model][kv_cache]") {
    ModelConfig c = test::tiny_config("gpt2");
    CpuOps<float> ops;
    Model<float> model(c, ops, 1, 4, 0, false);
    CHECK_THROWS_AS(KvCache<float>(ops, c, all_own(c.num_hidden_layers), 1, c.max_position_embeddings + 1),
                    std::invalid_argument);
    KvCache<float> cache(ops, c, keep_every(c.num_hidden_layers, 2), 1, 6);
    const std::vector<int> tokens{1, 2, 3, 4, 5};
    CHECK_THROWS_AS(model.forward_cached(tokens.data(), 5, cache), std::invalid_argument);  // more than T at once
    model.forward_cached(tokens.data(), 4, cache);
    CHECK_THROWS_AS(model.forward_cached(tokens.data(), 3, cache), std::invalid_argument);  // past the cache
    const std::vector<int> bad{c.vocab_size};
    CHECK_THROWS_AS(model.forward_cached(bad.data(), 1, cache), std::invalid_argument);
    CHECK(cache.length == 4);
    KvCache<float> two(ops, c, all_own(c.num_hidden_layers), 2, 6);
    CHECK_THROWS_AS(model.forward_cached(tokens.data(), 1, two), std::invalid_argument);  // B differs
}
