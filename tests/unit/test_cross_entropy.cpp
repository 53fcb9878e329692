// ref::cross_entropy_fused_row (the CPU path's classifier) against ref's forward and backward
// on fresh random rows: in double, and in float as the CPU path runs it, against the double
// result. The gradient's entries are measured against dloss, their scale: a row its target
// dominates has all of them near 0, where either computation is left with the rounding of
// p_target - 1. The small loss of such a row keeps its relative precision.
// CpuOps' classifier over rows, as OpenMP shares them out, gives the rows one at a time.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "ref/cross_entropy.h"
#include "src/cpu_ops.h"

namespace {

template <class S>
std::vector<S> random_row(int V, double scale, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-scale, scale);
    std::vector<S> row(V);
    for (S& x : row) x = S(u(rng));
    return row;
}

// The largest |a - b|.
template <class A, class B>
double max_gap(const std::vector<A>& a, const std::vector<B>& b) {
    double gap = 0;
    for (size_t i = 0; i < a.size(); i++) gap = std::max(gap, std::abs(double(a[i]) - double(b[i])));
    return gap;
}

}  // namespace

TEST_CASE("the fused cross-entropy row is ref's forward and backward", "[cross_entropy]") {
    std::mt19937_64 rng(std::random_device{}());
    for (const int V : {1, 7, 1000, 50257}) {
        for (const double scale : {1.0, 8.0}) {
            INFO("V " << V << " scale " << scale);
            const std::vector<double> logits = random_row<double>(V, scale, rng);
            const int target = int(rng() % V);
            const double dloss = 0.25;
            double loss_ref = 0;
            std::vector<double> d_ref(V, 0.0);
            const rkv::CrossEntropyArgs<double, double> a{.N = 1,
                                                          .V = V,
                                                          .logits = logits.data(),
                                                          .targets = &target,
                                                          .losses = &loss_ref,
                                                          .dloss = dloss,
                                                          .dlogits = d_ref.data()};
            rkv::ref::cross_entropy_forward(a);
            rkv::ref::cross_entropy_backward(a);

            std::vector<double> row = logits;
            double loss = std::nan("");
            rkv::ref::cross_entropy_fused_row(row.data(), &loss, target, dloss, V);
            CHECK(std::abs(loss - loss_ref) <= 1e-12 * std::max(1.0, loss_ref));
            CHECK(max_gap(row, d_ref) < 1e-12 * dloss);

            std::vector<float> row_f(logits.begin(), logits.end());
            float loss_f = std::nanf("");
            rkv::ref::cross_entropy_fused_row(row_f.data(), &loss_f, target, float(dloss), V);
            CHECK(std::abs(loss_f - loss_ref) <= 1e-5 * std::max(1.0, loss_ref));
            CHECK(max_gap(row_f, d_ref) < 1e-6 * dloss);
        }
    }
}

TEST_CASE("the fused cross-entropy row keeps a dominated row's small loss", "[cross_entropy]") {
    // The target 12 above the rest: loss = log(1 + 4 e^-12), about 2.5e-5. As log(sum) in float
    // it would be off by up to float's spacing near 1 (6e-8), 2.4e-3 of it.
    std::vector<float> row = {0.0f, 0.0f, 12.0f, 0.0f, 0.0f};
    float loss = -1.0f;
    rkv::ref::cross_entropy_fused_row(row.data(), &loss, 2, 1.0f, 5);
    const double want = std::log1p(4 * std::exp(-12.0));
    CHECK(std::abs(loss - want) < 1e-6 * want);
}

TEST_CASE("CpuOps' classifier: every row as the fused row, skipped rows zero, rows ld apart", "[cross_entropy]") {
    std::mt19937_64 rng(std::random_device{}());
    const int N = 37, V = 300, ld = 320;
    std::vector<float> logits(size_t(N) * ld, 123.0f);  // the padding past V must keep its value
    for (int n = 0; n < N; n++) {
        const std::vector<float> row = random_row<float>(V, 8.0, rng);
        std::copy(row.begin(), row.end(), logits.begin() + size_t(n) * ld);
    }
    std::vector<int> targets(N);
    for (int& t : targets) t = int(rng() % V);
    targets[3] = -1;
    std::vector<float> got = logits, losses(N, std::nanf(""));
    rkv::CpuOps<float> ops;
    ops.fused_classifier({.N = N,
                          .V = V,
                          .ld = ld,
                          .targets = targets.data(),
                          .losses = losses.data(),
                          .dloss = 0.5f,
                          .dlogits = got.data()});
    for (int n = 0; n < N; n++) {
        INFO("row " << n);
        std::vector<float> want(logits.begin() + size_t(n) * ld, logits.begin() + size_t(n) * ld + V);
        float loss = 0;
        rkv::ref::cross_entropy_fused_row(want.data(), &loss, targets[n], 0.5f, V);
        CHECK(losses[n] == loss);
        CHECK(std::equal(want.begin(), want.end(), got.begin() + size_t(n) * ld));
        CHECK(std::all_of(got.begin() + size_t(n) * ld + V, got.begin() + size_t(n + 1) * ld,
                          [](float x) { return x == 123.0f; }));
    }
    CHECK(losses[3] == 0.0f);
}
