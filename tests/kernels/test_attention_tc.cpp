// layers/attention_tc.cu against ref/attention.h in double on the same bf16-rounded inputs:
// fresh random inputs, outputs poisoned with NaN, gradients pre-filled with random values
// and the relative error of what the backward added to dq, dk, dv (bf16_bound); lse to 1e-4,
// so that it is the plain kernel's natural-log lse and either backward takes either's (the
// backward runs on ref's lse). Head dims 64 and 128; MHA, GQA and MQA; lengths that are not
// multiples of the tiles (64 keys, 64 or 128 queries); routes read from device memory, with
// two layers reading one source; the same bits under every emulator thread order.
#include "kernel_check.h"

#include <ostream>

#include "layers/attention_tc.cuh"
#include "ref/attention.h"

using namespace kcheck;

namespace {

using Vec = std::vector<float>;
using Ref = std::vector<double>;
constexpr double kLseBound = 1e-4;

struct Shape {
    int B, T, NH, NKV, HS;
    size_t q() const { return size_t(B) * T * NH * HS; }    // q, out, dq, dout
    size_t kv() const { return size_t(B) * T * NKV * HS; }  // k, v, dk, dv of one layer
    size_t lse() const { return size_t(B) * NH * T; }
};

std::ostream& operator<<(std::ostream& os, const Shape& s) {
    return os << "B " << s.B << " T " << s.T << " NH " << s.NH << " NKV " << s.NKV << " HS " << s.HS;
}

// bf16 values; q and k of a few units' scores (q.k ~ HS / 4 before the 1 / sqrt(HS)), so that
// softmax is far from uniform.
Vec random_qk(size_t n) { return as_stored<bf16>(random_floats(n, -1.5f, 1.5f)); }
Vec random_bf16(size_t n) { return as_stored<bf16>(random_floats(n)); }

Vec slice(const Vec& all, int layer, size_t n) { return Vec(all.begin() + layer * n, all.begin() + (layer + 1) * n); }

// What a backward added to a gradient that held `before`.
Vec added(const Vec& after, const Vec& before) {
    Vec d(after.size());
    for (size_t i = 0; i < d.size(); i++) d[i] = float(double(after[i]) - before[i]);
    return d;
}

double norm(const Vec& x) {
    double sum = 0;
    for (const float v : x) sum += double(v) * v;
    return std::sqrt(sum);
}

// A gradient's prior contents: bf16 values of the size of what the backward adds (its rms),
// so that the rounding of the sum stays a bf16 rounding of the added part.
Vec prefill(size_t n, const Ref& to_add) {
    double sum = 0;
    for (const double x : to_add) sum += x * x;
    const float scale = sum > 0 ? float(std::sqrt(sum / to_add.size())) : 1.0f;
    return as_stored<bf16>(random_floats(n, -scale, scale));
}

Vec download(const Device<bf16>& d) { return to_floats(d.download()); }

// One layer's inputs and what ref/ makes of them: out, lse, and the dq, dk, dv it adds. The
// backward runs on out as bf16 stores it (out_stored), as the kernel's does.
struct Layer {
    Vec q, dout, out_stored;
    Ref out, lse, dq, dk, dv;
    Layer(const Shape& s, const Vec& k, const Vec& v)
        : q(random_qk(s.q())), dout(random_bf16(s.q())), out(s.q()), lse(s.lse()), dq(s.q()), dk(s.kv()),
          dv(s.kv()) {
        const auto qd = to_double(q), kd = to_double(k), vd = to_double(v);
        rkv::ref::attention_forward(out.data(), lse.data(), qd.data(), kd.data(), vd.data(), s.B, s.T, s.NH, s.NKV,
                                    s.HS);
        out_stored = as_stored<bf16>(Vec(out.begin(), out.end()));
        rkv::ref::attention_backward(dq.data(), dk.data(), dv.data(), to_double(dout).data(), qd.data(), kd.data(),
                                     vd.data(), to_double(out_stored).data(), lse.data(), s.B, s.T, s.NH, s.NKV,
                                     s.HS);
    }
    Vec lse_floats() const { return Vec(lse.begin(), lse.end()); }
};

// Forward, then backward on the reference's out and lse (so it is checked on its own), of one
// layer with no route.
void check_layer(const Shape& s) {
    INFO(s);
    const Vec k = random_qk(s.kv()), v = random_bf16(s.kv());
    const Layer ref(s, k, v);
    Device<bf16> q(to_bf16(ref.q)), kd(to_bf16(k)), vd(to_bf16(v)), out(s.q());
    Device<float> lse(s.lse());
    rkv::cuda::attention_tc_forward(out.get(), lse.get(), q.get(), kd.get(), vd.get(), s.B, s.T, s.NH, s.NKV,
                                    s.HS, nullptr);
    check_close("out", download(out), ref.out, bf16_bound);
    check_close("lse", lse.download(), ref.lse, kLseBound);

    const Vec dq0 = prefill(s.q(), ref.dq), dk0 = prefill(s.kv(), ref.dk), dv0 = prefill(s.kv(), ref.dv);
    Device<bf16> dout(to_bf16(ref.dout)), ref_out(to_bf16(ref.out_stored)), dq(to_bf16(dq0)), dk(to_bf16(dk0)),
        dv(to_bf16(dv0));
    Device<float> ref_lse(ref.lse_floats());
    rkv::cuda::attention_tc_backward(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), kd.get(), vd.get(),
                                     ref_out.get(), ref_lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
    check_close("dv", added(download(dv), dv0), ref.dv, bf16_bound);
    if (s.T == 1) {  // one key: P = 1 and dS = dP - D = 0, so dq and dk only round
        CHECK(norm(added(download(dq), dq0)) < 1e-2 * norm(dq0));
        CHECK(norm(added(download(dk), dk0)) < 1e-2 * norm(dk0));
        return;
    }
    check_close("dq", added(download(dq), dq0), ref.dq, bf16_bound);
    check_close("dk", added(download(dk), dk0), ref.dk, bf16_bound);
}

}  // namespace

