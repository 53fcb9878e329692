// Activation recomputation on the CPU path: the gradients and losses of --recompute mlp and
// layer are none's bit for bit (tests/recompute_check.h), and the layout keeps the recomputed
// activations for one layer: with more layers, recompute layer's activations grow by the
// residual stream alone.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "src/cpu_ops.h"
#include "tests/recompute_check.h"

using namespace rkv;

TEST_CASE("recompute mlp and layer give none's losses and gradients bitwise, every family, routed",
          "[model][recompute]") {
    CpuOps<float> ops;
    test::check_recompute_bitwise<float>(ops);
}

namespace {

std::map<std::string, size_t> bytes_by_kind(const ModelConfig& c, int B, int T, Recompute r) {
    std::map<std::string, size_t> kinds;
    for (const ModelBuffer& b : Model<float>::buffers(c, B, T, 0, true, r)) kinds[b.kind] += b.bytes;
    return kinds;
}

}  // namespace

TEST_CASE("recompute keeps the recomputed activations for one layer", "[model][recompute]") {
    for (const ModelConfig& c4 : test::recompute_families()) {
        INFO(c4.model_type);
        ModelConfig c8 = c4;
        c8.num_hidden_layers = 8;
        const int B = 2, T = 8;  // N*C floats: whole multiples of the arena's 64-byte alignment
        const size_t NC = size_t(B) * T * c4.hidden_size, NF = size_t(B) * T * c4.intermediate_size;
        auto growth = [&](Recompute r, const char* kind) {  // bytes per 4 more layers
            return bytes_by_kind(c8, B, T, r)[kind] - bytes_by_kind(c4, B, T, r)[kind];
        };
        // layer: only resid (L+1, N, C) grows (the route's L ints before it shift its padding);
        // lse (attention) is recomputed too.
        CHECK(growth(Recompute::layer, "activations") <= 4 * NC * sizeof(float));
        CHECK(growth(Recompute::layer, "activations") + 64 > 4 * NC * sizeof(float));
        CHECK(growth(Recompute::layer, "attention") == 0);
        // K, V and their gradients are the route's: stored for every layer in every mode.
        CHECK(growth(Recompute::layer, "kv_route") ==
              growth(Recompute::none, "kv_route") - 4 * NC / c4.hidden_size * c4.kv_dim() * sizeof(float) *
                                                        (c4.qk_norm || c4.positions == Positions::RoPE));
        // mlp: none's growth less ln2 (and its statistics) and fc, up, act of 4 layers.
        const size_t mlp_per_layer =
            (NC + (c4.norm == Norm::LayerNorm ? 2 : 1) * NC / c4.hidden_size + (c4.mlp == Mlp::SwiGLU ? 3 : 2) * NF) *
            sizeof(float);
        CHECK(growth(Recompute::none, "activations") - growth(Recompute::mlp, "activations") == 4 * mlp_per_layer);
        // layer: and ln1 (and its statistics), q's projection, q, q_rstd, att and mid too.
        const size_t N = NC / c4.hidden_size, NQ = N * c4.q_dim();
        const bool tr = c4.qk_norm || c4.positions == Positions::RoPE;
        const size_t attention_per_layer = (2 * NC + (c4.norm == Norm::LayerNorm ? 2 : 1) * N + (tr ? 3 : 2) * NQ +
                                            (c4.qk_norm ? N * c4.num_attention_heads : 0)) *
                                           sizeof(float);
        CHECK(growth(Recompute::none, "activations") - growth(Recompute::layer, "activations") ==
              4 * (attention_per_layer + mlp_per_layer));
        size_t none = 0, mlp = 0, layer = 0;
        for (auto& [k, b] : bytes_by_kind(c8, B, T, Recompute::none)) none += b;
        for (auto& [k, b] : bytes_by_kind(c8, B, T, Recompute::mlp)) mlp += b;
        for (auto& [k, b] : bytes_by_kind(c8, B, T, Recompute::layer)) layer += b;
        CHECK(layer < mlp);
        CHECK(mlp < none);
    }
}
