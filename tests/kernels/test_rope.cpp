// layers/rope.cu against ref/rope.h (double), for float and bf16 storage (ref gets the
// inputs as stored), in both thread orders, unscaled and under the linear and llama3 scalings.
#include "kernel_check.h"

#include "layers/rope.cuh"
#include "ref/rope.h"
#include "rope_cases.h"

using namespace kcheck;

namespace {
struct Shape {
    int B, T, H, HS;
};
}  // namespace

TEMPLATE_TEST_CASE("rope forward and backward match ref", "[rope]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{2, 13, 3, 6}, Shape{1, 9, 2, 16}, Shape{2, 37, 2, 64});
    const rkv::RopeParams rope = GENERATE(from_range(rope_cases()));
    const int pos0 = GENERATE(0, 777);  // the forward of new tokens after cached ones (inference)
    const InOrder in_order(order);
    const auto [B, T, H, HS] = shape;
    INFO("B " << B << " T " << T << " H " << H << " HS " << HS << " theta " << rope.theta << " " << rope_type_name(rope)
              << " pos0 " << pos0);
    const size_t n = size_t(B) * T * H * HS;
    const auto inp = as_stored<S>(random_floats(n));

    Device<S> d_inp(to_storage<S>(inp)), d_out(n);
    rkv::RopeArgs<S, float> a{
        .B = B, .T = T, .NH = H, .HS = HS, .rope = rope, .pos0 = pos0, .inp = d_inp.get(), .out = d_out.get()};
    rkv::cuda::rope_forward(a, nullptr);
    std::vector<double> out_ref(n);
    const auto inp_d = to_double(inp);
    rkv::RopeArgs<double, double> r{
        .B = B, .T = T, .NH = H, .HS = HS, .rope = rope, .pos0 = pos0, .inp = inp_d.data(), .out = out_ref.data()};
    rkv::ref::rope_forward(r);
    const auto out = to_floats(d_out.download());
    check_close("rope_forward", out, out_ref, bound_for<S>());

    // In place gives the same.
    a.out = d_inp.get();
    rkv::cuda::rope_forward(a, nullptr);
    CHECK(to_floats(d_inp.download()) == out);

    // The backward writes dinp (poisoned until then; ref's starts at zero), in place too.
    const auto dout = as_stored<S>(random_floats(n));
    Device<S> d_dout(to_storage<S>(dout)), d_dinp(n);
    a.dout = d_dout.get(), a.dinp = d_dinp.get();
    rkv::cuda::rope_backward(a, nullptr);
    std::vector<double> dinp_ref(n);
    const auto dout_d = to_double(dout);
    r.dout = dout_d.data(), r.dinp = dinp_ref.data();
    rkv::ref::rope_backward(r);
    const auto dinp = to_floats(d_dinp.download());
    check_close("rope_backward", dinp, dinp_ref, bound_for<S>());
    a.dinp = d_dout.get();
    rkv::cuda::rope_backward(a, nullptr);
    CHECK(to_floats(d_dout.download()) == dinp);
}
