// layers/layernorm.cu against ref/layernorm.h (double), for float and bf16 storage (ref
// gets the inputs as stored), in both thread orders; the fused residual + LayerNorm against
// ref/residual.h then ref/layernorm.h, and against the two separate kernels and itself in
// place bit for bit. mean, rstd, dw and db are float in both storages: the fp32 bound.
#include "kernel_check.h"

#include "layers/activations.cuh"
#include "layers/layernorm.cuh"
#include "ref/layernorm.h"
#include "ref/residual.h"

using namespace kcheck;

namespace {
struct Shape {
    int N, C;
};
}  // namespace

TEMPLATE_TEST_CASE("layernorm forward and backward match ref", "[layernorm]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    // 16-byte packs (C a multiple of 8 for bf16, of 4 for float) for 72, 40 and 264 (more packs
    // than lanes, and part of a second column block of the weight gradients), and 4 and 300 for
    // float; the element path for 13, and 4 and 300 for bf16.
    const Shape shape =
        GENERATE(Shape{13, 72}, Shape{5, 4}, Shape{600, 40}, Shape{3, 300}, Shape{7, 13}, Shape{5, 264});
    const InOrder in_order(order);
    const int N = shape.N, C = shape.C;
    const double eps = 1e-5;
    const double bound = bound_for<S>();
    INFO("N " << N << " C " << C);
    const auto inp = as_stored<S>(random_floats(size_t(N) * C, -2.0f, 2.0f)), w = as_stored<S>(random_floats(C)),
               b = as_stored<S>(random_floats(C));

    // Forward.
    Device<S> d_inp(to_storage<S>(inp)), d_w(to_storage<S>(w)), d_b(to_storage<S>(b)), d_out(size_t(N) * C);
    Device<float> d_mean(N), d_rstd(N);
    rkv::NormArgs<S, float> a{.N = N,
                              .C = C,
                              .eps = eps,
                              .inp = d_inp.get(),
                              .w = d_w.get(),
                              .bias = d_b.get(),
                              .out = d_out.get(),
                              .mean = d_mean.get(),
                              .rstd = d_rstd.get()};
    rkv::cuda::layernorm_forward(a, nullptr);
    std::vector<double> out_ref(size_t(N) * C), mean_ref(N), rstd_ref(N);
    const auto inp_d = to_double(inp), w_d = to_double(w), b_d = to_double(b);
    rkv::NormArgs<double, double> r{.N = N,
                                    .C = C,
                                    .eps = eps,
                                    .inp = inp_d.data(),
                                    .w = w_d.data(),
                                    .bias = b_d.data(),
                                    .out = out_ref.data(),
                                    .mean = mean_ref.data(),
                                    .rstd = rstd_ref.data()};
    rkv::ref::layernorm_forward(r);
    check_close("layernorm_forward out", to_floats(d_out.download()), out_ref, bound);
    check_close("layernorm_forward mean", d_mean.download(), mean_ref, fp32_bound);
    check_close("layernorm_forward rstd", d_rstd.download(), rstd_ref, fp32_bound);

    // Backward from the kernel's own statistics, into gradients that already hold values.
    const auto mean = d_mean.download(), rstd = d_rstd.download();
    const auto dout = as_stored<S>(random_floats(size_t(N) * C)), dinp0 = as_stored<S>(random_floats(size_t(N) * C));
    const auto dw0 = random_floats(C), db0 = random_floats(C);
    Device<S> d_dout(to_storage<S>(dout)), d_dinp(to_storage<S>(dinp0));
    Device<float> d_dw(dw0), d_db(db0);
    a.dout = d_dout.get(), a.dinp = d_dinp.get(), a.dw = d_dw.get(), a.db = d_db.get();
    rkv::cuda::layernorm_backward(a, nullptr);
    auto dinp_ref = to_double(dinp0), dw_ref = to_double(dw0), db_ref = to_double(db0);
    const auto dout_d = to_double(dout), mean_d = to_double(mean), rstd_d = to_double(rstd);
    r.mean = const_cast<double*>(mean_d.data()), r.rstd = const_cast<double*>(rstd_d.data());  // only read
    r.dout = dout_d.data(), r.dinp = dinp_ref.data(), r.dw = dw_ref.data(), r.db = db_ref.data();
    rkv::ref::layernorm_backward(r);
    check_close("layernorm_backward dinp", to_floats(d_dinp.download()), dinp_ref, bound);
    check_close("layernorm_backward dw", d_dw.download(), dw_ref, fp32_bound);
    check_close("layernorm_backward db", d_db.download(), db_ref, fp32_bound);
}

