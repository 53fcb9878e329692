// layers/attention.cu against ref/attention.h (double): fresh random inputs, outputs
// poisoned with NaN, gradients pre-filled with random values, and the relative error of out,
// lse and of what the backward added to dq, dk, dv. MHA, GQA and MQA; lengths that are not
// multiples of the 32-row tile; head dims 4 to 128; routes read from device memory.
#include "kernel_check.h"

#include <ostream>

#include "layers/attention.cuh"
#include "ref/attention.h"

using namespace kcheck;

namespace {

using Vec = std::vector<float>;

struct Shape {
    int B, T, NH, NKV, HS;
    size_t q() const { return size_t(B) * T * NH * HS; }    // q, out, dq, dout
    size_t kv() const { return size_t(B) * T * NKV * HS; }  // k, v, dk, dv of one layer
    size_t lse() const { return size_t(B) * NH * T; }
};

std::ostream& operator<<(std::ostream& os, const Shape& s) {
    return os << "B " << s.B << " T " << s.T << " NH " << s.NH << " NKV " << s.NKV << " HS " << s.HS;
}

// Scores of a few units, so that softmax is far from uniform.
Vec random_qk(size_t n) { return random_floats(n, -2.0f, 2.0f); }

Vec slice(const Vec& all, int layer, size_t n) { return Vec(all.begin() + layer * n, all.begin() + (layer + 1) * n); }

// What a backward added to a gradient that held `before` (the subtraction in double).
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

// One layer's inputs and what ref/ makes of them: out, lse, and the dq, dk, dv it adds.
struct Layer {
    Vec q, dout;
    std::vector<double> out, lse, dq, dk, dv;
    Layer(const Shape& s, const Vec& k, const Vec& v)
        : q(random_qk(s.q())), dout(random_floats(s.q())), out(s.q()), lse(s.lse()), dq(s.q()), dk(s.kv()),
          dv(s.kv()) {
        const auto qd = to_double(q), kd = to_double(k), vd = to_double(v);
        rkv::ref::attention_forward(out.data(), lse.data(), qd.data(), kd.data(), vd.data(), s.B, s.T, s.NH, s.NKV,
                                    s.HS);
        rkv::ref::attention_backward(dq.data(), dk.data(), dv.data(), to_double(dout).data(), qd.data(), kd.data(),
                                     vd.data(), out.data(), lse.data(), s.B, s.T, s.NH, s.NKV, s.HS);
    }
};

// Forward, then backward on the reference's out and lse (so it is checked on its own), of
// one layer with no route.
void check_layer(const Shape& s) {
    INFO(s);
    const Vec k = random_qk(s.kv()), v = random_floats(s.kv());
    const Layer ref(s, k, v);
    Device<float> q(ref.q), kd(k), vd(v), out(s.q()), lse(s.lse());
    rkv::cuda::attention_forward(out.get(), lse.get(), q.get(), kd.get(), vd.get(), s.B, s.T, s.NH, s.NKV, s.HS,
                                 nullptr);
    check_close("out", out.download(), ref.out);
    check_close("lse", lse.download(), ref.lse);

    const Vec dq0 = random_floats(s.q()), dk0 = random_floats(s.kv()), dv0 = random_floats(s.kv());
    Device<float> dout(ref.dout), ref_out(Vec(ref.out.begin(), ref.out.end())),
        ref_lse(Vec(ref.lse.begin(), ref.lse.end())), dq(dq0), dk(dk0), dv(dv0);
    rkv::cuda::attention_backward(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), kd.get(), vd.get(),
                                  ref_out.get(), ref_lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
    check_close("dv", added(dv.download(), dv0), ref.dv);
    if (s.T == 1) {  // one key: P = 1 and dS = dP - D = 0, so dq and dk only round
        CHECK(norm(added(dq.download(), dq0)) < 1e-5 * norm(dq0));
        CHECK(norm(added(dk.download(), dk0)) < 1e-5 * norm(dk0));
        return;
    }
    check_close("dq", added(dq.download(), dq0), ref.dq);
    check_close("dk", added(dk.download(), dk0), ref.dk);
}

}  // namespace

TEST_CASE("attention matches ref: MHA, GQA, MQA, any length, head dims 4 to 128", "[attention]") {
    const Shape shape = GENERATE(
        // MHA
        Shape{2, 33, 3, 3, 16}, Shape{1, 70, 2, 2, 64}, Shape{1, 1, 2, 2, 64},
        // GQA
        Shape{2, 5, 4, 2, 16}, Shape{1, 70, 4, 2, 64}, Shape{1, 64, 6, 2, 32},
        // MQA
        Shape{2, 33, 4, 1, 16}, Shape{1, 97, 2, 1, 64},
        // small and odd head dims
        Shape{2, 19, 2, 1, 4}, Shape{1, 37, 3, 3, 6}, Shape{1, 40, 2, 2, 24},
        // several key tiles; a group of 4
        Shape{2, 130, 4, 2, 64}, Shape{1, 96, 8, 2, 16},
        // the largest head dim
        Shape{1, 70, 2, 1, 128}, Shape{1, 257, 4, 2, 128});
    check_layer(shape);
}