TEST_CASE("attention_tc matches ref: head dims 64 and 128, MHA, GQA, MQA, any length", "[attention_tc]") {
    const Shape shape = GENERATE(
        // HS 64: one partial tile; one key; several key tiles and two forward blocks, GQA, MQA
        Shape{1, 37, 2, 2, 64}, Shape{2, 1, 4, 2, 64}, Shape{1, 130, 4, 2, 64}, Shape{1, 200, 2, 1, 64},
        // HS 128: MHA, and a group of 4
        Shape{1, 70, 2, 2, 128}, Shape{1, 130, 4, 1, 128});
    check_layer(shape);
}

TEST_CASE("attention_tc reads the route from device memory and accumulates into the source", "[attention_tc]") {
    const Shape s{2, 45, 4, 2, 64};
    const int L = 3;
    const Vec k_all = random_qk(L * s.kv()), v_all = random_bf16(L * s.kv());
    Device<bf16> k(to_bf16(k_all)), v(to_bf16(v_all)), out(s.q());
    Device<float> lse(s.lse());
    Device<int> route(std::vector<int>{0, 0, 1});

    SECTION("layer 2 reads layer 1, then, with only the route changed, itself") {
        for (const int src : {1, 2}) {
            INFO("kv_src[2] = " << src);
            route.upload({0, 0, src});
            const Layer ref(s, slice(k_all, src, s.kv()), slice(v_all, src, s.kv()));
            const Vec dq0 = prefill(s.q(), ref.dq), dk0 = prefill(L * s.kv(), ref.dk),
                      dv0 = prefill(L * s.kv(), ref.dv);
            Device<bf16> q(to_bf16(ref.q)), dout(to_bf16(ref.dout)), dq(to_bf16(dq0)), dk(to_bf16(dk0)),
                dv(to_bf16(dv0));
            out.poison();
            lse.poison();
            rkv::cuda::attention_tc_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(), 2,
                                                   s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            check_close("out", download(out), ref.out, bf16_bound);
            check_close("lse", lse.download(), ref.lse, kLseBound);

            rkv::cuda::attention_tc_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(),
                                                    v.get(), out.get(), lse.get(), route.get(), 2, s.kv(), s.B, s.T,
                                                    s.NH, s.NKV, s.HS, nullptr);
            check_close("dq", added(download(dq), dq0), ref.dq, bf16_bound);
            const Vec dk_got = download(dk), dv_got = download(dv);
            for (int l = 0; l < L; l++) {
                INFO("layer " << l);
                if (l == src) {
                    check_close("dk", added(slice(dk_got, l, s.kv()), slice(dk0, l, s.kv())), ref.dk, bf16_bound);
                    check_close("dv", added(slice(dv_got, l, s.kv()), slice(dv0, l, s.kv())), ref.dv, bf16_bound);
                } else {  // untouched, bit for bit
                    CHECK(slice(dk_got, l, s.kv()) == slice(dk0, l, s.kv()));
                    CHECK(slice(dv_got, l, s.kv()) == slice(dv0, l, s.kv()));
                }
            }
        }
    }

    SECTION("layers 1 and 2 both read layer 0: its dk, dv get the sum of both") {
        route.upload({0, 0, 0});
        const Vec k0 = slice(k_all, 0, s.kv()), v0 = slice(v_all, 0, s.kv());
        const Layer ref1(s, k0, v0), ref2(s, k0, v0);
        Ref dk_want(s.kv()), dv_want(s.kv());  // the sum of both layers' reference dk, dv
        for (size_t i = 0; i < s.kv(); i++) dk_want[i] = ref1.dk[i] + ref2.dk[i], dv_want[i] = ref1.dv[i] + ref2.dv[i];
        const Vec dk0 = prefill(L * s.kv(), dk_want), dv0 = prefill(L * s.kv(), dv_want);
        Device<bf16> dk(to_bf16(dk0)), dv(to_bf16(dv0));
        for (const auto* ref : {&ref1, &ref2}) {
            const int layer = ref == &ref1 ? 1 : 2;
            INFO("layer " << layer);
            const Vec dq0 = prefill(s.q(), ref->dq);
            Device<bf16> q(to_bf16(ref->q)), dout(to_bf16(ref->dout)), dq(to_bf16(dq0));
            rkv::cuda::attention_tc_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(),
                                                   layer, s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            check_close("out", download(out), ref->out, bf16_bound);
            rkv::cuda::attention_tc_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(),
                                                    v.get(), out.get(), lse.get(), route.get(), layer, s.kv(), s.B,
                                                    s.T, s.NH, s.NKV, s.HS, nullptr);
            check_close("dq", added(download(dq), dq0), ref->dq, bf16_bound);
        }
        const Vec dk_got = download(dk), dv_got = download(dv);
        check_close("dk, both readers", added(slice(dk_got, 0, s.kv()), slice(dk0, 0, s.kv())), dk_want, bf16_bound);
        check_close("dv, both readers", added(slice(dv_got, 0, s.kv()), slice(dv0, 0, s.kv())), dv_want, bf16_bound);
        for (int l = 1; l < L; l++) {
            CHECK(slice(dk_got, l, s.kv()) == slice(dk0, l, s.kv()));
            CHECK(slice(dv_got, l, s.kv()) == slice(dv0, l, s.kv()));
        }
    }
}

