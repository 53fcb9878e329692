// layers/linear.cu against ref/linear.h and ref/activations.h (double), float and bf16 storage:
// forward with and without bias, the fused GELU (out and pre), the backward writing dinp
// (poisoned first) or adding to it, and adding to parameter gradients that start random, and
// the backward through a GELU (dpre written); out and dout with rows OC apart and padded past
// OC (the padding of out must stay untouched, dout's is NaN and must not be read).
#include "kernel_check.h"

#include <limits>

#include "layers/linear.cuh"
#include "ref/activations.h"
#include "ref/linear.h"

using namespace kcheck;

namespace {

struct Shape {
    int N, C, OC;
};
// Dimensions that are multiples of 8 and ones that are not; OC % 8 != 0 takes
// linear_gelu_forward's path without the GELU epilogue, C % 8 != 0 linear_gelu_backward's
// without DGELU.
const std::vector<Shape> kShapes = {{5, 13, 7}, {37, 24, 40}, {64, 48, 96}, {9, 16, 30}};
// Row strides past OC: none, and one that takes the rows off 16-byte alignment then back.
const std::vector<int> kPads = {0, 9, 24};
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// A tensor as the kernel stores it, and as ref reads it (in double, rounded like the storage).
template <class S>
struct Tensor {
    std::vector<double> ref;
    Device<S> dev;
    explicit Tensor(const std::vector<float>& v) : ref(to_double(as_stored<S>(v))), dev(to_storage<S>(v)) {}
};

// Epilogues on or off (bias, GELU and bias gradient as kernels of their own) for a scope.
struct Epilogues {
    explicit Epilogues(bool on) { rkv::cuda::set_linear_epilogues(on); }
    ~Epilogues() { rkv::cuda::set_linear_epilogues(true); }
};

}  // namespace

TEMPLATE_TEST_CASE("linear forward and forward with GELU match ref, with and without bias", "[linear]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(from_range(kShapes));
    const bool with_bias = GENERATE(true, false);
    const bool epilogues = GENERATE(true, false);
    const int ld = shape.OC + GENERATE(from_range(kPads));
    const InOrder in_order(order);
    const Epilogues fused(epilogues);
    const int N = shape.N, C = shape.C, OC = shape.OC;
    INFO("N " << N << " C " << C << " OC " << OC << " ld " << ld << " bias " << with_bias << " epilogues "
              << epilogues);
    const Tensor<S> inp(random_floats(size_t(N) * C)), weight(random_floats(size_t(OC) * C)), bias(random_floats(OC));
    const S* b = with_bias ? bias.dev.get() : nullptr;

    std::vector<double> pre_ref(size_t(N) * OC), out_ref(size_t(N) * OC);
    rkv::ref::linear_forward(rkv::LinearArgs<double, double>{.N = N,
                                                             .C = C,
                                                             .OC = OC,
                                                             .inp = inp.ref.data(),
                                                             .weight = weight.ref.data(),
                                                             .bias = with_bias ? bias.ref.data() : nullptr,
                                                             .out = pre_ref.data()});
    rkv::ref::gelu_forward(out_ref.data(), pre_ref.data(), pre_ref.size());

    Device<S> rows(size_t(N) * ld);
    rkv::LinearArgs<S, float> a{.N = N,
                                .C = C,
                                .OC = OC,
                                .ld = ld,
                                .inp = inp.dev.get(),
                                .weight = weight.dev.get(),
                                .bias = b,
                                .out = rows.get()};
    rkv::cuda::linear_forward(a, nullptr);
    const auto got = to_floats(rows.download());
    check_close("linear_forward", without_stride(got, N, OC, ld), pre_ref, bound_for<S>());
    CHECK(padding_untouched(got, N, OC, ld));

    Device<S> out(size_t(N) * OC), pre(size_t(N) * OC);
    a.ld = 0, a.out = out.get(), a.pre = pre.get();
    rkv::cuda::linear_gelu_forward(a, nullptr);
    check_close("linear_gelu_forward out", to_floats(out.download()), out_ref, bound_for<S>());
    check_close("linear_gelu_forward pre", to_floats(pre.download()), pre_ref, bound_for<S>());
}

