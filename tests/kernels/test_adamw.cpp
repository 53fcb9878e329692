// optim/adamw.cu against ref/adamw.h: the float update; the bf16 update (master weights as
// ref's float update, the working copy their stochastic rounding, the one of
// cast_stochastic in layers/cast.cu); the gradient norm.
#include "kernel_check.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "layers/cast.cuh"
#include "optim/adamw.cuh"
#include "ref/adamw.h"

using namespace kcheck;

namespace {

uint32_t bits_of(float x) {
    uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
}
float float_of(uint32_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}
// The two bf16 values around x: toward zero (x's bits truncated) and the next one away
// from zero.
float bf16_toward_zero(float x) { return float_of(bits_of(x) & 0xffff0000u); }
float bf16_away_from_zero(float x) { return float_of((bits_of(x) & 0xffff0000u) + 0x10000u); }
// Whether p is a stochastic rounding of x: one of its neighbours, x itself when x is bf16.
bool is_neighbour(float p, float x) {
    const float lo = bf16_toward_zero(x);
    return lo == x ? p == x : p == lo || p == bf16_away_from_zero(x);
}

std::vector<uint16_t> bits_of(const std::vector<bf16>& v) {
    std::vector<uint16_t> b(v.size());
    std::memcpy(b.data(), v.data(), v.size() * sizeof(bf16));
    return b;
}

// The fp32 weights, m and v an update left, or started from.
struct State {
    std::vector<float> w, m, v;
};

// The kernel's update against ref's in double, at the fp32 bound, and in float, the same
// operations: there only contraction into fused multiply-adds may change the last bits.
void check_update(const std::string& what, const std::string& weights, const State& got, const State& before,
                  const std::vector<float>& grad, const rkv::ref::AdamWStep& s) {
    const size_t n = grad.size();
    auto w = to_double(before.w), m = to_double(before.m), v = to_double(before.v);
    const auto grad_d = to_double(grad);
    rkv::ref::adamw_update(rkv::AdamWArgs<double, double>{
        .n = n, .param = w.data(), .grad = grad_d.data(), .m = m.data(), .v = v.data(), .step = s});
    check_close((what + " " + weights).c_str(), got.w, w);
    check_close((what + " m").c_str(), got.m, m);
    check_close((what + " v").c_str(), got.v, v);
    State f = before;
    rkv::ref::adamw_update(rkv::AdamWArgs<float, float>{
        .n = n, .param = f.w.data(), .grad = grad.data(), .m = f.m.data(), .v = f.v.data(), .step = s});
    check_close((what + " " + weights + " vs float ref").c_str(), got.w, to_double(f.w), 1e-6);
    check_close((what + " m vs float ref").c_str(), got.m, to_double(f.m), 1e-6);
    check_close((what + " v vs float ref").c_str(), got.v, to_double(f.v), 1e-6);
}

}  // namespace

TEST_CASE("adamw update matches ref", "[adamw]") {
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(1037, 3, 1040);  // the element path, and packs of 4 (1040)
    const long t = GENERATE(1L, 7L);
    const InOrder in_order(order);
    const rkv::ref::AdamWStep s{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.7, t};
    const auto param0 = random_floats(n), grad = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f),
               v0 = random_floats(n, 0.0f, 0.01f);
    Device<float> d_param(param0), d_grad(grad), d_m(m0), d_v(v0);
    rkv::cuda::adamw_update(rkv::AdamWArgs<float, float>{.n = n,
                                                         .param = d_param.get(),
                                                         .grad = d_grad.get(),
                                                         .m = d_m.get(),
                                                         .v = d_v.get(),
                                                         .step = s,
                                                         .seed = 1234},
                            nullptr);
    const auto param = d_param.download(), m = d_m.download(), v = d_v.download();

    check_update("adamw_update", "param", {param, m, v}, {param0, m0, v0}, grad, s);
}

TEST_CASE("bf16 adamw updates the master as ref does, param is its stochastic rounding", "[adamw]") {
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(1037, 3, 1040);
    const long t = GENERATE(1L, 7L);
    const InOrder in_order(order);
    const rkv::ref::AdamWStep s{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.7, t};
    const uint64_t seed = rng()();
    const auto master0 = random_floats(n), grad = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f),
               v0 = random_floats(n, 0.0f, 0.01f);
    Device<bf16> d_param(to_bf16(master0)), d_param2(n);
    Device<float> d_master(master0), d_grad(grad), d_m(m0), d_v(v0);
    rkv::AdamWArgs<bf16, float> a{.n = n,
                                  .param = d_param.get(),
                                  .master = d_master.get(),
                                  .grad = d_grad.get(),
                                  .m = d_m.get(),
                                  .v = d_v.get(),
                                  .step = s,
                                  .seed = seed};
    rkv::cuda::adamw_update(a, nullptr);
    const auto param = d_param.download();
    const auto master = d_master.download(), m = d_m.download(), v = d_v.download();

    // The master, m and v: as the float update.
    check_update("bf16 adamw_update", "master", {master, m, v}, {master0, m0, v0}, grad, s);

    // param: one of the master's two bf16 neighbours (the master itself when it is one).
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_neighbour(__bfloat162float(param[i]), master[i])) bad++;
    CHECK(bad == 0);

    // The same seed gives the same bits, here and in cast_stochastic (how a working copy is
    // rebuilt from the master on resume).
    Device<float> d_master2(master0), d_m2(m0), d_v2(v0);
    d_param2.upload(to_bf16(master0));
    a.param = d_param2.get(), a.master = d_master2.get(), a.m = d_m2.get(), a.v = d_v2.get();
    rkv::cuda::adamw_update(a, nullptr);
    CHECK(bits_of(d_param2.download()) == bits_of(param));
    CHECK(d_master2.download() == master);
    d_param2.poison();
    rkv::cuda::cast_stochastic(d_param2.get(), d_master.get(), n, seed, nullptr);
    CHECK(bits_of(d_param2.download()) == bits_of(param));
}

