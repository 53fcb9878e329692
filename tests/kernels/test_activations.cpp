// layers/activations.cu against ref/activations.h and ref/residual.h (double), for float
// and bf16 storage (ref gets the inputs as stored), in both thread orders. n = 1040 takes
// the 16-byte packs, 1037 and 5 the element path (layers/common.cuh). The backward writes its
// gradients: they start poisoned, and ref's start at zero.
#include <array>

#include "kernel_check.h"

#include "layers/activations.cuh"
#include "ref/activations.h"
#include "ref/residual.h"

using namespace kcheck;

// ref's SwiGLU forward and backward in double on the stored inputs: out, dgate, dup.
std::array<std::vector<double>, 3> swiglu_ref(const std::vector<float>& gate, const std::vector<float>& up,
                                              const std::vector<float>& dout) {
    const size_t n = gate.size();
    std::array<std::vector<double>, 3> r{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
    const auto gate_d = to_double(gate), up_d = to_double(up), dout_d = to_double(dout);
    const rkv::SwiGLUArgs<double> a{.n = n,
                                    .gate = gate_d.data(),
                                    .up = up_d.data(),
                                    .out = r[0].data(),
                                    .dout = dout_d.data(),
                                    .dgate = r[1].data(),
                                    .dup = r[2].data()};
    rkv::ref::swiglu_forward(a);
    rkv::ref::swiglu_backward(a);
    return r;
}

TEMPLATE_TEST_CASE("gelu forward and backward match ref", "[activations]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(1037, 5, 1040);
    const InOrder in_order(order);
    const auto x = as_stored<S>(random_floats(n, -5.0f, 5.0f)), dout = as_stored<S>(random_floats(n));
    Device<S> d_x(to_storage<S>(x)), d_out(n), d_dout(to_storage<S>(dout)), d_dx(n);
    rkv::cuda::gelu_forward(d_out.get(), d_x.get(), n, nullptr);
    rkv::cuda::gelu_backward(d_dx.get(), d_dout.get(), d_x.get(), n, nullptr);
    std::vector<double> out_ref(n), dx_ref(n);
    rkv::ref::gelu_forward(out_ref.data(), to_double(x).data(), n);
    rkv::ref::gelu_backward(dx_ref.data(), to_double(dout).data(), to_double(x).data(), n);
    check_close("gelu_forward", to_floats(d_out.download()), out_ref, bound_for<S>());
    check_close("gelu_backward", to_floats(d_dx.download()), dx_ref, bound_for<S>());
    // In place (dx = dout), as linear_gelu_backward uses it without cuBLASLt's DGELU.
    rkv::cuda::gelu_backward(d_dout.get(), d_dout.get(), d_x.get(), n, nullptr);
    check_close("gelu_backward in place", to_floats(d_dout.download()), dx_ref, bound_for<S>());
}

TEMPLATE_TEST_CASE("swiglu forward and backward match ref", "[activations]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(1037, 5, 1040);
    const InOrder in_order(order);
    const auto gate = as_stored<S>(random_floats(n, -6.0f, 6.0f)), up = as_stored<S>(random_floats(n)),
               dout = as_stored<S>(random_floats(n));
    Device<S> d_gate(to_storage<S>(gate)), d_up(to_storage<S>(up)), d_out(n), d_dout(to_storage<S>(dout)), d_dgate(n),
        d_dup(n);
    const rkv::SwiGLUArgs<S> a{.n = n,
                               .gate = d_gate.get(),
                               .up = d_up.get(),
                               .out = d_out.get(),
                               .dout = d_dout.get(),
                               .dgate = d_dgate.get(),
                               .dup = d_dup.get()};
    rkv::cuda::swiglu_forward(a, nullptr);
    rkv::cuda::swiglu_backward(a, nullptr);
    const auto [out_ref, dgate_ref, dup_ref] = swiglu_ref(gate, up, dout);
    check_close("swiglu_forward", to_floats(d_out.download()), out_ref, bound_for<S>());
    check_close("swiglu_backward dgate", to_floats(d_dgate.download()), dgate_ref, bound_for<S>());
    check_close("swiglu_backward dup", to_floats(d_dup.download()), dup_ref, bound_for<S>());
}

TEMPLATE_TEST_CASE("residual forward matches ref", "[activations]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const size_t n = GENERATE(1037, 5, 1040);
    const InOrder in_order(order);
    const auto a = as_stored<S>(random_floats(n)), b = as_stored<S>(random_floats(n));
    Device<S> d_a(to_storage<S>(a)), d_b(to_storage<S>(b)), d_out(n);
    rkv::cuda::residual_forward(d_out.get(), d_a.get(), d_b.get(), n, nullptr);
    std::vector<double> out_ref(n);
    rkv::ref::residual_forward(out_ref.data(), to_double(a).data(), to_double(b).data(), n);
    check_close("residual_forward", to_floats(d_out.download()), out_ref, bound_for<S>());
}

// n a whole number of packs but the pointers one element off the 16-byte grid: the launchers
// must take the element path (the emulator traps on a misaligned pack, as the GPU faults).
TEMPLATE_TEST_CASE("activations on misaligned pointers match ref", "[activations]", float, bf16) {
    using S = TestType;
    const size_t n = 1040;
    const auto gate = as_stored<S>(random_floats(n, -6.0f, 6.0f)), up = as_stored<S>(random_floats(n)),
               dout = as_stored<S>(random_floats(n));
    // Each array at element 1 of a buffer of n + 1.
    const auto shifted = [](const std::vector<float>& v) {
        std::vector<float> s{0.0f};
        s.insert(s.end(), v.begin(), v.end());
        return to_storage<S>(s);
    };
    const auto unshifted = [](const Device<S>& d) {
        const auto v = to_floats(d.download());
        return std::vector<float>(v.begin() + 1, v.end());
    };
    Device<S> d_gate(shifted(gate)), d_up(shifted(up)), d_out(n + 1), d_dout(shifted(dout)), d_dgate(n + 1),
        d_dup(n + 1);
    const rkv::SwiGLUArgs<S> a{.n = n,
                               .gate = d_gate.get() + 1,
                               .up = d_up.get() + 1,
                               .out = d_out.get() + 1,
                               .dout = d_dout.get() + 1,
                               .dgate = d_dgate.get() + 1,
                               .dup = d_dup.get() + 1};
    rkv::cuda::swiglu_forward(a, nullptr);
    rkv::cuda::swiglu_backward(a, nullptr);
    const auto [out_ref, dgate_ref, dup_ref] = swiglu_ref(gate, up, dout);
    check_close("misaligned swiglu_forward", unshifted(d_out), out_ref, bound_for<S>());
    check_close("misaligned swiglu_backward dgate", unshifted(d_dgate), dgate_ref, bound_for<S>());
    check_close("misaligned swiglu_backward dup", unshifted(d_dup), dup_ref, bound_for<S>());
}
