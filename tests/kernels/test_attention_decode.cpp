// layers/attention_decode.cu against ref/attention_decode.h (double): decoding one token over a
// long cache, chunks of new tokens at pos0 = 0 and later, MHA and GQA groups of 2 and 4, head
// dims 64, 128 and small or odd ones, B > 1; routes read from device memory; the same bits in
// every thread order; kv_cache_write bit for bit. Caches hold NaN past the rows written
// (pos0 + Tq .. Tmax - 1) and between slots, so a read of them shows as a NaN output. Storage
// float, and bf16 on a few shapes: ref gets the inputs as stored.
//
// Both paths: the emulated GPU has 132 SMs, so the kernel splits a row's keys across blocks
// when B NH Tq < 264 and pos0 + Tq > 256 (into ranges of at least 256 keys, as many as give
// 264 blocks), and otherwise gives each row one block. The shapes say which path they take.
#include "kernel_check.h"

#include <cstring>
#include <limits>
#include <ostream>
#include <stdexcept>

#include "layers/attention_decode.cuh"
#include "ref/attention_decode.h"

using namespace kcheck;

namespace {

using Vec = std::vector<float>;

struct Shape {
    int B, Tq, pos0, Tmax, NH, NKV, HS;
    // The arguments with these shapes, over one slot (or slots slot_stride apart through kv_slot).
    template <class S>
    rkv::AttentionDecodeArgs<S> args(S* out, const S* q, const S* k, const S* v, const int* kv_slot = nullptr,
                                     int layer = 0, size_t slot_stride = 0) const {
        return {.B = B,
                .Tq = Tq,
                .pos0 = pos0,
                .Tmax = Tmax,
                .NH = NH,
                .NKV = NKV,
                .HS = HS,
                .kv_slot = kv_slot,
                .layer = layer,
                .slot_stride = slot_stride,
                .q = q,
                .k_cache = k,
                .v_cache = v,
                .out = out};
    }
    size_t q() const { return size_t(B) * Tq * NH * HS; }        // q, out
    size_t slot() const { return size_t(B) * Tmax * NKV * HS; }  // one slot of k or v
};

std::ostream& operator<<(std::ostream& os, const Shape& s) {
    return os << "B " << s.B << " Tq " << s.Tq << " pos0 " << s.pos0 << " Tmax " << s.Tmax << " NH " << s.NH << " NKV "
              << s.NKV << " HS " << s.HS;
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr size_t kGap = 16;  // NaN elements between slots: slot_stride = slot() + kGap
constexpr float kQK = 2.0f;  // q and k uniform in [-2, 2]: scores of a few units

// `slots` cache slots, slot_stride apart, of values as stored in S (in [-lim, lim]); the rows
// past pos0 + Tq and the gaps between slots are NaN.
template <class S>
Vec random_cache(const Shape& s, int slots, float lim) {
    const size_t stride = s.slot() + kGap, row = size_t(s.NKV) * s.HS;
    Vec c = as_stored<S>(random_floats(slots * stride, -lim, lim));
    for (int l = 0; l < slots; l++) {
        float* slot = c.data() + l * stride;
        for (int b = 0; b < s.B; b++)
            std::fill(slot + (size_t(b) * s.Tmax + s.pos0 + s.Tq) * row, slot + size_t(b + 1) * s.Tmax * row, kNaN);
        std::fill_n(slot + s.slot(), kGap, kNaN);
    }
    return c;
}

// Slot l of the caches, as ref reads it.
std::vector<double> slot_of(const Vec& cache, const Shape& s, int l) {
    const size_t stride = s.slot() + kGap;
    return {cache.begin() + l * stride, cache.begin() + l * stride + s.slot()};
}

// ref's out of the queries over slot `slot`.
std::vector<double> reference(const Shape& s, const Vec& q, const Vec& k, const Vec& v, int slot) {
    std::vector<double> out(s.q());
    const std::vector<double> qd = to_double(q), kd = slot_of(k, s, slot), vd = slot_of(v, s, slot);
    rkv::ref::attention_decode_forward(s.args(out.data(), qd.data(), kd.data(), vd.data()));
    return out;
}

// Layer by layer through the route (kv_slot (L), `slots` slots): each layer's out, poisoned
// before its run, against ref over the slot the route names. The slots hold different values,
// so a layer that reads another slot fails.
template <class S>
void check_route(const Shape& s, const std::vector<int>& route, int slots) {
    INFO(s);
    const Vec k = random_cache<S>(s, slots, kQK), v = random_cache<S>(s, slots, 1.0f);
    Device<S> kd(to_storage<S>(k)), vd(to_storage<S>(v)), out(s.q());
    Device<int> kv_slot(route);
    for (int layer = 0; layer < int(route.size()); layer++) {
        INFO("layer " << layer << " reads slot " << route[layer]);
        const Vec q = as_stored<S>(random_floats(s.q(), -kQK, kQK));
        Device<S> qd(to_storage<S>(q));
        out.poison();
        rkv::cuda::attention_decode_forward(
            s.args(out.get(), qd.get(), kd.get(), vd.get(), kv_slot.get(), layer, s.slot() + kGap), nullptr);
        check_close("out", to_floats(out.download()), reference(s, q, k, v, route[layer]), bound_for<S>());
    }
}

// One layer reading the only slot.
template <class S>
void check_one(const Shape& s) {
    check_route<S>(s, {0}, 1);
}

}  // namespace

TEST_CASE("cached attention decodes one token over a long cache", "[attention][attention_decode]") {
    const Shape shape = GENERATE(
        // MHA, the cache longer than what is written: split in 3
        Shape{1, 1, 700, 1024, 4, 4, 64},
        // GQA 4, B 2, HS 128, the cache exactly full: split in 3
        Shape{2, 1, 700, 701, 8, 2, 128},
        // GQA 2, a small head dim: split in 2
        Shape{2, 1, 333, 400, 4, 2, 16},
        // the first token: one key, one block
        Shape{1, 1, 0, 8, 2, 1, 64},
        // a batch that fills the GPU (272 rows): one block a row over 301 keys
        Shape{34, 1, 300, 320, 8, 2, 64});
    check_one<float>(shape);
}

TEST_CASE("cached attention splits the keys of few rows over a long cache across blocks",
          "[attention][attention_decode]") {
    const Shape shape = GENERATE(
        // GQA 2, 2001 keys: 8 splits of 256, the last one short
        Shape{1, 1, 2000, 2100, 2, 1, 64},
        // MHA, HS 128, 2048 keys: 8 whole splits, the cache exactly full
        Shape{1, 1, 2047, 2048, 2, 2, 128},
        // an odd head dim (no packed loads): 9 splits, the last of 253 keys
        Shape{1, 1, 2300, 2400, 2, 1, 100},
        // a small head dim, GQA 4: 12 splits
        Shape{1, 1, 3000, 3001, 8, 2, 32},
        // 64 rows: 5 splits of 608 keys, the last of 570
        Shape{2, 2, 3000, 3100, 16, 4, 64},
        // a chunk: 2 splits of 256, and rows 0 .. 55 (keys <= 256) leave the second empty
        Shape{1, 100, 200, 320, 2, 1, 64},
        // a chunk of 40 over 640 keys: 3 splits
        Shape{1, 40, 600, 700, 2, 2, 128});
    check_one<float>(shape);
}

TEST_CASE("cached attention runs chunks of new tokens, at pos0 = 0 and later", "[attention][attention_decode]") {
    const Shape shape = GENERATE(
        // a prompt from the start
        Shape{2, 7, 0, 16, 4, 2, 64}, Shape{1, 5, 0, 5, 2, 2, 128},
        // a chunk after earlier ones: GQA 4, MHA
        Shape{2, 9, 40, 64, 8, 2, 32}, Shape{1, 33, 100, 160, 3, 3, 16},
        // odd head dims (no packed loads): GQA 2, MHA
        Shape{1, 3, 50, 60, 2, 1, 40}, Shape{2, 2, 17, 30, 2, 2, 6}, Shape{1, 4, 90, 100, 2, 1, 100});
    check_one<float>(shape);
}

TEST_CASE("bf16 cached attention: decode and a chunk, GQA", "[attention][attention_decode]") {
    const Shape shape = GENERATE(
        // decodes: split in 3, in 2
        Shape{2, 1, 700, 720, 8, 2, 128}, Shape{1, 1, 500, 501, 4, 4, 64},
        // decodes over long caches: 8 splits, the last short; 9 splits
        Shape{1, 1, 2000, 2048, 2, 1, 64}, Shape{1, 1, 2200, 2300, 2, 2, 128},
        // a chunk of 2 splits whose rows 0 .. 35 leave the second empty
        Shape{1, 50, 220, 280, 2, 2, 64},
        // chunks of one block a row: few keys; 288 rows
        Shape{2, 6, 30, 48, 4, 1, 64}, Shape{1, 3, 20, 30, 2, 2, 16}, Shape{2, 3, 400, 420, 48, 8, 128});
    check_one<bf16>(shape);
}

TEMPLATE_TEST_CASE("cached attention reads the slot the route names, from device memory",
                   "[attention][attention_decode]", float, bf16) {
    // 3 layers over 2 kept slots (layer 1 reads layer 0's), then over 3 in a shuffled order; one
    // block a row, and a decode split in 3.
    const Shape s = GENERATE(Shape{2, 3, 60, 80, 4, 2, 64}, Shape{1, 1, 600, 640, 4, 2, 64});
    SECTION("route {0, 0, 1}") { check_route<TestType>(s, {0, 0, 1}, 2); }
    SECTION("route {2, 0, 1}") { check_route<TestType>(s, {2, 0, 1}, 3); }
}

TEST_CASE("cached attention refuses shapes it does not take", "[attention][attention_decode]") {
    Device<float> x(4096);
    const auto run = [&](int Tq, int pos0, int Tmax, int NH, int NKV, int HS) {
        const Shape s{1, Tq, pos0, Tmax, NH, NKV, HS};
        rkv::cuda::attention_decode_forward(s.args(x.get(), x.get(), x.get(), x.get()), nullptr);
    };
    CHECK_THROWS_AS(run(1, 4, 4, 2, 2, 16), std::invalid_argument);   // pos0 + Tq past Tmax
    CHECK_THROWS_AS(run(1, -1, 4, 2, 2, 16), std::invalid_argument);  // negative pos0
    CHECK_THROWS_AS(run(1, 0, 4, 3, 2, 16), std::invalid_argument);   // NH not a multiple of NKV
    CHECK_THROWS_AS(run(1, 0, 4, 2, 2, 129), std::invalid_argument);  // head dim too large
    CHECK_THROWS_AS(run(1, 0, 4, 2, 2, 0), std::invalid_argument);    // or empty
    const rkv::KvCacheWriteArgs<float> past_end{
        .B = 1, .Tq = 2, .pos0 = 3, .Tmax = 4, .width = 8, .cache = x.get(), .src = x.get()};  // pos0 + Tq past Tmax
    CHECK_THROWS_AS(rkv::cuda::kv_cache_write(past_end, nullptr), std::invalid_argument);
}

TEMPLATE_TEST_CASE("kv_cache_write writes rows pos0 .. pos0 + Tq - 1 bit for bit, and nothing else",
                   "[attention][attention_decode]", float, bf16) {
    struct Case {
        int B, Tq, pos0, Tmax, width, src_offset;  // src_offset elements into its buffer: unaligned when odd
    };
    const Case c = GENERATE(Case{2, 1, 700, 720, 256, 0},  // decode, 16-byte packs
                            Case{3, 5, 0, 9, 12, 0},       // a chunk at 0: packs of float, not of bf16
                            Case{2, 4, 5, 9, 7, 0},        // the chunk filling the cache; odd width
                            Case{2, 3, 2, 8, 64, 1});      // src unaligned: one element at a time
    INFO("B " << c.B << " Tq " << c.Tq << " pos0 " << c.pos0 << " Tmax " << c.Tmax << " width " << c.width
              << " src offset " << c.src_offset);
    const size_t n_cache = size_t(c.B) * c.Tmax * c.width, n_src = size_t(c.B) * c.Tq * c.width;
    const std::vector<TestType> cache = to_storage<TestType>(random_floats(n_cache)),
                                src = to_storage<TestType>(random_floats(c.src_offset + n_src));
    std::vector<TestType> want = cache;
    rkv::KvCacheWriteArgs<TestType> a{.B = c.B, .Tq = c.Tq, .pos0 = c.pos0, .Tmax = c.Tmax, .width = c.width};
    a.cache = want.data(), a.src = src.data() + c.src_offset;
    rkv::ref::kv_cache_write(a);

    Device<TestType> cache_d(cache), src_d(src);
    a.cache = cache_d.get(), a.src = src_d.get() + c.src_offset;
    rkv::cuda::kv_cache_write(a, nullptr);
    const std::vector<TestType> got = cache_d.download();
    CHECK(std::memcmp(got.data(), want.data(), n_cache * sizeof(TestType)) == 0);
}

TEMPLATE_TEST_CASE("cached attention gives the same bits in every thread order", "[attention][attention_decode]", float,
                   bf16) {
    // One block a row; 3 splits; 2 splits with the second empty for rows 0 .. 15.
    const Shape s =
        GENERATE(Shape{1, 2, 150, 160, 4, 2, 64}, Shape{1, 3, 700, 720, 4, 2, 64}, Shape{1, 40, 240, 300, 2, 1, 64});
    INFO(s);
    const Vec q = as_stored<TestType>(random_floats(s.q(), -kQK, kQK)), k = random_cache<TestType>(s, 1, kQK),
              v = random_cache<TestType>(s, 1, 1.0f);
    std::vector<Vec> got;
    for (const auto order : orders()) {
        InOrder in_order(order);
        Device<TestType> qd(to_storage<TestType>(q)), kd(to_storage<TestType>(k)), vd(to_storage<TestType>(v)),
            out(s.q());
        rkv::cuda::attention_decode_forward(s.args(out.get(), qd.get(), kd.get(), vd.get()), nullptr);
        got.push_back(to_floats(out.download()));
    }
    for (const Vec& g : got) CHECK(std::memcmp(g.data(), got[0].data(), g.size() * sizeof(float)) == 0);
}
