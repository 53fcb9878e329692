// The driver under routes: unread layers do no K/V work, borrowed K/V gradients sum
// over their readers, the model follows the route it is given, and it reports each
// gradient range once that range is final (what the overlapped all-reduce relies on).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "ref/attention.h"
#include "src/cpu_ops.h"
#include "src/model.h"
#include "tests/fixtures.h"

using namespace rkv;

namespace {

// CpuOps that records which buffers the linear layers write.
struct SpyOps : CpuOps<float> {
    std::vector<const float*> outputs, weight_grads;
    void linear_forward(const LinearArgs<float, float>& a) override {
        outputs.push_back(a.out);
        CpuOps<float>::linear_forward(a);
    }
    void linear_gelu_forward(const LinearArgs<float, float>& a) override {
        outputs.push_back(a.pre);
        CpuOps<float>::linear_gelu_forward(a);
    }
    void linear_backward(const LinearArgs<float, float>& a) override {
        weight_grads.push_back(a.dweight);
        CpuOps<float>::linear_backward(a);
    }
    void linear_gelu_backward(const LinearArgs<float, float>& a) override {
        weight_grads.push_back(a.dweight);
        CpuOps<float>::linear_gelu_backward(a);
    }
};

bool contains(const std::vector<const float*>& v, const float* p) {
    return std::find(v.begin(), v.end(), p) != v.end();
}

}  // namespace

TEST_CASE("a layer nobody reads computes no K/V and gets no W_k, W_v gradient", "[model][route]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        std::mt19937_64 rng(std::random_device{}());
        SpyOps ops;
        Model<float> model(c, ops, 2, 5);
        test::random_params(model.params, model.table, rng);
        auto [inputs, targets] = test::random_batch(10, c.vocab_size, rng);
        const Route route{{0, 0, 0, 3}};  // layers 1, 2 read layer 0: nobody reads 1 and 2
        model.zero_grad();
        model.forward_backward(inputs.data(), targets.data(), route);
        const int L = c.num_hidden_layers;
        // The GEMMs of a layer (q, o and the MLP's) plus k and v of each read layer (the head
        // is head_forward's).
        const int mlp = c.mlp == Mlp::SwiGLU ? 3 : 2;
        CHECK(ops.outputs.size() == size_t(L * (2 + mlp) + 2 * route.kept_layers().size()));
        for (int l = 0; l < L; l++) {
            const auto& w = model.table.layers[l];
            const bool read = route.is_read(l);
            CHECK(contains(ops.weight_grads, model.grads + w.k_w) == read);
            CHECK(contains(ops.weight_grads, model.grads + w.v_w) == read);
            const size_t n = size_t(c.kv_dim()) * c.hidden_size;
            for (size_t w_off : {w.k_w, w.v_w}) {
                double mag = 0;
                for (size_t i = 0; i < n; i++) mag += std::abs(model.grads[w_off + i]);
                CHECK((mag > 0) == read);
            }
        }
    }
}

TEST_CASE("a borrowed layer's K/V gradient is the sum of its readers'", "[model][route]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        const int B = 2, T = 5, N = B * T, L = c.num_hidden_layers;
        const int NH = c.num_attention_heads, NKV = c.num_key_value_heads, HS = c.head_dim;
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<double> ops;
        Model<double> model(c, ops, B, T);
        test::random_params(model.params, model.table, rng);
        auto [inputs, targets] = test::random_batch(N, c.vocab_size, rng);
        std::map<int, std::vector<double>> datt;
        model.on_attention_grad = [&](int l, const double* d) { datt[l].assign(d, d + size_t(N) * c.q_dim()); };
        for (const Route& route : {Route{{0, 0, 0, 0}}, Route{{0, 0, 1, 1}}, keep_every(L, 3)}) {
            INFO("route " << route.str());
            model.zero_grad();
            model.forward_backward(inputs.data(), targets.data(), route);
            const size_t n = size_t(N) * c.kv_dim();
            for (int j = 0; j < L; j++) {
                std::vector<double> dk(n, 0.0), dv(n, 0.0), dq(size_t(N) * c.q_dim());
                for (int l = j; l < L; l++)
                    if (route.kv_src[l] == j)
                        // The backward reads out and lse only.
                        ref::attention_backward<double>({.B = B,
                                                         .T = T,
                                                         .NH = NH,
                                                         .NKV = NKV,
                                                         .HS = HS,
                                                         .q = model.q(l),
                                                         .k_all = model.k(j),
                                                         .v_all = model.v(j),
                                                         .out = const_cast<double*>(model.att(l)),
                                                         .lse = const_cast<double*>(model.lse(l)),
                                                         .dout = datt[l].data(),
                                                         .dq = dq.data(),
                                                         .dk_all = dk.data(),
                                                         .dv_all = dv.data()});
                double err = 0, mag = 0;
                for (size_t i = 0; i < n; i++) {
                    err = std::max({err, std::abs(dk[i] - model.dk(j)[i]), std::abs(dv[i] - model.dv(j)[i])});
                    mag = std::max({mag, std::abs(dk[i]), std::abs(dv[i])});
                }
                INFO("layer " << j);
                CHECK((mag > 0) == route.is_read(j));
                if (route.is_read(j)) CHECK(err <= 1e-12 * mag);  // an unread layer's dK, dV are not kept
            }
        }
    }
}

