#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "src/philox.h"

using namespace rkv;

// Known answers of Philox4x32-10 from the authors' Random123 test vectors (kat_vectors): a
// check of the rounds and the key schedule that needs no cuRAND.
TEST_CASE("Philox4x32-10 gives Random123's known answers", "[philox]") {
    using W = std::array<uint32_t, 4>;
    CHECK(philox4x32_10({0, 0, 0, 0}, 0, 0) == W{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
    CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 0xffffffff, 0xffffffff) ==
          W{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
    CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822, 0x299f31d0) ==
          W{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("a Philox stream walks its counter: offsets and subsequences", "[philox]") {
    const uint64_t seed = 0x0123456789abcdefULL;
    const auto block = [&](uint64_t lo, uint64_t hi) {
        return philox4x32_10({uint32_t(lo), uint32_t(lo >> 32), uint32_t(hi), uint32_t(hi >> 32)}, uint32_t(seed),
                             uint32_t(seed >> 32));
    };
    // Offset 4b + w starts at word w of block b; the next block follows.
    PhiloxStream s(seed, 7, 4 * 1000 + 3);
    CHECK(s.next() == block(1000, 7)[3]);
    for (int w = 0; w < 4; w++) CHECK(s.next() == block(1001, 7)[w]);
    // The subsequence is the counter's upper 64 bits, the block its lower ones.
    PhiloxStream c(seed, uint64_t(1) << 40, 4 * (uint64_t(1) << 61));
    CHECK(c.next() == block(uint64_t(1) << 61, uint64_t(1) << 40)[0]);
    // Uniforms lie in (0, 1] and their mean is 1/2.
    PhiloxStream u(seed, 0, 0);
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        const float x = u.uniform();
        REQUIRE(x > 0.0f);
        REQUIRE(x <= 1.0f);
        sum += x;
    }
    CHECK(std::abs(sum / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    CHECK(philox_uniform(0) > 0.0f);
    CHECK(philox_uniform(0xffffffff) == 1.0f);
}

TEST_CASE("Philox normals have mean 0 and variance 1, and an odd count is a prefix", "[philox]") {
    const int n = 200000;
    std::vector<float> z(n);
    philox_normal(z.data(), n, 1337, uint64_t(3) << 40, 0.0f, 1.0f);
    double m = 0, v = 0;
    for (float x : z) m += x, v += double(x) * x;
    m /= n, v = v / n - m * m;
    CHECK(std::abs(m) < 5 / std::sqrt(double(n)));
    CHECK(std::abs(v - 1) < 5 * std::sqrt(2.0 / n));
    std::vector<float> odd(7), scaled(n);
    philox_normal(odd.data(), 7, 1337, uint64_t(3) << 40, 0.0f, 1.0f);
    for (int i = 0; i < 7; i++) CHECK(odd[i] == z[i]);
    philox_normal(scaled.data(), n, 1337, uint64_t(3) << 40, 0.5f, 0.02f);
    for (int i = 0; i < 100; i++) CHECK(scaled[i] == z[i] * 0.02f + 0.5f);
}
