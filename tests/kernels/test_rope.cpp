// layers/rope.cu against ref/rope.h (double).
#include "kernel_check.h"

#include "layers/rope.cuh"
#include "ref/rope.h"

using namespace kcheck;

namespace {
struct Shape {
    int B, Tn, H, HS;
};
}  // namespace

TEST_CASE("rope forward and backward match ref", "[rope]") {
    const Shape shape = GENERATE(Shape{2, 13, 3, 6}, Shape{1, 9, 2, 16}, Shape{2, 37, 2, 64});
    const double theta = GENERATE(10000.0, 1000000.0);
    const auto [B, Tn, H, HS] = shape;
    INFO("B " << B << " T " << Tn << " H " << H << " HS " << HS << " theta " << theta);
    const size_t n = size_t(B) * Tn * H * HS;
    const auto inp = random_floats(n);

    Device<float> d_inp(inp), d_out(n);
    rkv::cuda::rope_forward(d_out.get(), d_inp.get(), B, Tn, H, HS, theta, nullptr);
    std::vector<double> out_ref(n);
    rkv::ref::rope_forward(out_ref.data(), to_double(inp).data(), B, Tn, H, HS, theta);
    const auto out = d_out.download();
    check_close("rope_forward", out, out_ref);

    // In place gives the same.
    rkv::cuda::rope_forward(d_inp.get(), d_inp.get(), B, Tn, H, HS, theta, nullptr);
    CHECK(d_inp.download() == out);

    const auto dout = random_floats(n), dinp0 = random_floats(n);
    Device<float> d_dout(dout), d_dinp(dinp0);
    rkv::cuda::rope_backward(d_dinp.get(), d_dout.get(), B, Tn, H, HS, theta, nullptr);
    auto dinp_ref = to_double(dinp0);
    rkv::ref::rope_backward(dinp_ref.data(), to_double(dout).data(), B, Tn, H, HS, theta);
    check_close("rope_backward", d_dinp.download(), dinp_ref);
}