TEST_CASE("attention reads the route from device memory and accumulates into the source", "[attention]") {
    const Shape s{2, 45, 4, 2, 16};
    const int L = 3;
    const Vec k_all = random_qk(L * s.kv()), v_all = random_floats(L * s.kv());
    Device<float> k(k_all), v(v_all), out(s.q()), lse(s.lse());
    Device<int> route(std::vector<int>{0, 0, 1});

    SECTION("layer 2 reads layer 1, then, with only the route changed, itself") {
        for (const int src : {1, 2}) {
            INFO("kv_src[2] = " << src);
            route.upload({0, 0, src});
            const Layer ref(s, slice(k_all, src, s.kv()), slice(v_all, src, s.kv()));
            const Vec dq0 = random_floats(s.q()), dk0 = random_floats(L * s.kv()), dv0 = random_floats(L * s.kv());
            Device<float> q(ref.q), dout(ref.dout), dq(dq0), dk(dk0), dv(dv0);
            out.poison();
            lse.poison();
            rkv::cuda::attention_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(), 2,
                                                s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            check_close("out", out.download(), ref.out);
            check_close("lse", lse.download(), ref.lse);

            rkv::cuda::attention_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                 out.get(), lse.get(), route.get(), 2, s.kv(), s.B, s.T, s.NH,
                                                 s.NKV, s.HS, nullptr);
            check_close("dq", added(dq.download(), dq0), ref.dq);
            const Vec dk_got = dk.download(), dv_got = dv.download();
            for (int l = 0; l < L; l++) {
                INFO("layer " << l);
                if (l == src) {
                    check_close("dk", added(slice(dk_got, l, s.kv()), slice(dk0, l, s.kv())), ref.dk);
                    check_close("dv", added(slice(dv_got, l, s.kv()), slice(dv0, l, s.kv())), ref.dv);
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
        const Vec dk0 = random_floats(L * s.kv()), dv0 = random_floats(L * s.kv());
        Device<float> dk(dk0), dv(dv0);
        std::vector<double> dk_want(s.kv()), dv_want(s.kv());  // the sum of both layers' reference dk, dv
        for (const int layer : {1, 2}) {
            const Layer ref(s, k0, v0);
            const Vec dq0 = random_floats(s.q());
            Device<float> q(ref.q), dout(ref.dout), dq(dq0);
            rkv::cuda::attention_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(), layer,
                                                s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            rkv::cuda::attention_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                 out.get(), lse.get(), route.get(), layer, s.kv(), s.B, s.T, s.NH,
                                                 s.NKV, s.HS, nullptr);
            check_close("dq", added(dq.download(), dq0), ref.dq);
            for (size_t i = 0; i < s.kv(); i++) dk_want[i] += ref.dk[i], dv_want[i] += ref.dv[i];
        }
        const Vec dk_got = dk.download(), dv_got = dv.download();
        check_close("dk, both readers", added(slice(dk_got, 0, s.kv()), slice(dk0, 0, s.kv())), dk_want);
        check_close("dv, both readers", added(slice(dv_got, 0, s.kv()), slice(dv0, 0, s.kv())), dv_want);
        for (int l = 1; l < L; l++) {
            CHECK(slice(dk_got, l, s.kv()) == slice(dk0, l, s.kv()));
            CHECK(slice(dv_got, l, s.kv()) == slice(dv0, l, s.kv()));
        }
    }
}

#ifdef RKV_EMU
// A missing barrier shows as results that change with the order the emulator runs threads in.
TEST_CASE("attention gives the same bits in every thread order", "[attention]") {
    const Shape s{2, 40, 4, 2, 16};
    const Vec q = random_qk(s.q()), k = random_qk(s.kv()), v = random_floats(s.kv()), dout = random_floats(s.q());
    std::vector<Vec> first;
    for (const emu::Order order : {emu::Order::fwd, emu::Order::rev, emu::Order::rand}) {
        InOrder in_order(order);
        Device<float> qd(q), kd(k), vd(v), doutd(dout), out(s.q()), lse(s.lse()), dq(Vec(s.q())),
            dk(Vec(s.kv())), dv(Vec(s.kv()));
        rkv::cuda::attention_forward(out.get(), lse.get(), qd.get(), kd.get(), vd.get(), s.B, s.T, s.NH, s.NKV,
                                     s.HS, nullptr);
        rkv::cuda::attention_backward(dq.get(), dk.get(), dv.get(), doutd.get(), qd.get(), kd.get(), vd.get(),
                                      out.get(), lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
        const std::vector<Vec> got{out.download(), lse.download(), dq.download(), dk.download(), dv.download()};
        if (first.empty()) first = got;
        else CHECK(got == first);
    }
}
#endif
