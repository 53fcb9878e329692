// ./test_grad: every backward against central finite differences, in double precision.
//
// Layer checks: each ref/ layer under the loss sum(out * R) for a random R, so its backward
// runs with dout = R. Gradient buffers start filled with random values, which must survive
// (every backward accumulates).
// Model checks: the loss gradient of the whole model for every parameter tensor (all
// entries of small tensors, a random sample of large ones), per family and route.
// The error of a tensor is max|analytic - numeric| / max(|analytic|, |numeric|) over the
// checked entries (see fd_error for tensors whose gradient is zero); every one must be
// below --tol (1e-6, DESIGN.md section 6).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ref/activations.h"
#include "ref/attention.h"
#include "ref/cross_entropy.h"
#include "ref/embedding.h"
#include "ref/layernorm.h"
#include "ref/linear.h"
#include "ref/residual.h"
#include "ref/rmsnorm.h"
#include "ref/rope.h"
#include "src/cpu_ops.h"
#include "src/model.h"
#include "tests/fixtures.h"

using namespace rkv;
using Vec = std::vector<double>;

namespace {

// Fourth-order central differences: truncation ~h^4 f^(5), rounding ~eps f / h, both
// around 1e-12 at this step for O(1) inputs.
constexpr double kStep = 1e-3;

// Relative error of analytic against numeric d(loss)/dx over the entries in idx. A tensor
// whose true gradient is zero (GPT-2's k_proj.bias: softmax ignores a shift of every key
// along q) is measured against `floor`, a small fraction of the model's gradient scale.
double fd_error(const std::function<double()>& loss, double* x, const double* analytic, const std::vector<size_t>& idx,
                double floor = 0) {
    double max_diff = 0, max_mag = 0;
    for (size_t i : idx) {
        const double x0 = x[i];
        auto at = [&](double dx) {
            x[i] = x0 + dx;
            return loss();
        };
        const double d1 = at(kStep) - at(-kStep), d2 = at(2 * kStep) - at(-2 * kStep);
        x[i] = x0;
        const double numeric = (8 * d1 - d2) / (12 * kStep);
        max_diff = std::max(max_diff, std::abs(analytic[i] - numeric));
        max_mag = std::max({max_mag, std::abs(analytic[i]), std::abs(numeric)});
    }
    if (max_mag == 0) return 0;  // both exactly zero: a layer whose K/V nobody reads
    return max_diff / std::max(max_mag, floor);
}

std::vector<size_t> all_indices(size_t n) {
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    return idx;
}

double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

struct Report {
    double tol;
    int failures = 0;
    void row(const std::string& what, double err) {
        const bool ok = err < tol && std::isfinite(err);
        failures += !ok;
        fmt::print("  {:<52} {:10.3e}{}\n", what, err, ok ? "" : "   FAIL");
    }
};

// One layer: inputs it differentiates, and a forward that returns sum(out * R).
struct LayerCheck {
    std::mt19937_64& rng;
    Report& report;
    std::string layer;
    std::vector<std::pair<std::string, Vec*>> inputs;

    Vec random(size_t n, double mean = 0, double std = 1) {
        Vec v(n);
        test::fill_normal(v.data(), n, rng, mean, std);
        return v;
    }

