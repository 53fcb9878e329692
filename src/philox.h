// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the
// counter-based generator routes and initial weights are drawn from (DESIGN.md section 6).
// The numbers are cuRAND's, bit for bit, without the CUDA toolkit: a stream here gives what
// curand_init(seed, subsequence, offset) then curand / curand_uniform give, and philox_normal
// fills what cuRAND's host generator (CURAND_RNG_PSEUDO_PHILOX4_32_10, default ordering) writes
// with curandSetGeneratorOffset + curandGenerateNormal. tests/unit/test_philox_curand.cpp checks
// both against cuRAND wherever the toolkit is installed.
//
// The generator maps a 128-bit counter and a 64-bit key (the seed) to four 32-bit words.
// cuRAND's layout of a stream: the counter's upper 64 bits are the subsequence, its lower 64
// bits the block index, and each block gives four words in order, so a stream at `offset`
// starts at word offset % 4 of block offset / 4.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace rkv {

// One block: the 10 rounds of Philox4x32 on counter (c0 lowest .. c3 highest) under key (k0, k1).
inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, uint32_t k0, uint32_t k1) {
    constexpr uint64_t M0 = 0xD2511F53, M1 = 0xCD9E8D57;  // round multipliers
    constexpr uint32_t W0 = 0x9E3779B9, W1 = 0xBB67AE85;  // key schedule: golden ratio, sqrt(3) - 1
    for (int round = 0; round < 10; round++) {
        if (round > 0) k0 += W0, k1 += W1;
        const uint64_t p0 = M0 * c[0], p1 = M1 * c[2];
        c = {uint32_t(p1 >> 32) ^ c[1] ^ k0, uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k1, uint32_t(p0)};
    }
    return c;
}

// 2^-32, and 2^-32 * 2 pi, rounded to float as cuRAND writes them (curand_globals.h's constants).
inline constexpr float kPhilox2Pow32Inv = 2.3283064e-10f;
inline constexpr float kPhilox2Pow32Inv2Pi = 2.3283064e-10f * 6.2831855f;

// A word to a float in (0, 1]: the centre of its 2^-32-wide interval, in float arithmetic
// (curand_uniform). Two roundings, no fused multiply-add: the build is ISO C++, where the
// compiler does not contract across them.
inline float philox_uniform(uint32_t x) {
    const float scaled = float(x) * kPhilox2Pow32Inv;
    return scaled + kPhilox2Pow32Inv / 2.0f;
}

// Box-Muller: two words to two standard normals, as cuRAND computes them on the host.
inline std::array<float, 2> philox_box_muller(uint32_t x, uint32_t y) {
    const float u = float(x) * kPhilox2Pow32Inv + kPhilox2Pow32Inv / 2;
    const float v = float(y) * kPhilox2Pow32Inv2Pi + kPhilox2Pow32Inv2Pi / 2;
    const float r = std::sqrt(-2.0f * std::log(u));
    return {std::sin(v) * r, std::cos(v) * r};
}

// One stream of words: curand_init(seed, subsequence, offset) and curand().
class PhiloxStream {
public:
    PhiloxStream(uint64_t seed, uint64_t subsequence, uint64_t offset)
        : key0_(uint32_t(seed)),
          key1_(uint32_t(seed >> 32)),
          block_(offset / 4),
          subsequence_(subsequence),
          word_(int(offset % 4)) {
        refill();
    }

    uint32_t next() {
        const uint32_t w = out_[word_++];
        if (word_ == 4) {
            if (++block_ == 0) subsequence_++;  // the 128-bit counter carries
            refill();
            word_ = 0;
        }
        return w;
    }
    float uniform() { return philox_uniform(next()); }  // curand_uniform: in (0, 1]

private:
    void refill() {
        out_ = philox4x32_10(
            {uint32_t(block_), uint32_t(block_ >> 32), uint32_t(subsequence_), uint32_t(subsequence_ >> 32)}, key0_,
            key1_);
    }

    uint32_t key0_, key1_;
    uint64_t block_, subsequence_;
    int word_;
    std::array<uint32_t, 4> out_;
};

// cuRAND's host generator lays its output over 2^16 subsequences: word g (from the generator's
// offset on) is word g % 4 of block (g / 4) / 2^16 of subsequence (g / 4) % 2^16.
inline constexpr uint64_t kPhiloxHostThreads = uint64_t(1) << 16;

inline std::array<uint32_t, 4> philox_host_block(uint64_t seed, uint64_t quad) {
    const uint64_t sub = quad % kPhiloxHostThreads, block = quad / kPhiloxHostThreads;
    return philox4x32_10({uint32_t(block), uint32_t(block >> 32), uint32_t(sub), uint32_t(sub >> 32)}, uint32_t(seed),
                         uint32_t(seed >> 32));
}

// out[0..n) = normals * std + mean, from word `offset` (even) on: curandSetGeneratorOffset(offset)
// then curandGenerateNormal(out, n, mean, std) on the host Philox generator. Words pair up as
// (offset + 2i, offset + 2i + 1). cuRAND wants an even n; an odd n here ends with the first
// normal of the last pair, as cuRAND's n + 1 would.
inline void philox_normal(float* out, uint64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
    std::array<uint32_t, 4> w{};
    uint64_t quad = ~uint64_t(0);
    for (uint64_t i = 0; i < n; i += 2) {
        const uint64_t g = offset + i;
        if (g / 4 != quad) quad = g / 4, w = philox_host_block(seed, quad);
        const auto z = philox_box_muller(w[g % 4], w[g % 4 + 1]);
        out[i] = z[0] * std + mean;
        if (i + 1 < n) out[i + 1] = z[1] * std + mean;
    }
}

}  // namespace rkv
