// The error measure of the tests and benchmarks: ||out - ref|| / ||ref|| (||out - ref|| when
// ref is zero), summed in double; NaN when any output is NaN, so that no bound passes.
#pragma once

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace kcheck {

template <class Out, class Ref>
double rel_error(const std::vector<Out>& out, const std::vector<Ref>& ref) {
    if (out.size() != ref.size()) throw std::invalid_argument("rel_error: the vectors differ in length");
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < out.size(); i++) {
        if (std::isnan(out[i])) return std::numeric_limits<double>::quiet_NaN();
        const double d = double(out[i]) - double(ref[i]);
        diff += d * d;
        norm += double(ref[i]) * double(ref[i]);
    }
    return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace kcheck