TEMPLATE_TEST_CASE("linear backward writes or adds dinp, and adds dweight and dbias, like ref", "[linear]", float,
                   bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(from_range(kShapes));
    const bool with_bias = GENERATE(true, false);
    const bool epilogues = GENERATE(true, false);
    const bool accumulate = GENERATE(true, false);
    const int ld = shape.OC + GENERATE(from_range(kPads));
    const InOrder in_order(order);
    const Epilogues fused(epilogues);
    const int N = shape.N, C = shape.C, OC = shape.OC;
    INFO("N " << N << " C " << C << " OC " << OC << " ld " << ld << " bias " << with_bias << " epilogues " << epilogues
              << " accumulate " << accumulate);
    const auto dout_values = random_floats(size_t(N) * OC);
    const Tensor<S> dout(with_stride(dout_values, N, OC, ld, kNaN)), inp(random_floats(size_t(N) * C)),
        weight(random_floats(size_t(OC) * C));
    const auto dout_ref = to_double(as_stored<S>(dout_values));
    const auto dinp0 = accumulate ? random_floats(size_t(N) * C) : std::vector<float>(size_t(N) * C, kNaN),
               dweight0 = random_floats(size_t(OC) * C), dbias0 = random_floats(OC);
    Device<S> dinp(to_storage<S>(dinp0));
    Device<float> dweight(dweight0), dbias(dbias0);
    rkv::cuda::linear_backward(rkv::LinearArgs<S, float>{.N = N,
                                                         .C = C,
                                                         .OC = OC,
                                                         .ld = ld,
                                                         .inp = inp.dev.get(),
                                                         .weight = weight.dev.get(),
                                                         .dout = dout.dev.get(),
                                                         .dinp = dinp.get(),
                                                         .accumulate_dinp = accumulate,
                                                         .dweight = dweight.get(),
                                                         .dbias = with_bias ? dbias.get() : nullptr},
                               nullptr);

    auto dinp_ref = accumulate ? to_double(as_stored<S>(dinp0)) : std::vector<double>(size_t(N) * C),
         dweight_ref = to_double(dweight0), dbias_ref = to_double(dbias0);
    rkv::ref::linear_backward(rkv::LinearArgs<double, double>{.N = N,
                                                              .C = C,
                                                              .OC = OC,
                                                              .inp = inp.ref.data(),
                                                              .weight = weight.ref.data(),
                                                              .dout = dout_ref.data(),
                                                              .dinp = dinp_ref.data(),
                                                              .dweight = dweight_ref.data(),
                                                              .dbias = with_bias ? dbias_ref.data() : nullptr});
    check_close("linear_backward dinp", to_floats(dinp.download()), dinp_ref, bound_for<S>());
    // The parameter gradients are float sums of products of stored values: fp32 accuracy in
    // both builds.
    check_close("linear_backward dweight", dweight.download(), dweight_ref, fp32_bound);
    if (with_bias)
        check_close("linear_backward dbias", dbias.download(), dbias_ref, fp32_bound);
    else
        CHECK(dbias.download() == dbias0);
}

