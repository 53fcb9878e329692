// layers/activations.cu against ref/activations.h and ref/residual.h (double).
#include "kernel_check.h"

#include "layers/activations.cuh"
#include "ref/activations.h"
#include "ref/residual.h"

using namespace kcheck;

TEST_CASE("gelu forward and backward match ref", "[activations]") {
    const size_t n = GENERATE(1037, 5);
    const auto x = random_floats(n, -5.0f, 5.0f), dout = random_floats(n), dx0 = random_floats(n);
    Device<float> d_x(x), d_out(n), d_dout(dout), d_dx(dx0);
    rkv::cuda::gelu_forward(d_out.get(), d_x.get(), n, nullptr);
    rkv::cuda::gelu_backward(d_dx.get(), d_dout.get(), d_x.get(), n, nullptr);
    std::vector<double> out_ref(n);
    auto dx_ref = to_double(dx0);
    rkv::ref::gelu_forward(out_ref.data(), to_double(x).data(), n);
    rkv::ref::gelu_backward(dx_ref.data(), to_double(dout).data(), to_double(x).data(), n);
    check_close("gelu_forward", d_out.download(), out_ref);
    check_close("gelu_backward", d_dx.download(), dx_ref);
}

TEST_CASE("swiglu forward and backward match ref", "[activations]") {
    const size_t n = GENERATE(1037, 5);
    const auto gate = random_floats(n, -6.0f, 6.0f), up = random_floats(n), dout = random_floats(n);
    const auto dgate0 = random_floats(n), dup0 = random_floats(n);
    Device<float> d_gate(gate), d_up(up), d_out(n), d_dout(dout), d_dgate(dgate0), d_dup(dup0);
    rkv::cuda::swiglu_forward(d_out.get(), d_gate.get(), d_up.get(), n, nullptr);
    rkv::cuda::swiglu_backward(d_dgate.get(), d_dup.get(), d_dout.get(), d_gate.get(), d_up.get(), n, nullptr);
    std::vector<double> out_ref(n);
    auto dgate_ref = to_double(dgate0), dup_ref = to_double(dup0);
    rkv::ref::swiglu_forward(out_ref.data(), to_double(gate).data(), to_double(up).data(), n);
    rkv::ref::swiglu_backward(dgate_ref.data(), dup_ref.data(), to_double(dout).data(), to_double(gate).data(),
                              to_double(up).data(), n);
    check_close("swiglu_forward", d_out.download(), out_ref);
    check_close("swiglu_backward dgate", d_dgate.download(), dgate_ref);
    check_close("swiglu_backward dup", d_dup.download(), dup_ref);
}

TEST_CASE("residual forward matches ref", "[activations]") {
    const size_t n = GENERATE(1037, 5);
    const auto a = random_floats(n), b = random_floats(n);
    Device<float> d_a(a), d_b(b), d_out(n);
    rkv::cuda::residual_forward(d_out.get(), d_a.get(), d_b.get(), n, nullptr);
    std::vector<double> out_ref(n);
    rkv::ref::residual_forward(out_ref.data(), to_double(a).data(), to_double(b).data(), n);
    check_close("residual_forward", d_out.download(), out_ref);
}
