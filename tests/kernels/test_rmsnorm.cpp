// layers/rmsnorm.cu against ref/rmsnorm.h (double), in both thread orders; the small
// row sizes are QK-norm's (C = head_dim).
#include "kernel_check.h"

#include "layers/rmsnorm.cuh"
#include "ref/rmsnorm.h"

using namespace kcheck;

namespace {
struct Shape {
    int N, C;
};
}  // namespace

TEST_CASE("rmsnorm forward and backward match ref", "[rmsnorm]") {
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{13, 72}, Shape{600, 4}, Shape{37, 16}, Shape{9, 130}, Shape{6, 64});
    const InOrder in_order(order);
    const int N = shape.N, C = shape.C;
    const double eps = 1e-6;
    INFO("N " << N << " C " << C);
    const auto inp = random_floats(size_t(N) * C, -2.0f, 2.0f), w = random_floats(C);

    Device<float> d_inp(inp), d_w(w), d_out(size_t(N) * C), d_rstd(N);
    rkv::cuda::rmsnorm_forward(d_out.get(), d_rstd.get(), d_inp.get(), d_w.get(), N, C, eps, nullptr);
    std::vector<double> out_ref(size_t(N) * C), rstd_ref(N);
    rkv::ref::rmsnorm_forward(out_ref.data(), rstd_ref.data(), to_double(inp).data(), to_double(w).data(), N, C, eps);
    check_close("rmsnorm_forward out", d_out.download(), out_ref);
    check_close("rmsnorm_forward rstd", d_rstd.download(), rstd_ref);

    const auto rstd = d_rstd.download();
    const auto dout = random_floats(size_t(N) * C);
    const auto dinp0 = random_floats(size_t(N) * C), dw0 = random_floats(C);
    Device<float> d_dout(dout), d_dinp(dinp0), d_dw(dw0);
    rkv::cuda::rmsnorm_backward(d_dinp.get(), d_dw.get(), d_dout.get(), d_inp.get(), d_w.get(), d_rstd.get(), N, C,
                                nullptr);
    auto dinp_ref = to_double(dinp0), dw_ref = to_double(dw0);
    rkv::ref::rmsnorm_backward(dinp_ref.data(), dw_ref.data(), to_double(dout).data(), to_double(inp).data(),
                               to_double(w).data(), to_double(rstd).data(), N, C);
    check_close("rmsnorm_backward dinp", d_dinp.download(), dinp_ref);
    check_close("rmsnorm_backward dw", d_dw.download(), dw_ref);
}
