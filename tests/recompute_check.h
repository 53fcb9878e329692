// Activation recomputation against none, bit for bit: the same weights, batch and route through
// Models that keep every layer's activations, recompute the MLP's, or recompute whole layers;
// the losses and every gradient must be equal, and so must the K/V gradients the route sums.
// Shared by the CPU path's unit test and the CUDA path's kernel test.
#pragma once
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "optim/adamw.h"
#include "src/model.h"
#include "tests/fixtures.h"

namespace rkv::test {

// The families of the source paper at tiny size: GPT-2 (LayerNorm, learned positions, GELU),
// Llama 3 (RoPE with llama3 scaling, SwiGLU, GQA 2:1), Qwen3 (QK-norm) and a Mistral-like
// model (unscaled RoPE, GQA 4:1).
inline std::vector<ModelConfig> recompute_families() {
    ModelConfig mistral = tiny_config("llama3");
    mistral.model_type = "mistral";
    mistral.rope = RopeParams{};
    mistral.rope.theta = 100.0;
    mistral.num_key_value_heads = 1;
    mistral.validate();
    return {tiny_config("gpt2"), tiny_config("llama3"), tiny_config("qwen3"), mistral};
}

template <class S>
void check_recompute_bitwise(LayerOps<S>& ops) {
    using Master = master_t<S>;
    for (const ModelConfig& c : recompute_families()) {
        INFO(c.model_type << " NKV " << c.num_key_value_heads << " qk_norm " << c.qk_norm);
        const int B = 2, T = 7, L = c.num_hidden_layers;
        std::mt19937_64 rng(std::random_device{}());
        std::vector<float> weights(ParamTable(c).total);
        init_params(weights.data(), ParamTable(c), c, rng());
        Model<S> none(c, ops, B, T, 0, true, Recompute::none), mlp(c, ops, B, T, 0, true, Recompute::mlp),
            layer(c, ops, B, T, 0, true, Recompute::layer);
        AdamW<S> opt(none.table, {}, ops);
        int borrowing = 0;  // routes under which some layer reads an earlier layer's K/V
        for (const auto& [name, route] : named_routes(L, rng())) {
            INFO("route " << name << ": " << route.str());
            for (int l = 0; l < L; l++) borrowing += route.kv_src[l] != l;
            auto [inputs, targets] = random_batch(B * T, c.vocab_size, rng);
            std::vector<double> losses;
            std::vector<std::vector<Master>> grads;
            std::vector<std::vector<S>> dkv;
            for (Model<S>* m : {&none, &mlp, &layer}) {
                opt.set_weights(m->params, weights);
                m->zero_grad();
                losses.push_back(m->forward_backward(inputs.data(), targets.data(), route));
                grads.emplace_back(m->table.total);
                ops.download(grads.back().data(), m->grads, m->table.total);
                std::vector<S> d;
                const size_t n = size_t(B) * T * c.kv_dim();
                for (int j = 0; j < L; j++)
                    if (route.is_read(j)) {
                        d.resize(d.size() + 2 * n);
                        ops.download(d.data() + d.size() - 2 * n, m->dk(j), n);
                        ops.download(d.data() + d.size() - n, m->dv(j), n);
                    }
                dkv.push_back(d);
            }
            double mag = 0;
            for (Master g : grads[0]) mag += std::abs(double(g));
            CHECK(mag > 0);
            for (int r = 1; r < 3; r++) {
                INFO("--recompute " << (r == 1 ? "mlp" : "layer"));
                CHECK(losses[r] == losses[0]);
                CHECK(std::memcmp(grads[r].data(), grads[0].data(), grads[0].size() * sizeof(Master)) == 0);
                CHECK(std::memcmp(dkv[r].data(), dkv[0].data(), dkv[0].size() * sizeof(S)) == 0);
            }
        }
        CHECK(borrowing > 0);
    }
}

}  // namespace rkv::test
