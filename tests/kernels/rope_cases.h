// The RoPE settings the RoPE kernel tests run: plain at two thetas, linear, and llama3 as in
// Llama 3.1 and with a short original context, where the pairs of small heads fall in every band
// (kept, interpolated, divided by factor).
#pragma once
#include <vector>

#include "ref/rope.h"

namespace kcheck {

inline std::vector<rkv::RopeParams> rope_cases() {
    using rkv::RopeType;
    return {{1e4},
            {1e6},
            {1e4, RopeType::linear, 4.0},
            {5e5, RopeType::llama3, 8.0, 1.0, 4.0, 8192},
            {1e4, RopeType::llama3, 4.0, 1.0, 4.0, 64}};
}

inline const char* rope_type_name(const rkv::RopeParams& r) {
    return r.type == rkv::RopeType::none ? "default" : r.type == rkv::RopeType::linear ? "linear" : "llama3";
}

}  // namespace kcheck