// Rounding up with probability p = (x - lo) / (hi - lo), each of K seeds an independent
// draw: by Hoeffding's inequality the fraction of ups is within 0.25 of p except with
// probability 2 exp(-2 K 0.25^2) = 2.5e-14 (K = 256) per element, and over all n K draws the
// mean of (up - p) is within 0.01 of 0 except with probability 2 exp(-2 n K 0.01^2) < 1e-22.
// Rounding to nearest misses the first, truncation both.
TEST_CASE("bf16 adamw rounding is unbiased over seeds", "[adamw]") {
    const size_t n = 1037;
    const int K = 256;
    const rkv::ref::AdamWStep s{3e-3, 0.9, 0.95, 1e-8, 0.1, 1.0, 3};
    const auto master0 = random_floats(n), grad = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f),
               v0 = random_floats(n, 0.0f, 0.01f);
    Device<bf16> d_param(n);
    Device<float> d_master(n), d_grad(grad), d_m(n), d_v(n);
    std::vector<float> master;
    std::vector<int> ups(n, 0);
    const uint64_t seed0 = rng()();
    for (int k = 0; k < K; k++) {
        d_master.upload(master0);
        d_m.upload(m0);
        d_v.upload(v0);
        rkv::cuda::adamw_update(rkv::AdamWArgs<bf16, float>{.n = n,
                                                            .param = d_param.get(),
                                                            .master = d_master.get(),
                                                            .grad = d_grad.get(),
                                                            .m = d_m.get(),
                                                            .v = d_v.get(),
                                                            .step = s,
                                                            .seed = seed0 + uint64_t(k)},
                                nullptr);
        const auto got = d_master.download();
        if (k == 0) master = got;
        REQUIRE(got == master);  // the master does not depend on the seed
        const auto param = d_param.download();
        for (size_t i = 0; i < n; i++)
            if (__bfloat162float(param[i]) != bf16_toward_zero(master[i])) ups[i]++;
    }
    size_t far = 0;
    double bias = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double lo = bf16_toward_zero(master[i]), hi = bf16_away_from_zero(master[i]);
        const double p = (double(master[i]) - lo) / (hi - lo);
        const double frac = double(ups[i]) / K;
        if (std::abs(frac - p) >= 0.25) far++;
        bias += frac - p;
    }
    bias /= double(n);
    INFO("mean of (rounded up - p) over " << n * K << " roundings: " << bias);
    CHECK(far == 0);
    CHECK(std::abs(bias) < 0.01);
}

TEST_CASE("cast_stochastic rounds to a neighbour, the same for the same seed", "[adamw][cast]") {
    const auto order = GENERATE(from_range(orders()));
    const InOrder in_order(order);
    const size_t n = 1037;
    // Values over many binades, and some that need no rounding (0, inf, a subnormal).
    auto in = random_floats(n);
    const auto e = random_ints(n, -30, 30);
    for (size_t i = 0; i < n; i++) in[i] = std::ldexp(in[i], e[i]);
    in[0] = 0.0f;
    in[1] = -std::numeric_limits<float>::infinity();
    in[2] = 0x1p-130f;
    const uint64_t seed = rng()();
    Device<float> d_in(in), d_copy(n);
    Device<bf16> d_out(n), d_again(n), d_other(n);
    rkv::cuda::cast_stochastic(d_out.get(), d_in.get(), n, seed, nullptr);
    rkv::cuda::cast_stochastic(d_again.get(), d_in.get(), n, seed, nullptr);
    rkv::cuda::cast_stochastic(d_other.get(), d_in.get(), n, seed + 1, nullptr);
    const auto out = d_out.download();
    CHECK(bits_of(d_again.download()) == bits_of(out));
    CHECK(bits_of(d_other.download()) != bits_of(out));  // about half of the roundings differ
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_neighbour(__bfloat162float(out[i]), in[i])) bad++;
    CHECK(bad == 0);

    rkv::cuda::cast_stochastic(d_copy.get(), d_in.get(), n, seed, nullptr);
    CHECK(d_copy.download() == in);  // float: a copy
}

TEST_CASE("grad_norm_sq is the sum of squares, the same every run", "[adamw]") {
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(100003, 37, 1, 100000);  // the element path, and packs of 4 (100000)
    const InOrder in_order(order);
    const auto grads = random_floats(n, -3.0f, 3.0f);
    Device<float> d_grads(grads);
    const double got = rkv::cuda::grad_norm_sq(d_grads.get(), n, nullptr);
    double ref = 0.0;
    for (float g : grads) ref += double(g) * g;
    const double err = std::abs(got - ref) / ref;
    if (std::getenv("KERNEL_TESTS_VERBOSE")) std::printf("  %-44s rel err %.3e\n", "grad_norm_sq", err);
    CHECK(err < 1e-12);
    CHECK(rkv::cuda::grad_norm_sq(d_grads.get(), n, nullptr) == got);
}
