// The checks every attention kernel's test shares (test_attention_plain.cpp, _mma, _wgmma, and
// test_attention_kernels.cpp for every row of layers/attention_kernels.cuh's table), run on the
// kernel passed in as a Kernel: one layer against
// ref/attention.h in double, routes read from device memory (one reader, then two readers of
// one source), and the same bits in every thread order. Inputs are fresh random values as
// stored in S, so that ref reads what the kernel reads; outputs and written gradients start
// poisoned with NaN; gradients added to start with random values of the size of what ref
// adds, and the relative error is that of what the backward added.
//
// Shapes as in layers/attention_plain.cuh:
//   q, out, dq, dout (B, T, NH, HS);  k, v, dk, dv (B, T, NKV, HS);  lse (B, NH, T)
// S is the storage type (float or bf16); T is the sequence length.
#pragma once

#include "kernel_check.h"

#include <algorithm>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>

#include "layers/attention_kernels.cuh"
#include "ref/attention.h"

namespace kcheck::attn {

using Vec = std::vector<float>;
using Ref = std::vector<double>;

// The row of layers/attention_kernels.cuh's table named `name` (whether it runs here or not).
inline const rkv::cuda::AttentionKernel& table_row(const std::string& name) {
    for (const rkv::cuda::AttentionKernel& k : rkv::cuda::attention_kernels())
        if (name == k.name) return k;
    throw std::invalid_argument("no attention kernel " + name);
}

// The kernel under test, a row of the table, and what it is held to.
template <class S>
struct Kernel {
    const rkv::cuda::AttentionKernel& row;
    float qk;              // q and k uniform in [-qk, qk]: scores of a few units, softmax far from uniform
    double lse_bound;      // lse's rel_error_unit_floor allowed (out, dq, dk, dv get bound_for<S>)
    double one_key_bound;  // T = 1: |what dq, dk got| / |what they held|, which is only rounding

