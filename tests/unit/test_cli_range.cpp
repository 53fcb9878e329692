// The range checks of numeric command-line values (src/cli_range.h): what is accepted, and
// that a refusal gives the value as written and the range, never a 309-digit bound.
#include <climits>
#include <cmath>
#include <cstdint>
#include <regex>

#include <catch2/catch.hpp>

#include "src/cli_range.h"

using rkv::Range;

TEST_CASE("Range reads numbers of its type and refuses the rest by value and range", "[cli]") {
    const Range<double> lr{0, INFINITY, false, true}, p{0, 1}, eps{0, INFINITY, true, true};
    double x = -1;
    CHECK(lr.parse("2e-3", &x).empty());
    CHECK(x == 2e-3);
    CHECK(lr.parse("0").empty());
    CHECK(lr.parse("1e400") == "1e400 is not a finite number in [0, inf)");
    CHECK(lr.parse("nan") == "nan is not a finite number in [0, inf)");
    CHECK(lr.parse("inf") == "inf is not a finite number in [0, inf)");
    CHECK(lr.parse("-1e-3") == "-1e-3 is outside the allowed range [0, inf)");
    CHECK(lr.parse("fast") == "fast is not a number in [0, inf)");
    CHECK(lr.parse("3x") == "3x is not a number in [0, inf)");
    CHECK(lr.parse("") == " is not a number in [0, inf)");
    CHECK(p.parse("1").empty());
    CHECK(p.parse("1.0000001") == "1.0000001 is outside the allowed range [0, 1]");
    CHECK(eps.parse("0") == "0 is outside the allowed range (0, inf)");
    CHECK(eps.parse("1e-300").empty());

    const Range<int> steps{1, INT_MAX};
    int n = 0;
    CHECK(steps.parse("600", &n).empty());
    CHECK(n == 600);
    CHECK(steps.parse("0") == "0 is outside the allowed range [1, 2147483647]");
    CHECK(steps.parse("-5") == "-5 is outside the allowed range [1, 2147483647]");
    CHECK(steps.parse("99999999999") == "99999999999 is outside the allowed range [1, 2147483647]");
    CHECK(steps.parse("1e10") == "1e10 is not an integer in [1, 2147483647]");
    CHECK(steps.parse("1.5") == "1.5 is not an integer in [1, 2147483647]");

    const Range<uint64_t> seed{0, UINT64_MAX};
    uint64_t s = 0;
    CHECK(seed.parse("18446744073709551615", &s).empty());
    CHECK(s == UINT64_MAX);
    CHECK(seed.parse("-1") == "-1 is not an integer in [0, 18446744073709551615]");
}

TEST_CASE("in_range checks a CLI11 option's value, naming the option", "[cli]") {
    CLI::App app;
    double lr = 0;
    app.add_option("--lr", lr)->check(rkv::in_range(0.0, double(INFINITY), false, true));
    CHECK_NOTHROW(app.parse("--lr 0.5", false));
    CHECK(lr == 0.5);
    try {
        app.parse("--lr 1e400", false);
        FAIL("1e400 accepted");
    } catch (const CLI::ValidationError& e) {
        CHECK(std::string(e.what()) == "--lr: 1e400 is not a finite number in [0, inf)");
        CHECK_FALSE(std::regex_search(std::string(e.what()), std::regex("[0-9]{25}")));
    }
}
