// splitmix64 (Steele, Lea and Flood, 2014): a Weyl sequence start + k * kWeyl, each value
// mixed into 64 uniform bits. Stochastic rounding draws element i's bits from position
// i + 1 of a sequence (layers/cast.cuh); a sequence starting at start + lo * kWeyl is the
// same sequence shifted by lo, which lets pieces of one buffer draw from one sequence.
// Host and device.
#pragma once

#include <cstdint>

#include "ref/host_device.h"

namespace rkv {

constexpr uint64_t kWeyl = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio, odd

// The output function: a bijective mix of all 64 bits (also data/rng.h's generator's).
RKV_HOST_DEVICE constexpr uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Position i + 1 of the sequence that starts at `start`.
RKV_HOST_DEVICE inline uint64_t splitmix(uint64_t start, uint64_t i) { return mix64(start + (i + 1) * kWeyl); }

}  // namespace rkv
