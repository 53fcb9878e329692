// The one random generator of data/: window order in the loader, text of the built-in
// corpus. splitmix64 is tiny, passes BigCrush, and, unlike std:: distributions, gives
// the same numbers on every platform, compiler and rank.
#pragma once

#include <cstdint>

#include "layers/splitmix.h"  // mix64, splitmix64's output function

namespace rkv {

// An independent stream for each (seed, stream) pair: loader epochs, corpus splits.
constexpr uint64_t stream_seed(uint64_t seed, uint64_t stream) {
    return mix64(seed ^ mix64(stream + 0x5851f42d4c957f2dull));
}

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}

    uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ull); }

    // Uniform in [0, n) for n > 0, without modulo bias: draws in the short top
    // range [2^64 - 2^64 % n, 2^64) are rejected.
    uint64_t below(uint64_t n) {
        uint64_t reject_below = -n % n;  // = 2^64 % n
        for (;;) {
            uint64_t r = next();
            if (r >= reject_below) return r % n;
        }
    }

    // Uniform in [lo, hi].
    int64_t range(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo) + 1)); }

    // True with probability num / den.
    bool chance(uint64_t num, uint64_t den) { return below(den) < num; }

private:
    uint64_t state_;
};

}  // namespace rkv
