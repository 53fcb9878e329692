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

// The kernel's inputs as stored on the device, out, rstd and dinp poisoned, dw starting at dw0;
// and its arguments over them.
template <class S>
struct OnDevice {
    OnDevice(const Shape& s, const rkv::RopeParams& rope, int pos0, const std::vector<float>& h_inp,
             const std::vector<float>& h_w, const std::vector<float>& h_dout, const std::vector<float>& dw0)
        : inp(to_storage<S>(h_inp)),
          w(to_storage<S>(h_w)),
          out(h_inp.size()),
          dout(to_storage<S>(h_dout)),
          dinp(h_inp.size()),
          rstd(size_t(s.B) * s.T * s.H),
          dw(dw0),
          args{.B = s.B,
               .T = s.T,
               .NH = s.H,
               .HS = s.HS,
               .rope = rope,
               .pos0 = pos0,
               .inp = inp.get(),
               .out = out.get(),
               .w = w.get(),
               .rstd = rstd.get(),
               .eps = kEps,
               .dout = dout.get(),
               .dinp = dinp.get(),
               .dw = dw.get()} {}
    Device<S> inp, w, out, dout, dinp;
    Device<float> rstd, dw;
    const rkv::RopeArgs<S, float> args;
};

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

    const OnDevice<S> d(shape, rope, pos0, inp, w, dout, dw0);
    rkv::cuda::qk_norm_rope_forward(d.args, nullptr);
    check_close("qk_norm_rope_forward out", to_floats(d.out.download()), ref.out, bound_for<S>());
    check_close("qk_norm_rope_forward rstd", d.rstd.download(), ref.rstd, fp32_bound);
    rkv::cuda::qk_norm_rope_backward(d.args, nullptr);
    check_close("qk_norm_rope_backward dinp", to_floats(d.dinp.download()), ref.dinp, bound_for<S>());
    check_close("qk_norm_rope_backward dw", d.dw.download(), ref.dw, fp32_bound);
}

TEST_CASE("qk_norm_rope gives the same bits in every thread order", "[qk_norm_rope]") {
    const Shape s{2, 37, 3, 64};
    const size_t n = size_t(s.B) * s.T * s.H * s.HS;
    const auto inp = as_stored<bf16>(random_floats(n)), w = as_stored<bf16>(random_floats(s.HS)),
               dout = as_stored<bf16>(random_floats(n));
    std::vector<std::vector<float>> first;
    for (const auto order : orders()) {
        InOrder in_order(order);
        const OnDevice<bf16> d(s, rkv::RopeParams{}, 0, inp, w, dout, std::vector<float>(s.HS, 0.0f));
        rkv::cuda::qk_norm_rope_forward(d.args, nullptr);
        rkv::cuda::qk_norm_rope_backward(d.args, nullptr);
        const std::vector<std::vector<float>> got{to_floats(d.out.download()), d.rstd.download(),
                                                  to_floats(d.dinp.download()), d.dw.download()};
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
                                                                                    .rope = {},
                                                                                    .inp = x.get(),
                                                                                    .out = x.get(),
                                                                                    .w = x.get(),
                                                                                    .rstd = x.get(),
                                                                                    .eps = kEps},
                                                        nullptr),
                        std::invalid_argument);
}
