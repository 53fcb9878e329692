// optim/adamw.cu against ref/adamw.h.
#include "kernel_check.h"

#include "optim/adamw.cuh"
#include "ref/adamw.h"

using namespace kcheck;

TEST_CASE("adamw update matches ref", "[adamw]") {
    const size_t n = GENERATE(1037, 3);
    const long t = GENERATE(1L, 7L);
    const rkv::ref::AdamWStep s{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.7, t};
    const auto param0 = random_floats(n), grad = random_floats(n), m0 = random_floats(n, -0.1f, 0.1f),
               v0 = random_floats(n, 0.0f, 0.01f);
    Device<float> d_param(param0), d_grad(grad), d_m(m0), d_v(v0);
    rkv::cuda::adamw_update(d_param.get(), d_grad.get(), d_m.get(), d_v.get(), n, s, nullptr);
    const auto param = d_param.download(), m = d_m.download(), v = d_v.download();

    // Against the double reference, at the fp32 bound.
    auto param_ref = to_double(param0), m_ref = to_double(m0), v_ref = to_double(v0);
    rkv::ref::adamw_update(param_ref.data(), to_double(grad).data(), m_ref.data(), v_ref.data(), n, s);
    check_close("adamw_update param", param, param_ref);
    check_close("adamw_update m", m, m_ref);
    check_close("adamw_update v", v, v_ref);

    // Against the float reference it is the same operations: only contraction into
    // fused multiply-adds may change the last bits.
    auto param_f = param0, m_f = m0, v_f = v0;
    rkv::ref::adamw_update(param_f.data(), grad.data(), m_f.data(), v_f.data(), n, s);
    check_close("adamw_update param vs float ref", param, to_double(param_f), 1e-6);
    check_close("adamw_update m vs float ref", m, to_double(m_f), 1e-6);
    check_close("adamw_update v vs float ref", v, to_double(v_f), 1e-6);
}

TEST_CASE("grad_norm_sq is the sum of squares, the same every run", "[adamw]") {
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(100003, 37, 1);
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