// A missing barrier shows under the emulator as results that change with the thread order;
// on a GPU this checks that two runs give the same bits (no atomics).
TEST_CASE("attention_tc gives the same bits in every thread order and every run", "[attention_tc]") {
    const Shape shape = GENERATE(Shape{1, 130, 4, 2, 64}, Shape{1, 70, 2, 1, 128});
    INFO(shape);
    const Shape& s = shape;
    const Vec q = random_qk(s.q()), k = random_qk(s.kv()), v = random_bf16(s.kv()), dout = random_bf16(s.q());
    const Vec dq0 = random_bf16(s.q()), dk0 = random_bf16(s.kv()), dv0 = random_bf16(s.kv());
    std::vector<Vec> first;
    for (const auto order : orders()) {
        for (int run = 0; run < (orders().size() > 1 ? 1 : 2); run++) {
            InOrder in_order(order);
            Device<bf16> qd(to_bf16(q)), kd(to_bf16(k)), vd(to_bf16(v)), doutd(to_bf16(dout)), out(s.q()),
                dq(to_bf16(dq0)), dk(to_bf16(dk0)), dv(to_bf16(dv0));
            Device<float> lse(s.lse());
            rkv::cuda::attention_tc_forward(out.get(), lse.get(), qd.get(), kd.get(), vd.get(), s.B, s.T, s.NH,
                                            s.NKV, s.HS, nullptr);
            rkv::cuda::attention_tc_backward(dq.get(), dk.get(), dv.get(), doutd.get(), qd.get(), kd.get(), vd.get(),
                                             out.get(), lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            const std::vector<Vec> got{download(out), lse.download(), download(dq), download(dk), download(dv)};
            if (first.empty()) first = got;
            else CHECK(got == first);
        }
    }
}

TEST_CASE("attention_tc refuses head dims other than 64 and 128 and uneven groups", "[attention_tc]") {
    Device<bf16> x(3 * 96);
    Device<float> lse(3);
    CHECK_THROWS_AS(rkv::cuda::attention_tc_forward(x.get(), lse.get(), x.get(), x.get(), x.get(), 1, 1, 3, 1, 96,
                                                    nullptr),
                    std::invalid_argument);
    CHECK_THROWS_AS(rkv::cuda::attention_tc_forward(x.get(), lse.get(), x.get(), x.get(), x.get(), 1, 1, 3, 2, 64,
                                                    nullptr),
                    std::invalid_argument);
}
