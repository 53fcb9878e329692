// layers/attention.cu against ref/attention.h (double): fresh random inputs, outputs
// poisoned with NaN, gradients pre-filled with random values of their size, and the relative
// error of out, lse and of what the backward added to dq, dk, dv. MHA, GQA and MQA; lengths
// that are not multiples of the 32-row tile; head dims 4 to 128; routes read from device
// memory. bf16 storage on a few shapes: ref gets the inputs (and the out the backward reads)
// as stored.
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

template <class X>
double norm(const std::vector<X>& x) {
    double sum = 0;
    for (const X v : x) sum += double(v) * v;
    return std::sqrt(sum);
}

// Gradients to accumulate into: random, of the size of what ref adds (so that what the
// kernel adds is not lost in the rounding of a larger sum), as stored in T.
template <class T>
Vec random_like(const std::vector<double>& ref, size_t n) {
    const double rms = norm(ref) / std::sqrt(double(ref.size()));
    Vec x = random_floats(n);
    for (float& e : x) e = float(e * (rms > 0 ? rms : 1.0));
    return as_stored<T>(x);
}

// One layer's inputs, as stored in T, and what ref/ makes of them: out, lse, and the dq, dk,
// dv it adds, the backward reading out as stored in T.
template <class T>
struct Layer {
    Vec q, dout, out_stored;
    std::vector<double> out, lse, dq, dk, dv;
    Layer(const Shape& s, const Vec& k, const Vec& v)
        : q(as_stored<T>(random_qk(s.q()))), dout(as_stored<T>(random_floats(s.q()))), out(s.q()), lse(s.lse()),
          dq(s.q()), dk(s.kv()), dv(s.kv()) {
        const auto qd = to_double(q), kd = to_double(k), vd = to_double(v);
        rkv::ref::attention_forward(out.data(), lse.data(), qd.data(), kd.data(), vd.data(), s.B, s.T, s.NH, s.NKV,
                                    s.HS);
        out_stored = as_stored<T>(Vec(out.begin(), out.end()));
        rkv::ref::attention_backward(dq.data(), dk.data(), dv.data(), to_double(dout).data(), qd.data(), kd.data(),
                                     vd.data(), to_double(out_stored).data(), lse.data(), s.B, s.T, s.NH, s.NKV,
                                     s.HS);
    }
};

// Forward, then backward on the reference's out and lse (so it is checked on its own), of
// one layer with no route.
template <class T>
void check_layer(const Shape& s) {
    INFO(s);
    const double bound = bound_for<T>();
    const Vec k = as_stored<T>(random_qk(s.kv())), v = as_stored<T>(random_floats(s.kv()));
    const Layer<T> ref(s, k, v);
    Device<T> q(to_storage<T>(ref.q)), kd(to_storage<T>(k)), vd(to_storage<T>(v)), out(s.q());
    Device<float> lse(s.lse());
    rkv::cuda::attention_forward(out.get(), lse.get(), q.get(), kd.get(), vd.get(), s.B, s.T, s.NH, s.NKV, s.HS,
                                 nullptr);
    check_close("out", to_floats(out.download()), ref.out, bound);
    check_close("lse", lse.download(), ref.lse, bound);

    const Vec dq0 = random_like<T>(ref.dq, s.q()), dk0 = random_like<T>(ref.dk, s.kv()),
              dv0 = random_like<T>(ref.dv, s.kv());
    Device<T> dout(to_storage<T>(ref.dout)), ref_out(to_storage<T>(ref.out_stored)), dq(to_storage<T>(dq0)),
        dk(to_storage<T>(dk0)), dv(to_storage<T>(dv0));
    Device<float> ref_lse(Vec(ref.lse.begin(), ref.lse.end()));
    rkv::cuda::attention_backward(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), kd.get(), vd.get(),
                                  ref_out.get(), ref_lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
    check_close("dv", added(to_floats(dv.download()), dv0), ref.dv, bound);
    if (s.T == 1) {  // one key: P = 1 and dS = dP - D = 0, so dq and dk only round
        CHECK(norm(added(to_floats(dq.download()), dq0)) < 1e-5 * norm(dq0));
        CHECK(norm(added(to_floats(dk.download()), dk0)) < 1e-5 * norm(dk0));
        return;
    }
    check_close("dq", added(to_floats(dq.download()), dq0), ref.dq, bound);
    check_close("dk", added(to_floats(dk.download()), dk0), ref.dk, bound);
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
    check_layer<float>(shape);
}

TEST_CASE("bf16 attention matches ref: GQA and MQA, a partial tile", "[attention]") {
    const Shape shape = GENERATE(Shape{2, 33, 4, 2, 16}, Shape{1, 40, 2, 1, 64});
    check_layer<bf16>(shape);
}