    // grads start random (g0) so that `backward` must accumulate; it fills grads[i] for inputs[i].
    void run(const std::function<double()>& loss, const std::function<void(std::vector<Vec>&)>& backward) {
        std::vector<Vec> grads, g0;
        for (auto& [name, x] : inputs) g0.push_back(random(x->size()));
        grads = g0;
        loss();
        backward(grads);
        for (size_t i = 0; i < inputs.size(); i++) {
            for (size_t j = 0; j < grads[i].size(); j++) grads[i][j] -= g0[i][j];
            Vec* x = inputs[i].second;
            report.row(fmt::format("{} d{}", layer, inputs[i].first),
                       fd_error(loss, x->data(), grads[i].data(), all_indices(x->size())));
        }
    }
};

void check_layers(std::mt19937_64& rng, Report& report) {
    fmt::print("layers\n");
    const int B = 2, T = 5, C = 8, N = B * T, OC = 6, NH = 4, NKV = 2, HS = 6, V = 11;
    auto make = [&](const char* name) { return LayerCheck{rng, report, name, {}}; };

    {  // embedding, learned positions
        auto lc = make("embedding");
        Vec wte = lc.random(V * C), wpe = lc.random(T * C), out(N * C), R = lc.random(N * C);
        std::vector<int> tokens(N);
        for (int i = 0; i < N; i++) tokens[i] = int(rng() % 4);  // repeats exercise accumulation
        lc.inputs = {{"wte", &wte}, {"wpe", &wpe}};
        EmbeddingArgs<double, double> a{.B = B,
                                        .T = T,
                                        .C = C,
                                        .tokens = tokens.data(),
                                        .wte = wte.data(),
                                        .wpe = wpe.data(),
                                        .out = out.data(),
                                        .dout = R.data()};
        lc.run(
            [&] {
                ref::embedding_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dwte = g[0].data(), a.dwpe = g[1].data();
                ref::embedding_backward(a);
            });
    }
    {
        auto lc = make("layernorm");
        Vec x = lc.random(N * C, 0.3, 2), w = lc.random(C, 1, 0.3), b = lc.random(C), out(N * C), mean(N), rstd(N);
        Vec R = lc.random(N * C);
        lc.inputs = {{"inp", &x}, {"w", &w}, {"b", &b}};
        NormArgs<double, double> a{.N = N,
                                   .C = C,
                                   .eps = 1e-5,
                                   .inp = x.data(),
                                   .w = w.data(),
                                   .bias = b.data(),
                                   .out = out.data(),
                                   .mean = mean.data(),
                                   .rstd = rstd.data(),
                                   .dout = R.data()};
        lc.run(
            [&] {
                ref::layernorm_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dinp = g[0].data(), a.dw = g[1].data(), a.db = g[2].data();
                ref::layernorm_backward(a);
            });
    }
    // RMSNorm over the hidden size, and as QK-norm over rows of one head (B*T*NH rows of HS).
    for (auto [name, rows, cols] : {std::tuple{"rmsnorm", N, C}, std::tuple{"qk-norm", N * NH, HS}}) {
        auto lc = make(name);
        Vec x = lc.random(rows * cols, 0.3, 2), w = lc.random(cols, 1, 0.3), out(rows * cols), rstd(rows);
        Vec R = lc.random(rows * cols);
        lc.inputs = {{"inp", &x}, {"w", &w}};
        const int n = rows, c = cols;
        NormArgs<double, double> a{.N = n,
                                   .C = c,
                                   .eps = 1e-6,
                                   .inp = x.data(),
                                   .w = w.data(),
                                   .out = out.data(),
                                   .rstd = rstd.data(),
                                   .dout = R.data()};
        lc.run(
            [&] {
                ref::rmsnorm_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dinp = g[0].data(), a.dw = g[1].data();
                ref::rmsnorm_backward(a);
            });
    }
    {
        auto lc = make("linear");
        Vec x = lc.random(N * C), w = lc.random(OC * C), b = lc.random(OC), out(N * OC), R = lc.random(N * OC);
        lc.inputs = {{"inp", &x}, {"weight", &w}, {"bias", &b}};
        LinearArgs<double, double> a{.N = N,
                                     .C = C,
                                     .OC = OC,
                                     .inp = x.data(),
                                     .weight = w.data(),
                                     .bias = b.data(),
                                     .out = out.data(),
                                     .dout = R.data()};
        lc.run(
            [&] {
                ref::linear_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dinp = g[0].data(), a.dweight = g[1].data(), a.dbias = g[2].data();
                ref::linear_backward(a);
            });
    }
    // Unscaled, and under llama3's scaling with pairs in its interpolated and divided bands.
    for (const RopeParams rope : {RopeParams{100.0}, RopeParams{100.0, RopeType::llama3, 4.0, 1.0, 4.0, 16}}) {
        auto lc = make(rope.type == RopeType::none ? "rope" : "rope (llama3 scaling)");
        Vec x = lc.random(N * NH * HS), out(N * NH * HS), R = lc.random(N * NH * HS);
        lc.inputs = {{"inp", &x}};
        RopeArgs<double, double> a{
            .B = B, .T = T, .NH = NH, .HS = HS, .rope = rope, .inp = x.data(), .out = out.data(), .dout = R.data()};
        lc.run(
            [&] {
                ref::rope_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dinp = g[0].data();
                ref::rope_backward(a);
            });
    }
    for (int nkv : {NH, NKV, 1}) {  // MHA, GQA, MQA
        auto lc = make(nkv == NH ? "attention (MHA)" : nkv == 1 ? "attention (MQA)" : "attention (GQA)");
        Vec q = lc.random(N * NH * HS), k = lc.random(N * nkv * HS), v = lc.random(N * nkv * HS);
        Vec out(N * NH * HS), lse(B * NH * T), R = lc.random(N * NH * HS);
        lc.inputs = {{"q", &q}, {"k", &k}, {"v", &v}};
        const AttentionArgs<double, double> a{.B = B,
                                              .T = T,
                                              .NH = NH,
                                              .NKV = nkv,
                                              .HS = HS,
                                              .q = q.data(),
                                              .k_all = k.data(),
                                              .v_all = v.data(),
                                              .out = out.data(),
                                              .lse = lse.data(),
                                              .dout = R.data()};
        lc.run(
            [&] {
                ref::attention_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                auto b = a;
                b.dq = g[0].data(), b.dk_all = g[1].data(), b.dv_all = g[2].data();
                ref::attention_backward(b);
            });
    }
    {
        auto lc = make("gelu");
        Vec x = lc.random(N * C, 0, 2), out(N * C), R = lc.random(N * C);
        lc.inputs = {{"inp", &x}};
        lc.run(
            [&] {
                ref::gelu_forward(out.data(), x.data(), x.size());
                return dot(out, R);
            },
            [&](auto& g) { ref::gelu_backward(g[0].data(), R.data(), x.data(), x.size()); });
    }
    {
        auto lc = make("swiglu");
        Vec gate = lc.random(N * C, 0, 2), up = lc.random(N * C), out(N * C), R = lc.random(N * C);
        lc.inputs = {{"gate", &gate}, {"up", &up}};
        SwiGLUArgs<double> a{
            .n = out.size(), .gate = gate.data(), .up = up.data(), .out = out.data(), .dout = R.data()};
        lc.run(
            [&] {
                ref::swiglu_forward(a);
                return dot(out, R);
            },
            [&](auto& g) {
                a.dgate = g[0].data(), a.dup = g[1].data();
                ref::swiglu_backward(a);
            });
    }
    {
        auto lc = make("residual");
        Vec a = lc.random(N * C), b = lc.random(N * C), out(N * C), R = lc.random(N * C);
        lc.inputs = {{"a", &a}, {"b", &b}};
        lc.run(
            [&] {
                ref::residual_forward(out.data(), a.data(), b.data(), out.size());
                return dot(out, R);
            },
            [&](auto& g) { ref::residual_backward(g[0].data(), g[1].data(), R.data(), out.size()); });
    }
    {  // the loss itself: dloss * sum of per-token losses, some targets skipped
        auto lc = make("cross-entropy");
        Vec logits = lc.random(N * V, 0, 3), losses(N);
        std::vector<int> targets(N);
        for (int i = 0; i < N; i++) targets[i] = i % 4 == 1 ? -1 : int(rng() % V);
        const double dloss = 0.37;
        lc.inputs = {{"logits", &logits}};
        const CrossEntropyArgs<double, double> a{.N = N,
                                                 .V = V,
                                                 .logits = logits.data(),
                                                 .targets = targets.data(),
                                                 .losses = losses.data(),
                                                 .dloss = dloss};
        lc.run(
            [&] {
                ref::cross_entropy_forward(a);
                double s = 0;
                for (double x : losses) s += x;
                return dloss * s;
            },
            [&](auto& g) {
                auto b = a;
                b.dlogits = g[0].data();
                ref::cross_entropy_backward(b);
            });
    }
}

// The whole model: returns failures. Prints per tensor the worst error over the routes.
void check_model(const std::string& family, const std::string& route_filter, uint64_t seed, int samples,
                 Recompute recompute, std::mt19937_64& rng, Report& report, bool verbose) {
    const ModelConfig cfg = test::tiny_config(family);
    const int B = 2, T = 5;
    CpuOps<double> ops;
    Model<double> model(cfg, ops, B, T, 0, true, recompute);
    test::random_params(model.params, model.table, rng);
    auto [inputs, targets] = test::random_batch(B * T, cfg.vocab_size, rng);
    std::vector<double> grads(model.table.total);

    std::map<std::string, double> worst;  // tensor -> max error over routes
    std::vector<std::string> order;
    for (auto& t : model.table.tensors) order.push_back(t.name);
    fmt::print("model {} (L {}, C {}, NH {}, NKV {}, HS {}, B {}, T {}, --recompute {})\n", family,
               cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
               B, T, recompute_name(recompute));
    for (auto& [name, route] : test::named_routes(cfg.num_hidden_layers, seed)) {
        if (route_filter != "all" && route_filter != name) continue;
        model.zero_grad();
        model.forward_backward(inputs.data(), targets.data(), route);
        std::copy(model.grads, model.grads + model.table.total, grads.begin());
        auto loss = [&] { return model.forward(inputs.data(), targets.data(), route); };
        double scale = 0;
        for (double g : grads) scale = std::max(scale, std::abs(g));
        double route_worst = 0;
        std::string route_worst_name;
        for (auto& t : model.table.tensors) {
            std::vector<size_t> idx;
            if (int(t.numel()) <= samples * 2) {
                idx = all_indices(t.numel());
            } else {
                for (int s = 0; s < samples; s++) idx.push_back(rng() % t.numel());
            }
            for (auto& i : idx) i += t.offset;
            const double err = fd_error(loss, model.params, grads.data(), idx, 1e-3 * scale);
            worst[t.name] = std::max(worst[t.name], err);
            if (err >= route_worst) route_worst = err, route_worst_name = t.name;
            if (verbose) fmt::print("    [{}] {:<48} {:10.3e}\n", name, t.name, err);
        }
        report.row(fmt::format("route {:<16} [{}] worst", name, route.str()), route_worst);
    }
    for (auto& name : order)
        if (worst.count(name)) report.row("  " + name, worst[name]);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"rkv gradient checks: every backward against central finite differences, in double"};
    std::string family = "all", route = "all", recompute = "none";
    uint64_t seed = 1337;
    int samples = 12;
    double tol = 1e-6;
    bool verbose = false, skip_layers = false;
    // Unknown names are refused with the valid ones listed: a typo must not pass having checked nothing.
    std::vector<std::string> routes{"all"};
    const int L = test::tiny_config("gpt2").num_hidden_layers;
    for (auto& [name, r] : test::named_routes(L, seed)) routes.push_back(name);
    app.add_option("--family", family, "gpt2, llama3, qwen3 or all")
        ->check(CLI::IsMember({"all", "gpt2", "llama3", "qwen3"}));
    app.add_option("--route", route, "the route to check (default all)")->check(CLI::IsMember(routes));
    app.add_option("--seed", seed, "seed of the random inputs, weights and training routes");
    app.add_option("--samples", samples, "entries checked in a large tensor (small ones: all)");
    app.add_option("--tol", tol, "largest relative error that passes");
    app.add_option("--recompute", recompute, "the model's backward: none, mlp or layer (src/recompute.h)")
        ->check(CLI::IsMember(recompute_names()));
    app.add_flag("--verbose", verbose, "print every tensor under every route");
    app.add_flag("--no-layers", skip_layers, "skip the per-layer checks");
    CLI11_PARSE(app, argc, argv);

    std::mt19937_64 rng(seed);
    Report report{tol};
    if (!skip_layers) check_layers(rng, report);
    for (const std::string f : {"gpt2", "llama3", "qwen3"})
        if (family == "all" || family == f)
            check_model(f, route, seed, samples, parse_recompute(recompute), rng, report, verbose);
    fmt::print("{}\n", report.failures ? fmt::format("test_grad: {} checks above {:.0e}", report.failures, tol)
                                       : fmt::format("test_grad: all checks below {:.0e}", tol));
    return report.failures ? 1 : 0;
}
