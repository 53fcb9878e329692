#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <random>

#include "optim/adamw.h"
#include "optim/schedule.h"
#include "ref/adamw.h"
#include "src/config.h"
#include "src/cpu_ops.h"
#include "tests/fixtures.h"

using namespace rkv;

TEST_CASE("learning-rate schedules", "[optim]") {
    const LrSchedule constant{Schedule::Constant, 0.5, 0.1, 10, 100};
    CHECK(constant.at(0) == 0.5);
    CHECK(constant.at(99) == 0.5);
    for (Schedule kind : {Schedule::Cosine, Schedule::Linear}) {
        const LrSchedule s{kind, 1.0, 0.1, 10, 110};
        CHECK(s.at(0) == Approx(0.1));  // warmup: (step + 1) / warmup
        CHECK(s.at(4) == Approx(0.5));
        CHECK(s.at(9) == Approx(1.0));
        CHECK(s.at(10) == Approx(1.0));   // decay starts at the peak
        CHECK(s.at(109) == Approx(0.1));  // and ends at the floor on the last step
        CHECK(s.at(60) < s.at(30));
    }
    const LrSchedule cosine{Schedule::Cosine, 1.0, 0.0, 0, 101};
    const LrSchedule linear{Schedule::Linear, 1.0, 0.0, 0, 101};
    CHECK(cosine.at(50) == Approx(0.5));
    CHECK(linear.at(25) == Approx(0.75));
    CHECK(cosine.at(25) == Approx(0.5 * (1 + std::cos(M_PI / 4))));
    CHECK_THROWS_WITH(parse_schedule("step"), Catch::Contains("unknown schedule 'step'"));
}

TEST_CASE("AdamW: the first steps in closed form", "[optim]") {
    // At t = 1 the bias-corrected update is lr * sign(g) (up to eps) plus decay.
    std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.3f, -4.0f, 0.0f}, m(3, 0.0f), v(3, 0.0f);
    ref::adamw_update(AdamWArgs<float, float>{.n = 3,
                                              .param = p.data(),
                                              .grad = g.data(),
                                              .m = m.data(),
                                              .v = v.data(),
                                              .step = {0.1, 0.9, 0.999, 1e-8, 0.0, 1.0, 1}});
    CHECK(p[0] == Approx(0.9f));
    CHECK(p[1] == Approx(-1.9f));
    CHECK(p[2] == 0.5f);
    // t = 2 with a second gradient, against the formula written out.
    const double g1 = 0.3, g2 = -0.1, b1 = 0.9, b2 = 0.999, lr = 0.1, wd = 0.01;
    std::vector<double> q = {1.0}, mm = {0.0}, vv = {0.0}, gg = {g1};
    AdamWArgs<double, double> a{.n = 1,
                                .param = q.data(),
                                .grad = gg.data(),
                                .m = mm.data(),
                                .v = vv.data(),
                                .step = {lr, b1, b2, 1e-8, wd, 1.0, 1}};
    ref::adamw_update(a);
    const double q1 = q[0];
    gg[0] = g2;
    a.step.t = 2;
    ref::adamw_update(a);
    const double m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2, v2 = b2 * (1 - b2) * g1 * g1 + (1 - b2) * g2 * g2;
    const double mhat = m2 / (1 - b1 * b1), vhat = v2 / (1 - b2 * b2);
    CHECK(q[0] == Approx(q1 - lr * (mhat / (std::sqrt(vhat) + 1e-8) + wd * q1)).epsilon(1e-12));
}

