// The data tests' refusal check: the message of the DataError (data/shard.h) that f throws.
#pragma once

#include <string>

#include <catch2/catch.hpp>

#include "data/shard.h"

namespace rkv::test {

// Any other outcome, no exception or another kind, fails the test.
template <class F>
std::string data_error(F&& f) {
    try {
        f();
    } catch (const rkv::DataError& e) {
        return e.what();
    }
    FAIL("no DataError thrown");
    return {};
}

}  // namespace rkv::test
