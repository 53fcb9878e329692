// The sample kernels (valid CUDA) under the emulator against CPU loops, in
// every thread order.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "tests/emu/device_buffer.h"
#include "tests/emu/sample_kernels.h"
#include "tests/rel_error.h"

namespace {

using emu_test::DeviceBuffer;

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen);
    return v;
}

using kcheck::rel_error;

struct InEveryOrder {
    emu::Order order;
    explicit InEveryOrder(emu::Order o) : order(o) { emu::set_order(o); }
    ~InEveryOrder() { emu::set_order(emu::Order::fwd); }
};

TEST_CASE("sample kernels match CPU loops", "[sample]") {
    const auto order = GENERATE(emu::Order::fwd, emu::Order::rev, emu::Order::rand);
    InEveryOrder in_order(order);

    SECTION("softmax, with dynamic shared memory past 48 KiB") {
        for (const int cols : {1000, 16384}) {
            const int rows = 3;
            const std::vector<float> x = random_floats(static_cast<std::size_t>(rows) * cols, 1);
            DeviceBuffer<float> in(x), out(x.size());
            emu_sample::softmax_rows(in.get(), out.get(), rows, cols, nullptr);
            std::vector<float> want(x.size());
            for (int r = 0; r < rows; ++r) {
                const float* xr = &x[static_cast<std::size_t>(r) * cols];
                float m = -INFINITY, s = 0;
                for (int c = 0; c < cols; ++c) m = std::max(m, xr[c]);
                for (int c = 0; c < cols; ++c) s += std::exp(xr[c] - m);
                for (int c = 0; c < cols; ++c) want[r * cols + c] = std::exp(xr[c] - m) / s;
            }
            REQUIRE(rel_error(out.to_host(), want) < 1e-5);
        }
    }

    SECTION("histogram with shared and global atomics") {
        const int n = 5000;
        std::vector<int> v(n);
        std::vector<unsigned> want(64, 0);
        for (int i = 0; i < n; ++i) ++want[(v[i] = (i * 37) % 1001) % 64];
        DeviceBuffer<int> values(v);
        DeviceBuffer<unsigned> bins(64);
        bins.fill(0);
        emu_sample::histogram(values.get(), n, bins.get(), nullptr);
        REQUIRE(bins.to_host() == want);
    }

    SECTION("GELU in fp32 and bf16") {
        const int n = 1000;
        const std::vector<float> x = random_floats(n, 2);
        std::vector<float> want(n);
        for (int i = 0; i < n; ++i)
            want[i] = 0.5f * x[i] * (1.0f + std::tanh(0.7978845608f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        DeviceBuffer<float> in(x), out(n);
        emu_sample::gelu(in.get(), out.get(), n, nullptr);
        REQUIRE(rel_error(out.to_host(), want) < 1e-6);

        std::vector<__nv_bfloat16> xb(n);
        for (int i = 0; i < n; ++i) xb[i] = __float2bfloat16(x[i]);
        DeviceBuffer<__nv_bfloat16> inb(xb), outb(n);
        emu_sample::gelu(inb.get(), outb.get(), n, nullptr);
        std::vector<float> got(n);
        const std::vector<__nv_bfloat16> yb = outb.to_host();
        for (int i = 0; i < n; ++i) got[i] = __bfloat162float(yb[i]);
        REQUIRE(rel_error(got, want) < 1e-2);
    }

    SECTION("stream compaction with ballots and barrier counts") {
        const int n = 1000, chunks = (n + 255) / 256;
        const std::vector<float> x = random_floats(n, 3);
        DeviceBuffer<float> in(x), out(chunks * 256);
        DeviceBuffer<int> counts(chunks);
        emu_sample::compact_positive(in.get(), n, out.get(), counts.get(), nullptr);
        const std::vector<float> got = out.to_host();
        const std::vector<int> c = counts.to_host();
        for (int b = 0; b < chunks; ++b) {
            std::vector<float> want;
            for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i)
                if (x[i] > 0.0f) want.push_back(x[i]);
            REQUIRE(c[b] == static_cast<int>(want.size()));
            REQUIRE(std::vector<float>(got.begin() + b * 256, got.begin() + b * 256 + c[b]) == want);
        }
    }
}

}  // namespace