TEST_CASE("AdamW over the table: decay on matrices only, clipping by the global norm", "[optim]") {
    const ModelConfig c = test::tiny_config("gpt2");
    const ParamTable table(c);
    std::mt19937_64 rng(std::random_device{}());
    std::vector<float> params(table.total), grads(table.total, 0.0f);
    test::random_params(params.data(), table, rng);
    const std::vector<float> before = params;
    // Zero gradient: only decayed tensors move, by lr * wd * p.
    CpuOps<float> ops;
    AdamW<float> opt(table, {0.9, 0.99, 1e-8, 0.5, false, 0.0}, ops);
    opt.step(params.data(), grads.data(), 0.1, 1, 0.0);
    for (auto& t : table.tensors) {
        INFO(t.name);
        const size_t i = t.offset;
        const float expect = decays(t, false) ? before[i] * (1 - 0.1f * 0.5f) : before[i];
        CHECK(params[i] == Approx(expect));
    }
    // Clipping scales the gradient by clip / norm: with clip 1 and norm 10, the same
    // update as gradients one tenth the size without clipping.
    test::fill_normal(grads.data(), grads.size(), rng);
    const double norm = std::sqrt(opt.grad_sq(grads.data()));
    for (float& g : grads) g *= float(10.0 / norm);
    std::vector<float> small = grads;
    for (float& g : small) g *= 0.1f;
    std::vector<float> a = before, b = before;
    AdamW<float> clipped(table, {0.9, 0.99, 1e-8, 0.0, false, 1.0}, ops),
        plain(table, {0.9, 0.99, 1e-8, 0.0, false, 0.0}, ops);
    clipped.step(a.data(), grads.data(), 0.01, 1, std::sqrt(clipped.grad_sq(grads.data())));
    plain.step(b.data(), small.data(), 0.01, 1, std::sqrt(plain.grad_sq(small.data())));
    CHECK(std::sqrt(clipped.grad_sq(grads.data())) == Approx(10.0));
    // To 1e-6 of the step (lr): a parameter the step brings near zero has no relative precision.
    for (size_t i = 0; i < a.size(); i++) REQUIRE(a[i] == Approx(b[i]).epsilon(1e-6).margin(1e-8));
    const std::vector<float> v_clipped = clipped.v(), v_plain = plain.v();
    for (size_t i = 0; i < a.size(); i++) REQUIRE(v_clipped[i] == Approx(v_plain[i]).epsilon(1e-5));
}

TEST_CASE("AdamW shards (ZeRO-1) update exactly what the whole-table AdamW updates", "[optim]") {
    const ModelConfig c = test::tiny_config("llama3");
    const ParamTable table(c);
    std::mt19937_64 rng(std::random_device{}());
    const size_t world = 3, shard = (table.total + world - 1) / world;  // the last shard reaches past the end
    std::vector<float> whole(shard * world, 0.0f), grads(shard * world, 0.0f);
    test::random_params(whole.data(), table, rng);
    std::vector<float> sharded = whole;
    CpuOps<float> ops;
    const AdamWConfig config{0.9, 0.99, 1e-8, 0.1, false, 1.0};
    AdamW<float> full(table, config, ops);
    std::vector<std::unique_ptr<AdamW<float>>> parts;
    for (size_t r = 0; r < world; r++)
        parts.push_back(std::make_unique<AdamW<float>>(table, config, ops, r * shard, shard));
    for (long t = 1; t <= 3; t++) {
        test::fill_normal(grads.data(), table.total, rng);
        double sq = 0;
        for (size_t r = 0; r < world; r++) sq += parts[r]->grad_sq(grads.data() + r * shard);
        CHECK(sq == Approx(full.grad_sq(grads.data())).epsilon(1e-12));
        const double norm = std::sqrt(sq);  // clipping on: the shards scale as the whole does
        full.step(whole.data(), grads.data(), 1e-2, t, norm);
        for (size_t r = 0; r < world; r++) parts[r]->step(sharded.data(), grads.data() + r * shard, 1e-2, t, norm);
    }
    CHECK(sharded == whole);
    const std::vector<float> m = full.m();
    for (size_t r = 0; r < world; r++) {
        const std::vector<float> part = parts[r]->m();
        for (size_t i = 0; i < shard && r * shard + i < table.total; i++) REQUIRE(part[i] == m[r * shard + i]);
    }
}
