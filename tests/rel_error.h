// The error measures of the tests and benchmarks, in double; NaN when any output is NaN, so
// that no bound passes.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace kcheck {

// ||out - ref|| / max(||ref||, floor) (||out - ref|| when both are zero). A floor of sqrt(n) makes
// it relative where the entries are of magnitude 1 or more and absolute below (rel_error_unit_floor).
template <class Out, class Ref>
double rel_error(const std::vector<Out>& out, const std::vector<Ref>& ref, double floor = 0.0) {
    if (out.size() != ref.size()) throw std::invalid_argument("rel_error: the vectors differ in length");
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < out.size(); i++) {
        if (std::isnan(out[i])) return std::numeric_limits<double>::quiet_NaN();
        const double d = double(out[i]) - double(ref[i]);
        diff += d * d;
        norm += double(ref[i]) * double(ref[i]);
    }
    norm = std::max(norm, floor * floor);
    return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// For a log-sum-exp, which the attention backward takes as exp(s - lse), so that its absolute
// error is what counts; with one key it is that key's score, which may be near 0.
template <class Out, class Ref>
double rel_error_unit_floor(const std::vector<Out>& out, const std::vector<Ref>& ref) {
    return rel_error(out, ref, std::sqrt(double(ref.size())));
}

// max |out - ref| / max |ref|: logits against another implementation's, where one entry off
// must show however long the vector.
template <class Out, class Ref>
double max_rel_error(const std::vector<Out>& out, const std::vector<Ref>& ref) {
    if (out.size() != ref.size()) throw std::invalid_argument("max_rel_error: the vectors differ in length");
    double err = 0.0, scale = 0.0;
    for (size_t i = 0; i < out.size(); i++) {
        if (std::isnan(out[i])) return std::numeric_limits<double>::quiet_NaN();
        err = std::max(err, std::abs(double(out[i]) - double(ref[i])));
        scale = std::max(scale, std::abs(double(ref[i])));
    }
    return err / scale;
}

}  // namespace kcheck
