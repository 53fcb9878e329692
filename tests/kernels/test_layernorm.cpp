// layers/layernorm.cu against ref/layernorm.h (double), in both thread orders.
#include "kernel_check.h"

#include "layers/layernorm.cuh"
#include "ref/layernorm.h"

using namespace kcheck;

namespace {
struct Shape {
    int N, C;
};
}  // namespace

TEST_CASE("layernorm forward and backward match ref", "[layernorm]") {
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{13, 72}, Shape{5, 4}, Shape{600, 40}, Shape{3, 300});
    const InOrder in_order(order);
    const int N = shape.N, C = shape.C;
    const double eps = 1e-5;
    INFO("N " << N << " C " << C);
    const auto inp = random_floats(size_t(N) * C, -2.0f, 2.0f), w = random_floats(C), b = random_floats(C);

    // Forward.
    Device<float> d_inp(inp), d_w(w), d_b(b), d_out(size_t(N) * C), d_mean(N), d_rstd(N);
    rkv::cuda::layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_w.get(), d_b.get(), N, C,
                                 eps, nullptr);
    std::vector<double> out_ref(size_t(N) * C), mean_ref(N), rstd_ref(N);
    rkv::ref::layernorm_forward(out_ref.data(), mean_ref.data(), rstd_ref.data(), to_double(inp).data(),
                                to_double(w).data(), to_double(b).data(), N, C, eps);
    check_close("layernorm_forward out", d_out.download(), out_ref);
    check_close("layernorm_forward mean", d_mean.download(), mean_ref);
    check_close("layernorm_forward rstd", d_rstd.download(), rstd_ref);

    // Backward from the kernel's own statistics, into gradients that already hold values.
    const auto mean = d_mean.download(), rstd = d_rstd.download();
    const auto dout = random_floats(size_t(N) * C);
    const auto dinp0 = random_floats(size_t(N) * C), dw0 = random_floats(C), db0 = random_floats(C);
    Device<float> d_dout(dout), d_dinp(dinp0), d_dw(dw0), d_db(db0);
    rkv::cuda::layernorm_backward(d_dinp.get(), d_dw.get(), d_db.get(), d_dout.get(), d_inp.get(), d_w.get(),
                                  d_mean.get(), d_rstd.get(), N, C, nullptr);
    auto dinp_ref = to_double(dinp0), dw_ref = to_double(dw0), db_ref = to_double(db0);
    rkv::ref::layernorm_backward(dinp_ref.data(), dw_ref.data(), db_ref.data(), to_double(dout).data(),
                                 to_double(inp).data(), to_double(w).data(), to_double(mean).data(),
                                 to_double(rstd).data(), N, C);
    check_close("layernorm_backward dinp", d_dinp.download(), dinp_ref);
    check_close("layernorm_backward dw", d_dw.download(), dw_ref);
    check_close("layernorm_backward db", d_db.download(), db_ref);
}
