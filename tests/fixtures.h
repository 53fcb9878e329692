// Small models, named routes and random data shared by test_grad and the unit tests.
#pragma once
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "src/config.h"
#include "src/params.h"
#include "src/route.h"

namespace rkv::test {

// A model small enough for finite differences, with every feature of its family:
// GQA for llama3/qwen3, q_dim != hidden_size for qwen3 (as in the real Qwen3 sizes).
inline ModelConfig tiny_config(const std::string& family) {
    ModelConfig c;
    if (family == "gpt2")
        c = preset("gpt2-tiny");
    else if (family == "llama3")
        c = preset("llama3-tiny");
    else if (family == "qwen3")
        c = preset("qwen3-tiny");
    else
        throw std::invalid_argument("unknown family '" + family + "' (gpt2, llama3, qwen3)");
    c.vocab_size = 32;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = family == "gpt2" ? 4 : 2;
    c.head_dim = family == "qwen3" ? 6 : 4;
    c.max_position_embeddings = 8;
    c.rope.theta = 100.0;  // large enough angles at short lengths that a RoPE bug shows
    // Llama 3.1's scaling, with a context short enough that the pairs of 4-wide heads fall in its
    // interpolated and its divided band.
    if (family == "llama3") c.rope = {100.0, RopeType::llama3, 4.0, 1.0, 4.0, 16};
    c.validate();
    return c;
}

// The routes every gradient check runs: name -> route over L layers.
inline std::vector<std::pair<std::string, Route>> named_routes(int L, uint64_t seed) {
    std::vector<std::pair<std::string, Route>> routes;
    routes.emplace_back("all-own", all_own(L));
    Route prev = all_own(L);
    for (int l = 1; l < L; l++) prev.kv_src[l] = l - 1;
    routes.emplace_back("borrow-previous", prev);
    routes.emplace_back("borrow-layer0", Route{std::vector<int>(L, 0)});
    RouteSampler sampler(L, 0.5);
    for (uint64_t i = 0; i < 3; i++) routes.emplace_back("random-" + std::to_string(i), sampler.sample({seed, i, 0}));
    routes.emplace_back("keep-every-2", keep_every(L, 2));
    routes.emplace_back("keep-every-3", keep_every(L, 3));
    return routes;
}

template <class S>
void fill_normal(S* x, size_t n, std::mt19937_64& rng, double mean = 0.0, double std = 1.0) {
    std::normal_distribution<double> d(mean, std);
    for (size_t i = 0; i < n; i++) x[i] = S(d(rng));
}

// Parameters of O(1) size so that every path through the model carries signal:
// matrices N(0, 1/fan_in), norm weights near 1, biases and embeddings random.
template <class S>
void random_params(S* params, const ParamTable& table, std::mt19937_64& rng) {
    for (auto& t : table.tensors) {
        S* w = params + t.offset;
        switch (t.kind) {
            case ParamKind::Matrix: fill_normal(w, t.numel(), rng, 0.0, 1.0 / std::sqrt(double(t.shape[1]))); break;
            case ParamKind::Embedding: fill_normal(w, t.numel(), rng, 0.0, 1.0); break;
            case ParamKind::Norm: fill_normal(w, t.numel(), rng, 1.0, 0.2); break;
            case ParamKind::Bias: fill_normal(w, t.numel(), rng, 0.0, 0.2); break;
        }
    }
}

// Random tokens (B*T) and targets with a few skipped (-1).
inline std::pair<std::vector<int>, std::vector<int>> random_batch(int n, int V, std::mt19937_64& rng) {
    std::uniform_int_distribution<int> tok(0, V - 1);
    std::vector<int> inputs(n), targets(n);
    for (int i = 0; i < n; i++) {
        inputs[i] = tok(rng);
        targets[i] = i % 7 == 3 ? -1 : tok(rng);
    }
    return {inputs, targets};
}

// Positions t0 .. t0 + n - 1 of every sequence of x (B, T, width): (B, n, width). Tokens are
// width 1; logits width V (decoding in pieces against a whole-sequence forward).
template <class E>
std::vector<E> positions(const std::vector<E>& x, int B, int T, int width, int t0, int n) {
    std::vector<E> out;
    for (int b = 0; b < B; b++)
        out.insert(out.end(), x.begin() + (size_t(b) * T + t0) * width, x.begin() + (size_t(b) * T + t0 + n) * width);
    return out;
}

}  // namespace rkv::test
