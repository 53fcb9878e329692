// src/philox.h against cuRAND itself: built into rkv_tests only where the CUDA toolkit is
// installed (CMakeLists.txt). The routes and the initial weights are the numbers cuRAND
// gave them before the project had its own Philox, so runs and checkpoints carry over.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <curand.h>
#include <curand_kernel.h>

#include "src/params.h"
#include "src/philox.h"
#include "src/route.h"
#include "tests/fixtures.h"

using namespace rkv;

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// The host generator, as init_params called it before src/philox.h.
struct HostGenerator {
    curandGenerator_t gen;
    explicit HostGenerator(uint64_t seed) {
        REQUIRE(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10) == CURAND_STATUS_SUCCESS);
        REQUIRE(curandSetPseudoRandomGeneratorSeed(gen, seed) == CURAND_STATUS_SUCCESS);
    }
    ~HostGenerator() { curandDestroyGenerator(gen); }
};

}  // namespace

TEST_CASE("PhiloxStream is curand_init + curand / curand_uniform, bit for bit", "[philox][curand]") {
    std::mt19937_64 rng(17);
    for (int t = 0; t < 20000; t++) {
        // Small and full-range subsequences and offsets, so the counter's carries are crossed.
        const uint64_t seed = rng(), sub = t % 3 ? rng() % 100000 : rng(), offset = t % 5 ? rng() % 1000 : rng();
        curandStatePhilox4_32_10_t ref;
        curand_init(seed, sub, offset, &ref);
        PhiloxStream ours(seed, sub, offset);
        for (int i = 0; i < 23; i++) {
            REQUIRE(same_bits(ours.uniform(), curand_uniform(&ref)));
            REQUIRE(ours.next() == curand(&ref));
        }
    }
}

TEST_CASE("philox_normal is the host generator's curandGenerateNormal, bit for bit", "[philox][curand]") {
    for (uint64_t seed : {uint64_t(0), uint64_t(1337), ~uint64_t(0), uint64_t(0x0123456789abcdefULL)}) {
        HostGenerator g(seed);
        // Counts across several rounds of the generator's 2^16 subsequences, at init_params's offsets.
        for (uint64_t tensor : {0, 1, 5, 40}) {
            for (size_t n : {size_t(2), size_t(64), size_t(262146), size_t(600002)}) {
                const uint64_t offset = tensor << 40;
                std::vector<float> ref(n), ours(n);
                REQUIRE(curandSetGeneratorOffset(g.gen, offset) == CURAND_STATUS_SUCCESS);
                REQUIRE(curandGenerateNormal(g.gen, ref.data(), n, 0.25f, 0.02f) == CURAND_STATUS_SUCCESS);
                philox_normal(ours.data(), n, seed, offset, 0.25f, 0.02f);
                size_t differ = 0;
                for (size_t i = 0; i < n; i++) differ += !same_bits(ours[i], ref[i]);
                INFO("seed " << seed << " offset " << offset << " n " << n);
                REQUIRE(differ == 0);
            }
        }
    }
}

TEST_CASE("init_params gives the weights cuRAND's host generator gave", "[philox][curand]") {
    for (const std::string family : {"gpt2", "llama3", "qwen3"}) {
        ModelConfig cfg = test::tiny_config(family);
        if (family == "qwen3") {  // odd tensors (37 x 15): their last element takes the first of a pair
            cfg.vocab_size = 37;
            cfg.hidden_size = 15;
            cfg.validate();
        }
        const ParamTable table(cfg);
        std::vector<float> ours(table.total), ref(table.total);
        init_params(ours.data(), table, cfg, 4242);
        // init_params before src/philox.h: the host generator, per tensor at offset 2^40 i.
        HostGenerator g(4242);
        const float residual_scale = 1.0f / std::sqrt(2.0f * float(cfg.num_hidden_layers));
        for (size_t i = 0; i < table.tensors.size(); i++) {
            const TensorInfo& t = table.tensors[i];
            float* w = ref.data() + t.offset;
            const size_t n = t.numel();
            if (t.kind == ParamKind::Norm) std::fill(w, w + n, 1.0f);
            if (t.kind == ParamKind::Bias) std::fill(w, w + n, 0.0f);
            if (t.kind == ParamKind::Norm || t.kind == ParamKind::Bias) continue;
            const bool residual = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
            const float std = 0.02f * (residual ? residual_scale : 1.0f);
            curandSetGeneratorOffset(g.gen, uint64_t(i) << 40);
            const size_t even = n & ~size_t(1);
            if (even) curandGenerateNormal(g.gen, w, even, 0.0f, std);
            if (n & 1) {
                float pair[2];
                curandGenerateNormal(g.gen, pair, 2, 0.0f, std);
                w[n - 1] = pair[0];
            }
        }
        size_t differ = 0;
        for (size_t i = 0; i < ours.size(); i++) differ += !same_bits(ours[i], ref[i]);
        INFO(family);
        CHECK(differ == 0);
    }
}

TEST_CASE("RouteSampler draws the routes it drew on cuRAND", "[route][curand]") {
    // The sampler before src/philox.h, on curand_init / curand_uniform.
    const auto curand_route = [](int L, double p_own, const RouteKey& key) {
        curandStatePhilox4_32_10_t state;
        curand_init(key.seed, key.microbatch * (uint64_t(1) << 16) + key.rank, 0, &state);
        Route r;
        r.kv_src.assign(L, 0);
        for (int l = 1; l < L; l++) {
            const float own = curand_uniform(&state), pick = curand_uniform(&state);
            const int src = std::clamp(int(std::ceil(double(pick) * l)) - 1, 0, l - 1);
            r.kv_src[l] = double(own) <= p_own ? l : src;
        }
        return r;
    };
    std::mt19937_64 rng(5);
    for (int L : {2, 6, 12, 36}) {
        for (double p : {0.0, 0.3, 0.5, 1.0}) {
            const RouteSampler sampler(L, p);
            for (int i = 0; i < 2000; i++) {
                const RouteKey key{i % 2 ? rng() : 1337, i % 3 ? uint64_t(i) : rng() >> 17, uint32_t(rng() % 8)};
                REQUIRE(sampler.sample(key) == curand_route(L, p, key));
            }
        }
    }
}