    Vec random_qk(size_t n) const { return as_stored<S>(random_floats(n, -qk, qk)); }
    void forward(const rkv::AttentionArgs<S, float>& a) const { row.forward(a, nullptr); }
    void backward(const rkv::AttentionArgs<S, float>& a) const { row.backward(a, nullptr); }
};

struct Shape {
    int B, T, NH, NKV, HS;
    // The arguments with these shapes and no pointers.
    template <class S, class M>
    rkv::AttentionArgs<S, M> args() const {
        return {.B = B, .T = T, .NH = NH, .NKV = NKV, .HS = HS};
    }
    size_t q() const { return size_t(B) * T * NH * HS; }    // q, out, dq, dout
    size_t kv() const { return size_t(B) * T * NKV * HS; }  // k, v, dk, dv of one layer
    size_t lse() const { return size_t(B) * NH * T; }
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) {
    return os << "B " << s.B << " T " << s.T << " NH " << s.NH << " NKV " << s.NKV << " HS " << s.HS;
}

template <class S>
Vec random_stored(size_t n) {
    return as_stored<S>(random_floats(n));
}

template <class S>
Vec download(const Device<S>& d) {
    return to_floats(d.download());
}

inline Vec in_float(const Ref& x) { return Vec(x.begin(), x.end()); }

// Block `layer` of n elements out of every layer's (L, n).
inline Vec slice(const Vec& all, int layer, size_t n) {
    return Vec(all.begin() + layer * n, all.begin() + (layer + 1) * n);
}

// What a backward added to a gradient that held `before` (the subtraction in double).
inline Vec added(const Vec& after, const Vec& before) {
    Vec d(after.size());
    for (size_t i = 0; i < d.size(); i++) d[i] = float(double(after[i]) - before[i]);
    return d;
}

inline double norm(const Vec& x) {
    double sum = 0;
    for (const float v : x) sum += double(v) * v;
    return std::sqrt(sum);
}

// A gradient's prior contents, n values as stored in S, of the rms of what the backward adds
// to it: what the kernel adds is then not lost in the rounding of a larger sum.
template <class S>
Vec prefill(size_t n, const Ref& to_add) {
    double sum = 0;
    for (const double x : to_add) sum += x * x;
    const float scale = sum > 0 ? float(std::sqrt(sum / to_add.size())) : 1.0f;
    return as_stored<S>(random_floats(n, -scale, scale));
}

// One layer's inputs as stored in S, and what ref/ makes of them: out, lse, dq, and the dk, dv
// it adds. The backward reads out as S stores it (out_stored), as the kernel's does.
template <class S>
struct Layer {
    Vec q, dout, out_stored;
    Ref out, lse, dq, dk, dv;
    Layer(const Kernel<S>& kernel, const Shape& s, const Vec& k, const Vec& v)
        : q(kernel.random_qk(s.q())),
          dout(random_stored<S>(s.q())),
          out(s.q()),
          lse(s.lse()),
          dq(s.q()),
          dk(s.kv()),
          dv(s.kv()) {
        const Ref qd = to_double(q), kd = to_double(k), vd = to_double(v);
        rkv::AttentionArgs<double, double> a = s.args<double, double>();
        a.q = qd.data(), a.k_all = kd.data(), a.v_all = vd.data(), a.out = out.data(), a.lse = lse.data();
        rkv::ref::attention_forward(a);
        out_stored = as_stored<S>(in_float(out));
        const Ref dout_d = to_double(dout), out_d = to_double(out_stored);
        a.out = const_cast<double*>(out_d.data());  // the backward only reads it
        a.dout = dout_d.data(), a.dq = dq.data(), a.dk_all = dk.data(), a.dv_all = dv.data();
        rkv::ref::attention_backward(a);
    }
};

// Forward, then backward on the reference's out and lse (so that it is checked on its own),
// of one layer with no route.
template <class S>
void check_layer(const Kernel<S>& kernel, const Shape& s) {
    INFO(s);
    const double bound = bound_for<S>();
    const Vec k = kernel.random_qk(s.kv()), v = random_stored<S>(s.kv());
    const Layer<S> ref(kernel, s, k, v);
    Device<S> q(to_storage<S>(ref.q)), kd(to_storage<S>(k)), vd(to_storage<S>(v)), out(s.q());
    Device<float> lse(s.lse());
    auto a = s.args<S, float>();
    a.q = q.get(), a.k_all = kd.get(), a.v_all = vd.get(), a.out = out.get(), a.lse = lse.get();
    kernel.forward(a);
    check_close("out", download(out), ref.out, bound);
    check_error("lse", rel_error_unit_floor(lse.download(), ref.lse), kernel.lse_bound);

    Device<S> dout(to_storage<S>(ref.dout)), ref_out(to_storage<S>(ref.out_stored)), dq(s.q()), dk(s.kv()), dv(s.kv());
    Device<float> ref_lse(in_float(ref.lse));
    a.out = ref_out.get(), a.lse = ref_lse.get();
    a.dout = dout.get(), a.dq = dq.get(), a.dk_all = dk.get(), a.dv_all = dv.get();
    kernel.backward(a);
    check_close("dv", download(dv), ref.dv, bound);
    if (s.T == 1) {  // one key: P = 1 and dS = dP - D = 0, so dq and dk are only rounding
        CHECK(norm(download(dq)) < kernel.one_key_bound * norm(ref.dout));
        CHECK(norm(download(dk)) < kernel.one_key_bound * norm(ref.dout));
        return;
    }
    check_close("dq", download(dq), ref.dq, bound);
    check_close("dk", download(dk), ref.dk, bound);
}

// L = 3 layers' k, v in one (L, B, T, NKV, HS) buffer, layer_stride s.kv() apart, and the
// route kv_src (L) in device memory. Two sections: layer 2 reading another layer's block (its
// dk, dv added to the block), then its own (written), with only the route changed; and two
// layers reading one block, which gets the sum of their dk, dv (the first writes, as the
// model's highest reader does, and the second adds). Blocks no layer reads keep their bits.
template <class S>
void check_routed(const Kernel<S>& kernel, const Shape& s) {
    const double bound = bound_for<S>();
    const int L = 3;
    const Vec k_all = kernel.random_qk(L * s.kv()), v_all = random_stored<S>(L * s.kv());
    Device<S> k(to_storage<S>(k_all)), v(to_storage<S>(v_all)), out(s.q());
    Device<float> lse(s.lse());
    Device<int> route(std::vector<int>{0, 0, 1});

    // Layer `layer` through the route: forward (out and lse checked), then backward into dq
    // (checked) and into the caller's dk, dv (L, B, T, NKV, HS).
    const auto run = [&](int layer, const Layer<S>& ref, Device<S>& dk, Device<S>& dv, bool accumulate_kv) {
        INFO("layer " << layer);
        Device<S> q(to_storage<S>(ref.q)), dout(to_storage<S>(ref.dout)), dq(s.q());
        out.poison();
        lse.poison();
        auto a = s.args<S, float>();
        a.kv_src = route.get(), a.layer = layer, a.layer_stride = s.kv();
        a.q = q.get(), a.k_all = k.get(), a.v_all = v.get(), a.out = out.get(), a.lse = lse.get();
        kernel.forward(a);
        check_close("out", download(out), ref.out, bound);
        check_error("lse", rel_error_unit_floor(lse.download(), ref.lse), kernel.lse_bound);
        a.dout = dout.get(), a.dq = dq.get(), a.dk_all = dk.get(), a.dv_all = dv.get();
        a.accumulate_kv = accumulate_kv;
        kernel.backward(a);
        check_close("dq", download(dq), ref.dq, bound);
    };

    SECTION("layer 2 reads layer 1, then, with only the route changed, itself") {
        for (const int src : {1, 2}) {
            INFO("kv_src[2] = " << src);
            const bool accumulate = src == 1;
            route.upload({0, 0, src});
            const Layer<S> ref(kernel, s, slice(k_all, src, s.kv()), slice(v_all, src, s.kv()));
            Vec dk0 = prefill<S>(L * s.kv(), ref.dk), dv0 = prefill<S>(L * s.kv(), ref.dv);
            if (!accumulate) {  // the block written starts poisoned
                std::fill_n(dk0.begin() + src * s.kv(), s.kv(), std::numeric_limits<float>::quiet_NaN());
                std::fill_n(dv0.begin() + src * s.kv(), s.kv(), std::numeric_limits<float>::quiet_NaN());
            }
            Device<S> dk(to_storage<S>(dk0)), dv(to_storage<S>(dv0));
            run(2, ref, dk, dv, accumulate);
            const Vec dk_got = download(dk), dv_got = download(dv);
            for (int l = 0; l < L; l++) {
                INFO("block " << l);
                if (l == src) {
                    const Vec dk_src = slice(dk_got, l, s.kv()), dv_src = slice(dv_got, l, s.kv());
                    check_close("dk", accumulate ? added(dk_src, slice(dk0, l, s.kv())) : dk_src, ref.dk, bound);
                    check_close("dv", accumulate ? added(dv_src, slice(dv0, l, s.kv())) : dv_src, ref.dv, bound);
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
        const Layer<S> ref1(kernel, s, k0, v0), ref2(kernel, s, k0, v0);
        Ref dk_want(s.kv()), dv_want(s.kv());  // the sum of both layers' reference dk, dv
        for (size_t i = 0; i < s.kv(); i++) dk_want[i] = ref1.dk[i] + ref2.dk[i], dv_want[i] = ref1.dv[i] + ref2.dv[i];
        Vec dk0 = prefill<S>(L * s.kv(), dk_want), dv0 = prefill<S>(L * s.kv(), dv_want);
        std::fill_n(dk0.begin(), s.kv(), std::numeric_limits<float>::quiet_NaN());  // block 0 is written
        std::fill_n(dv0.begin(), s.kv(), std::numeric_limits<float>::quiet_NaN());
        Device<S> dk(to_storage<S>(dk0)), dv(to_storage<S>(dv0));
        run(2, ref2, dk, dv, false);
        run(1, ref1, dk, dv, true);
        const Vec dk_got = download(dk), dv_got = download(dv);
        check_close("dk, both readers", slice(dk_got, 0, s.kv()), dk_want, bound);
        check_close("dv, both readers", slice(dv_got, 0, s.kv()), dv_want, bound);
        for (int l = 1; l < L; l++) {
            CHECK(slice(dk_got, l, s.kv()) == slice(dk0, l, s.kv()));
            CHECK(slice(dv_got, l, s.kv()) == slice(dv0, l, s.kv()));
        }
    }
}

// The orders check_same_bits runs in: under the emulator forward, reversed and a random one
// (a missing barrier shows as results that change with the order); on a GPU its one order
// twice (neither kernel has atomics, so two runs agree bit for bit).
#ifdef RKV_EMU
inline std::vector<emu::Order> every_order() { return {emu::Order::fwd, emu::Order::rev, emu::Order::rand}; }
#else
inline std::vector<int> every_order() { return {0, 0}; }
#endif

// Forward and backward: out, lse, dq, dk, dv must have the same bits in every order.
template <class S>
void check_same_bits(const Kernel<S>& kernel, const Shape& s) {
    INFO(s);
    const Vec q = kernel.random_qk(s.q()), k = kernel.random_qk(s.kv()), v = random_stored<S>(s.kv()),
              dout = random_stored<S>(s.q());
    std::vector<Vec> first;
    for (const auto order : every_order()) {
        InOrder in_order(order);
        Device<S> qd(to_storage<S>(q)), kd(to_storage<S>(k)), vd(to_storage<S>(v)), doutd(to_storage<S>(dout)),
            out(s.q()), dq(s.q()), dk(s.kv()), dv(s.kv());
        Device<float> lse(s.lse());
        auto a = s.args<S, float>();
        a.q = qd.get(), a.k_all = kd.get(), a.v_all = vd.get(), a.out = out.get(), a.lse = lse.get();
        a.dout = doutd.get(), a.dq = dq.get(), a.dk_all = dk.get(), a.dv_all = dv.get();
        kernel.forward(a);
        kernel.backward(a);
        const std::vector<Vec> got{download(out), lse.download(), download(dq), download(dk), download(dv)};
        if (first.empty())
            first = got;
        else
            CHECK(got == first);
    }
}

}  // namespace kcheck::attn
