// layers/qk_norm_rope.cu against ref/rmsnorm.h then ref/rope.h (and the backward of both, in
// reverse) in double, for float and bf16 storage (ref gets the inputs as stored), in both
// thread orders, under every RoPE scaling (rope_cases.h): out, rstd, dinp (written: poisoned
// first) and dw (added to random values).
// Head sizes from 2 to 256 (more pairs than lanes, fewer, and lanes left idle), positions
// that do not fill the last block, and the same bits for the same inputs in every order.
#include "kernel_check.h"

#include <stdexcept>

#include "layers/qk_norm_rope.cuh"
#include "ref/rmsnorm.h"
#include "ref/rope.h"
#include "rope_cases.h"

using namespace kcheck;

namespace {

struct Shape {
    int B, T, H, HS;
};

constexpr double kEps = 1e-6;

// What ref makes of one set of inputs.
struct Reference {
    std::vector<double> out, rstd, dinp, dw;
};

Reference reference(const Shape& s, const rkv::RopeParams& rope, int pos0, const std::vector<float>& inp,
                    const std::vector<float>& w, const std::vector<float>& dout, const std::vector<float>& dw0) {
    const int rows = s.B * s.T * s.H;
    const size_t n = size_t(rows) * s.HS;
    Reference r{std::vector<double>(n), std::vector<double>(rows), std::vector<double>(n), to_double(dw0)};
    const auto x = to_double(inp), wd = to_double(w);
    std::vector<double> normed(n), dnormed(n);
    rkv::NormArgs<double, double> a{.N = rows,
                                    .C = s.HS,
                                    .eps = kEps,
                                    .inp = x.data(),
                                    .w = wd.data(),
                                    .out = normed.data(),
                                    .rstd = r.rstd.data()};
    rkv::ref::rmsnorm_forward(a);
    const auto dout_d = to_double(dout);
    const rkv::RopeArgs<double, double> rp{.B = s.B,
                                           .T = s.T,
                                           .NH = s.H,
                                           .HS = s.HS,
                                           .rope = rope,
                                           .pos0 = pos0,
                                           .inp = normed.data(),
                                           .out = r.out.data(),
                                           .dout = dout_d.data(),
                                           .dinp = dnormed.data()};
    rkv::ref::rope_forward(rp);
    rkv::ref::rope_backward(rp);
    a.dout = dnormed.data(), a.dinp = r.dinp.data(), a.dw = r.dw.data();
    rkv::ref::rmsnorm_backward(a);
    return r;
}

}  // namespace

TEMPLATE_TEST_CASE("qk_norm_rope forward and backward match ref rmsnorm then rope", "[qk_norm_rope]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(Shape{2, 13, 3, 128}, Shape{1, 9, 2, 64}, Shape{3, 5, 4, 16}, Shape{1, 11, 1, 256},
                                 Shape{2, 7, 5, 2}, Shape{1, 20, 2, 130});
    const rkv::RopeParams rope = GENERATE(from_range(rope_cases()));
    const int pos0 = GENERATE(0, 777);  // the forward's positions start there in inference; the backward's at 0
    const InOrder in_order(order);
    const auto [B, T, H, HS] = shape;
    INFO("B " << B << " T " << T << " H " << H << " HS " << HS << " theta " << rope.theta << " " << rope_type_name(rope)
              << " pos0 " << pos0);
    const size_t n = size_t(B) * T * H * HS;
    const auto inp = as_stored<S>(random_floats(n, -2.0f, 2.0f)), w = as_stored<S>(random_floats(HS, 0.5f, 1.5f)),
               dout = as_stored<S>(random_floats(n));
    const auto dw0 = random_floats(HS);
    const Reference ref = reference(shape, rope, pos0, inp, w, dout, dw0);

    Device<S> d_inp(to_storage<S>(inp)), d_w(to_storage<S>(w)), d_out(n), d_dout(to_storage<S>(dout)), d_dinp(n);
    Device<float> d_rstd(size_t(B) * T * H), d_dw(dw0);
    const rkv::RopeArgs<S, float> a{.B = B,
                                    .T = T,
                                    .NH = H,
                                    .HS = HS,
                                    .rope = rope,
                                    .pos0 = pos0,
                                    .inp = d_inp.get(),
                                    .out = d_out.get(),
                                    .w = d_w.get(),
                                    .rstd = d_rstd.get(),
                                    .eps = kEps,
                                    .dout = d_dout.get(),
                                    .dinp = d_dinp.get(),
                                    .dw = d_dw.get()};
    rkv::cuda::qk_norm_rope_forward(a, nullptr);
    check_close("qk_norm_rope_forward out", to_floats(d_out.download()), ref.out, bound_for<S>());
    check_close("qk_norm_rope_forward rstd", d_rstd.download(), ref.rstd, fp32_bound);
    rkv::cuda::qk_norm_rope_backward(a, nullptr);
    check_close("qk_norm_rope_backward dinp", to_floats(d_dinp.download()), ref.dinp, bound_for<S>());
    check_close("qk_norm_rope_backward dw", d_dw.download(), ref.dw, fp32_bound);
}

TEST_CASE("qk_norm_rope gives the same bits in every thread order", "[qk_norm_rope]") {
    const Shape s{2, 37, 3, 64};
    const size_t n = size_t(s.B) * s.T * s.H * s.HS;
    const auto inp = as_stored<bf16>(random_floats(n)), w = as_stored<bf16>(random_floats(s.HS)),
               dout = as_stored<bf16>(random_floats(n));
    std::vector<std::vector<float>> first;
    for (const auto order : orders()) {
        InOrder in_order(order);
        Device<bf16> d_inp(to_storage<bf16>(inp)), d_w(to_storage<bf16>(w)), d_out(n), d_dout(to_storage<bf16>(dout)),
            d_dinp(n);
        Device<float> d_rstd(size_t(s.B) * s.T * s.H), d_dw(std::vector<float>(s.HS, 0.0f));
        const rkv::RopeArgs<bf16, float> a{.B = s.B,
                                           .T = s.T,
                                           .NH = s.H,
                                           .HS = s.HS,
                                           .inp = d_inp.get(),
                                           .out = d_out.get(),
                                           .w = d_w.get(),
                                           .rstd = d_rstd.get(),
                                           .eps = kEps,
                                           .dout = d_dout.get(),
                                           .dinp = d_dinp.get(),
                                           .dw = d_dw.get()};
        rkv::cuda::qk_norm_rope_forward(a, nullptr);
        rkv::cuda::qk_norm_rope_backward(a, nullptr);
        const std::vector<std::vector<float>> got{to_floats(d_out.download()), d_rstd.download(),
                                                  to_floats(d_dinp.download()), d_dw.download()};
        if (first.empty())
            first = got;
        else
            CHECK(got == first);
    }
}

TEST_CASE("qk_norm_rope refuses odd head sizes and head sizes over 256", "[qk_norm_rope]") {
    Device<float> x(1024);
    for (const int HS : {7, 258})
        CHECK_THROWS_AS(rkv::cuda::qk_norm_rope_forward(rkv::RopeArgs<float, float>{.B = 1,
                                                                                    .T = 1,
                                                                                    .NH = 1,
                                                                                    .HS = HS,
                                                                                    .inp = x.get(),
                                                                                    .out = x.get(),
                                                                                    .w = x.get(),
                                                                                    .rstd = x.get(),
                                                                                    .eps = kEps},
                                                        nullptr),
                        std::invalid_argument);
}