TEMPLATE_TEST_CASE("attention reads the route from device memory and accumulates into the source", "[attention]",
                   float, bf16) {
    using T = TestType;
    const double bound = bound_for<T>();
    const Shape s{2, 45, 4, 2, 16};
    const int L = 3;
    const Vec k_all = as_stored<T>(random_qk(L * s.kv())), v_all = as_stored<T>(random_floats(L * s.kv()));
    Device<T> k(to_storage<T>(k_all)), v(to_storage<T>(v_all)), out(s.q());
    Device<float> lse(s.lse());
    Device<int> route(std::vector<int>{0, 0, 1});

    SECTION("layer 2 reads layer 1, then, with only the route changed, itself") {
        for (const int src : {1, 2}) {
            INFO("kv_src[2] = " << src);
            route.upload({0, 0, src});
            const Layer<T> ref(s, slice(k_all, src, s.kv()), slice(v_all, src, s.kv()));
            const Vec dq0 = random_like<T>(ref.dq, s.q()), dk0 = random_like<T>(ref.dk, L * s.kv()),
                      dv0 = random_like<T>(ref.dv, L * s.kv());
            Device<T> q(to_storage<T>(ref.q)), dout(to_storage<T>(ref.dout)), dq(to_storage<T>(dq0)),
                dk(to_storage<T>(dk0)), dv(to_storage<T>(dv0));
            out.poison();
            lse.poison();
            rkv::cuda::attention_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(), 2,
                                                s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            check_close("out", to_floats(out.download()), ref.out, bound);
            check_close("lse", lse.download(), ref.lse, bound);

            rkv::cuda::attention_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                 out.get(), lse.get(), route.get(), 2, s.kv(), s.B, s.T, s.NH,
                                                 s.NKV, s.HS, nullptr);
            check_close("dq", added(to_floats(dq.download()), dq0), ref.dq, bound);
            const Vec dk_got = to_floats(dk.download()), dv_got = to_floats(dv.download());
            for (int l = 0; l < L; l++) {
                INFO("layer " << l);
                if (l == src) {
                    check_close("dk", added(slice(dk_got, l, s.kv()), slice(dk0, l, s.kv())), ref.dk, bound);
                    check_close("dv", added(slice(dv_got, l, s.kv()), slice(dv0, l, s.kv())), ref.dv, bound);
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
        const std::vector<Layer<T>> refs{Layer<T>(s, k0, v0), Layer<T>(s, k0, v0)};
        const Vec dk0 = random_like<T>(refs[0].dk, L * s.kv()), dv0 = random_like<T>(refs[0].dv, L * s.kv());
        Device<T> dk(to_storage<T>(dk0)), dv(to_storage<T>(dv0));
        std::vector<double> dk_want(s.kv()), dv_want(s.kv());  // the sum of both layers' reference dk, dv
        for (const int layer : {1, 2}) {
            const Layer<T>& ref = refs[layer - 1];
            const Vec dq0 = random_like<T>(ref.dq, s.q());
            Device<T> q(to_storage<T>(ref.q)), dout(to_storage<T>(ref.dout)), dq(to_storage<T>(dq0));
            rkv::cuda::attention_forward_routed(out.get(), lse.get(), q.get(), k.get(), v.get(), route.get(), layer,
                                                s.kv(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
            rkv::cuda::attention_backward_routed(dq.get(), dk.get(), dv.get(), dout.get(), q.get(), k.get(), v.get(),
                                                 out.get(), lse.get(), route.get(), layer, s.kv(), s.B, s.T, s.NH,
                                                 s.NKV, s.HS, nullptr);
            check_close("dq", added(to_floats(dq.download()), dq0), ref.dq, bound);
            for (size_t i = 0; i < s.kv(); i++) dk_want[i] += ref.dk[i], dv_want[i] += ref.dv[i];
        }
        const Vec dk_got = to_floats(dk.download()), dv_got = to_floats(dv.download());
        check_close("dk, both readers", added(slice(dk_got, 0, s.kv()), slice(dk0, 0, s.kv())), dk_want, bound);
        check_close("dv, both readers", added(slice(dv_got, 0, s.kv()), slice(dv0, 0, s.kv())), dv_want, bound);
        for (int l = 1; l < L; l++) {
            CHECK(slice(dk_got, l, s.kv()) == slice(dk0, l, s.kv()));
            CHECK(slice(dv_got, l, s.kv()) == slice(dv0, l, s.kv()));
        }
    }
}

#ifdef RKV_EMU
// A missing barrier shows as results that change with the order the emulator runs threads in.
TEMPLATE_TEST_CASE("attention gives the same bits in every thread order", "[attention]", float, bf16) {
    using T = TestType;
    const Shape s{2, 40, 4, 2, 16};
    const auto q = to_storage<T>(random_qk(s.q())), k = to_storage<T>(random_qk(s.kv())),
               v = to_storage<T>(random_floats(s.kv())), dout = to_storage<T>(random_floats(s.q()));
    std::vector<Vec> first;
    for (const emu::Order order : {emu::Order::fwd, emu::Order::rev, emu::Order::rand}) {
        InOrder in_order(order);
        Device<T> qd(q), kd(k), vd(v), doutd(dout), out(s.q()), dq(to_storage<T>(Vec(s.q()))),
            dk(to_storage<T>(Vec(s.kv()))), dv(to_storage<T>(Vec(s.kv())));
        Device<float> lse(s.lse());
        rkv::cuda::attention_forward(out.get(), lse.get(), qd.get(), kd.get(), vd.get(), s.B, s.T, s.NH, s.NKV,
                                     s.HS, nullptr);
        rkv::cuda::attention_backward(dq.get(), dk.get(), dv.get(), doutd.get(), qd.get(), kd.get(), vd.get(),
                                      out.get(), lse.get(), s.B, s.T, s.NH, s.NKV, s.HS, nullptr);
        const std::vector<Vec> got{to_floats(out.download()), lse.download(), to_floats(dq.download()),
                                   to_floats(dk.download()), to_floats(dv.download())};
        if (first.empty()) first = got;
        else CHECK(got == first);
    }
}
#endif