TEST_CASE("the route changes the function, and all-own is the plain transformer", "[model][route]") {
    const ModelConfig c = test::tiny_config("llama3");
    std::mt19937_64 rng(std::random_device{}());
    CpuOps<double> ops;
    Model<double> model(c, ops, 2, 5);
    test::random_params(model.params, model.table, rng);
    auto [inputs, targets] = test::random_batch(10, c.vocab_size, rng);
    const double own = model.forward(inputs.data(), targets.data(), all_own(4));
    CHECK(own == model.forward(inputs.data(), targets.data(), all_own(4)));
    CHECK(own != model.forward(inputs.data(), targets.data(), keep_every(4, 2)));
    // Layer 0 is its own source under every route: its output cannot depend on the route.
    CHECK_THROWS_WITH(model.forward(inputs.data(), targets.data(), Route{{0, 2, 1, 3}}),
                      Catch::Contains("reads layer 2"));
    std::vector<int> bad = inputs;
    bad[3] = c.vocab_size;
    CHECK_THROWS_WITH(model.forward(bad.data(), targets.data(), all_own(4)), Catch::Contains("outside the vocabulary"));
}

TEST_CASE("gradients are final when backward reports them, in ranges that cover the buffer once", "[model][dist]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        std::mt19937_64 rng(std::random_device{}());
        CpuOps<float> ops;
        Model<float> model(c, ops, 2, 5);
        test::random_params(model.params, model.table, rng);
        auto [inputs, targets] = test::random_batch(10, c.vocab_size, rng);
        // Layers 1 and 2 read layer 0: layer 0's K/V gradients come from above it.
        const Route route{{0, 0, 0, 3}};
        std::vector<std::pair<size_t, size_t>> ranges;
        std::vector<float> reported(model.table.total, std::nanf(""));
        model.on_grads_final = [&](size_t begin, size_t end) {
            ranges.emplace_back(begin, end);
            std::copy(model.grads + begin, model.grads + end, reported.begin() + ptrdiff_t(begin));
        };
        model.zero_grad();
        model.forward_backward(inputs.data(), targets.data(), route);
        CHECK(ranges.size() == size_t(c.num_hidden_layers) + 2);
        std::sort(ranges.begin(), ranges.end());
        size_t covered = 0;
        for (auto [begin, end] : ranges) {
            CHECK(begin == covered);
            covered = end;
        }
        CHECK(covered == model.table.total);
        for (size_t i = 0; i < model.table.total; i++) REQUIRE(reported[i] == model.grads[i]);
    }
}

TEST_CASE("under a fixed training route (CLA) only the kept layers compute K/V, every micro-batch",
          "[model][route][train_route]") {
    for (auto family : {"gpt2", "llama3", "qwen3"}) {
        INFO(family);
        const ModelConfig c = test::tiny_config(family);
        const int L = c.num_hidden_layers;
        std::mt19937_64 rng(std::random_device{}());
        for (auto spec : {"keep-every:2", "layers:0,3", "keep-every:4"}) {
            INFO(spec);
            const TrainRoute policy(parse_train_route(spec), L, 0.5, 0.5, 10);
            SpyOps ops;
            Model<float> model(c, ops, 2, 5);
            test::random_params(model.params, model.table, rng);
            for (long step = 0; step < 3; step++) {
                const Route route = policy.at(step, {7, uint64_t(step), 0});
                auto [inputs, targets] = test::random_batch(10, c.vocab_size, rng);
                ops.outputs.clear();
                ops.weight_grads.clear();
                model.zero_grad();
                model.forward_backward(inputs.data(), targets.data(), route);
                // K and V GEMMs for the kept layers only: the others' projections never run.
                const int mlp = c.mlp == Mlp::SwiGLU ? 3 : 2;
                const size_t kept = route.kept_layers().size();
                CHECK(kept < size_t(L));
                CHECK(ops.outputs.size() == size_t(L * (2 + mlp) + 2 * kept));
                for (int l = 0; l < L; l++) {
                    const auto& w = model.table.layers[l];
                    CHECK(contains(ops.weight_grads, model.grads + w.k_w) == route.is_read(l));
                    CHECK(contains(ops.weight_grads, model.grads + w.v_w) == route.is_read(l));
                }
            }
        }
    }
}