TEMPLATE_TEST_CASE("residual + layernorm matches ref residual then ref layernorm, and the separate kernels",
                   "[layernorm]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{13, 72}, Shape{600, 40}, Shape{3, 300}, Shape{7, 13});  // as above
    const InOrder in_order(order);
    const int N = shape.N, C = shape.C;
    const size_t NC = size_t(N) * C;
    const double eps = 1e-5;
    const double bound = bound_for<S>();
    INFO("N " << N << " C " << C);
    const auto a = as_stored<S>(random_floats(NC, -2.0f, 2.0f)), b = as_stored<S>(random_floats(NC)),
               w = as_stored<S>(random_floats(C)), bias = as_stored<S>(random_floats(C));
    Device<S> d_a(to_storage<S>(a)), d_b(to_storage<S>(b)), d_w(to_storage<S>(w)), d_bias(to_storage<S>(bias)),
        d_resid(NC), d_out(NC);
    Device<float> d_mean(N), d_rstd(N);
    rkv::NormArgs<S, float> n{.N = N,
                              .C = C,
                              .eps = eps,
                              .inp = d_a.get(),
                              .w = d_w.get(),
                              .bias = d_bias.get(),
                              .out = d_out.get(),
                              .mean = d_mean.get(),
                              .rstd = d_rstd.get(),
                              .residual = d_b.get(),
                              .resid_out = d_resid.get()};
    rkv::cuda::layernorm_forward(n, nullptr);
    const auto resid = to_floats(d_resid.download()), out = to_floats(d_out.download());
    const auto mean = d_mean.download(), rstd = d_rstd.download();

    // ref: the residual, stored as S, then the norm of what was stored.
    std::vector<double> resid_ref(NC), out_ref(NC), mean_ref(N), rstd_ref(N);
    rkv::ref::residual_forward(resid_ref.data(), to_double(a).data(), to_double(b).data(), NC);
    const auto resid_stored = as_stored<S>(std::vector<float>(resid_ref.begin(), resid_ref.end()));
    const auto resid_d = to_double(resid_stored), w_d = to_double(w), bias_d = to_double(bias);
    rkv::ref::layernorm_forward(rkv::NormArgs<double, double>{.N = N,
                                                              .C = C,
                                                              .eps = eps,
                                                              .inp = resid_d.data(),
                                                              .w = w_d.data(),
                                                              .bias = bias_d.data(),
                                                              .out = out_ref.data(),
                                                              .mean = mean_ref.data(),
                                                              .rstd = rstd_ref.data()});
    check_close("residual_layernorm_forward resid_out", resid, resid_ref, bound);
    check_close("residual_layernorm_forward out", out, out_ref, bound);
    check_close("residual_layernorm_forward mean", mean, mean_ref, fp32_bound);
    check_close("residual_layernorm_forward rstd", rstd, rstd_ref, fp32_bound);

    // The separate kernels give the same bits.
    Device<S> d_resid2(NC), d_out2(NC);
    Device<float> d_mean2(N), d_rstd2(N);
    rkv::cuda::residual_forward(d_resid2.get(), d_a.get(), d_b.get(), NC, nullptr);
    rkv::cuda::layernorm_forward(rkv::NormArgs<S, float>{.N = N,
                                                         .C = C,
                                                         .eps = eps,
                                                         .inp = d_resid2.get(),
                                                         .w = d_w.get(),
                                                         .bias = d_bias.get(),
                                                         .out = d_out2.get(),
                                                         .mean = d_mean2.get(),
                                                         .rstd = d_rstd2.get()},
                                 nullptr);
    CHECK(to_floats(d_resid2.download()) == resid);
    CHECK(to_floats(d_out2.download()) == out);
    CHECK(d_mean2.download() == mean);
    CHECK(d_rstd2.download() == rstd);

    // And in place, the sum over a.
    n.resid_out = d_a.get(), n.out = d_out2.get(), n.mean = d_mean2.get(), n.rstd = d_rstd2.get();
    rkv::cuda::layernorm_forward(n, nullptr);
    CHECK(to_floats(d_a.download()) == resid);
    CHECK(to_floats(d_out2.download()) == out);
}
