// Range checks of numeric command-line values, for every rkv program. A value is read as the
// option's type would read it (an integer must be an integer, a real number must be finite) and
// must lie in the allowed range; the message gives the value as it was written and the range,
// e.g. "--lr: 1e400 is not a finite number in [0, inf)" (CLI11 puts the option's name first).
//
//     app.add_option("--temperature", t)->check(rkv::in_range(0.0, 100.0));
//     app.add_option("--max-new", n)->check(rkv::in_range(1, 1 << 20));
#pragma once
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace rkv {

template <class V>
struct Range {
    V lo, hi;
    bool lo_open = false, hi_open = false;  // an open end excludes its bound: (0, inf)

    std::string text() const { return fmt::format("{}{}, {}{}", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']'); }
    bool contains(V x) const { return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi); }

    // "" when x, written as `given`, is allowed; else why not.
    std::string check(V x, const std::string& given) const {
        if constexpr (std::is_floating_point_v<V>)
            if (!std::isfinite(x)) return fmt::format("{} is not a finite number in {}", given, text());
        return contains(x) ? "" : fmt::format("{} is outside the allowed range {}", given, text());
    }

    // "" when the text reads as an allowed V (stored in *x when given); else why not.
    std::string parse(const std::string& s, V* x = nullptr) const {
        V v{};
        if constexpr (std::is_floating_point_v<V>) {
            char* end = nullptr;
            errno = 0;
            v = V(std::strtod(s.c_str(), &end));
            if (s.empty() || end != s.c_str() + s.size()) return fmt::format("{} is not a number in {}", s, text());
            if (errno == ERANGE && std::fabs(v) > 1) v = V(INFINITY);  // overflow: report it as not finite
        } else {
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            if (ec == std::errc::result_out_of_range && end == s.data() + s.size())
                return fmt::format("{} is outside the allowed range {}", s, text());
            if (ec != std::errc() || end != s.data() + s.size())
                return fmt::format("{} is not an integer in {}", s, text());
        }
        if (x) *x = v;
        return check(v, s);
    }
};

// A CLI11 check that the option's value(s) read as numbers in [lo, hi] (ends open as asked).
template <class V>
CLI::Validator in_range(Range<V> range) {
    return CLI::Validator([range](std::string& s) { return range.parse(s); }, range.text());
}
template <class V>
CLI::Validator in_range(V lo, V hi, bool lo_open = false, bool hi_open = false) {
    return in_range(Range<V>{lo, hi, lo_open, hi_open});
}

}  // namespace rkv