TEMPLATE_TEST_CASE("linear backward through a GELU matches ref's linear and GELU backward", "[linear]", float, bf16) {
    using S = TestType;
    const auto order = GENERATE(from_range(orders()));
    const Shape shape = GENERATE(from_range(kShapes));
    const bool with_bias = GENERATE(true, false);
    const bool epilogues = GENERATE(true, false);
    const InOrder in_order(order);
    const Epilogues fused(epilogues);
    const int N = shape.N, C = shape.C, OC = shape.OC;
    INFO("N " << N << " C " << C << " OC " << OC << " bias " << with_bias << " epilogues " << epilogues);
    // inp = GELU(pre) as the forward stored it; pre over the GELU's curved part.
    const auto pre_values = as_stored<S>(random_floats(size_t(N) * C, -4.0f, 4.0f));
    std::vector<double> inp_values(pre_values.size());
    rkv::ref::gelu_forward(inp_values.data(), to_double(pre_values).data(), inp_values.size());
    const Tensor<S> dout(random_floats(size_t(N) * OC)), pre(pre_values),
        inp(std::vector<float>(inp_values.begin(), inp_values.end())), weight(random_floats(size_t(OC) * C));
    const auto dweight0 = random_floats(size_t(OC) * C), dbias0 = random_floats(OC);
    Device<S> dpre(size_t(N) * C);
    Device<float> dweight(dweight0), dbias(dbias0);
    rkv::cuda::linear_gelu_backward(rkv::LinearArgs<S, float>{.N = N,
                                                              .C = C,
                                                              .OC = OC,
                                                              .inp = inp.dev.get(),
                                                              .weight = weight.dev.get(),
                                                              .inp_pre = pre.dev.get(),
                                                              .dout = dout.dev.get(),
                                                              .dinp = dpre.get(),
                                                              .dweight = dweight.get(),
                                                              .dbias = with_bias ? dbias.get() : nullptr},
                                    nullptr);

    std::vector<double> dinp_ref(size_t(N) * C), dpre_ref(size_t(N) * C);
    auto dweight_ref = to_double(dweight0), dbias_ref = to_double(dbias0);
    rkv::ref::linear_backward(rkv::LinearArgs<double, double>{.N = N,
                                                              .C = C,
                                                              .OC = OC,
                                                              .inp = inp.ref.data(),
                                                              .weight = weight.ref.data(),
                                                              .dout = dout.ref.data(),
                                                              .dinp = dinp_ref.data(),
                                                              .dweight = dweight_ref.data(),
                                                              .dbias = with_bias ? dbias_ref.data() : nullptr});
    rkv::ref::gelu_backward(dpre_ref.data(), dinp_ref.data(), pre.ref.data(), dpre_ref.size());
    check_close("linear_gelu_backward dpre", to_floats(dpre.download()), dpre_ref, bound_for<S>());
    check_close("linear_gelu_backward dweight", dweight.download(), dweight_ref, fp32_bound);
    if (with_bias)
        check_close("linear_gelu_backward dbias", dbias.download(), dbias_ref, fp32_bound);
    else
        CHECK(dbias.download() == dbias0);
}

TEST_CASE("linear backward refuses dbias without dweight", "[linear]") {
    Device<float> x(16), dbias(4);
    const rkv::LinearArgs<float, float> a{.N = 2,
                                          .C = 2,
                                          .OC = 4,
                                          .inp = x.get(),
                                          .weight = x.get(),
                                          .inp_pre = x.get(),
                                          .dout = x.get(),
                                          .dinp = x.get(),
                                          .accumulate_dinp = true,
                                          .dbias = dbias.get()};
    CHECK_THROWS_AS(rkv::cuda::linear_backward(a, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(rkv::cuda::linear_gelu_backward(a, nullptr), std::invalid_argument);
}

TEST_CASE("linear refuses a row stride shorter than a row", "[linear]") {
    Device<float> x(16);
    const rkv::LinearArgs<float, float> a{.N = 2,
                                          .C = 2,
                                          .OC = 4,
                                          .ld = 3,
                                          .inp = x.get(),
                                          .weight = x.get(),
                                          .out = x.get(),
                                          .dout = x.get(),
                                          .dinp = x.get(),
                                          .accumulate_dinp = true,
                                          .dweight = x.get()};
    CHECK_THROWS_AS(rkv::cuda::linear_forward(a, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(rkv::cuda::linear_backward(a, nullptr), std::invalid_argument);
}
