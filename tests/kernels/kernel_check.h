// What the kernel tests share: fresh random inputs, device buffers that start poisoned,
// the relative error against a double-precision ref/, and the emulator's thread orders.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "cuda/compat.cuh"
#include "tests/rel_error.h"

namespace kcheck {

// One generator per process, seeded from the system: every run draws new inputs.
inline std::mt19937& rng() {
    static std::mt19937 gen(std::random_device{}());
    return gen;
}

inline std::vector<float> random_floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng());
    return v;
}

inline std::vector<int> random_ints(size_t n, int lo, int hi) {  // in [lo, hi]
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<int> v(n);
    for (int& x : v) x = dist(rng());
    return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// bf16 storage (DESIGN.md section 6): a kernel instantiated on __nv_bfloat16 reads bf16
// inputs, so ref gets the same rounded values (round_bf16) and its result is compared
// with bf16_bound.
using bf16 = __nv_bfloat16;
inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
    std::vector<bf16> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = __float2bfloat16(v[i]);
    return out;
}
inline std::vector<float> to_floats(const std::vector<bf16>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = __bfloat162float(v[i]);
    return out;
}
inline std::vector<float> to_floats(const std::vector<float>& v) { return v; }
inline std::vector<float> round_bf16(const std::vector<float>& v) { return to_floats(to_bf16(v)); }
// The storage's values as the kernel sees them: rounded for bf16, untouched for float.
template <class S>
std::vector<float> as_stored(const std::vector<float>& v) {
    if constexpr (std::is_same_v<S, bf16>)
        return round_bf16(v);
    else
        return v;
}
template <class S>
std::vector<S> to_storage(const std::vector<float>& v) {
    if constexpr (std::is_same_v<S, bf16>)
        return to_bf16(v);
    else
        return v;
}

// Rows of a (rows, cols) matrix placed ld >= cols apart, the columns past cols set to pad;
// and the (rows, cols) matrix back out of such rows.
template <class E>
std::vector<E> with_stride(const std::vector<E>& m, size_t rows, size_t cols, size_t ld, E pad) {
    std::vector<E> out(rows * ld, pad);
    for (size_t r = 0; r < rows; r++) std::copy_n(m.begin() + r * cols, cols, out.begin() + r * ld);
    return out;
}
template <class E>
std::vector<E> without_stride(const std::vector<E>& m, size_t rows, size_t cols, size_t ld) {
    std::vector<E> out(rows * cols);
    for (size_t r = 0; r < rows; r++) std::copy_n(m.begin() + r * ld, cols, out.begin() + r * cols);
    return out;
}
// Whether every element past cols in each row of m (rows ld apart) is NaN: never written.
inline bool padding_untouched(const std::vector<float>& m, size_t rows, size_t cols, size_t ld) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = cols; c < ld; c++)
            if (!std::isnan(m[r * ld + c])) return false;
    return true;
}

// The relative-error bounds of DESIGN.md section 6 for each storage type.
constexpr double fp32_bound = 1e-5, bf16_bound = 1e-2;
template <class S>
constexpr double bound_for() {
    return std::is_same_v<S, bf16> ? bf16_bound : fp32_bound;
}

// A device array of n E's, poisoned with NaN (all-ones bytes) until written.
template <class E>
class Device {
public:
    explicit Device(size_t n) : n_(n) {
        rkv::cuda_check(cudaMalloc(&p_, bytes()));
        poison();
    }
    explicit Device(const std::vector<E>& h) : Device(h.size()) { upload(h); }
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;
    ~Device() { cudaFree(p_); }

    E* get() const { return p_; }
    void poison() { rkv::cuda_check(cudaMemset(p_, 0xff, bytes())); }
    void upload(const std::vector<E>& h) {
        REQUIRE(h.size() == n_);
        rkv::cuda_check(cudaMemcpy(p_, h.data(), bytes(), cudaMemcpyHostToDevice));
    }
    std::vector<E> download() const {
        std::vector<E> h(n_);
        rkv::cuda_check(cudaDeviceSynchronize());
        rkv::cuda_check(cudaMemcpy(h.data(), p_, bytes(), cudaMemcpyDeviceToHost));
        return h;
    }

private:
    size_t bytes() const { return n_ * sizeof(E); }
    E* p_ = nullptr;
    size_t n_;
};

// Checks an error against its bound; KERNEL_TESTS_VERBOSE=1 prints each error.
inline void check_error(const char* what, double err, double bound) {
    if (std::getenv("KERNEL_TESTS_VERBOSE")) std::printf("  %-44s rel err %.3e\n", what, err);
    INFO(what << ": relative error " << err);
    CHECK(err < bound);
}

// The fp32 bound of DESIGN.md section 6 by default.
inline void check_close(const char* what, const std::vector<float>& out, const std::vector<double>& ref,
                        double bound = 1e-5) {
    check_error(what, rel_error(out, ref), bound);
}

// The thread orders a test runs under: under the emulator both forward and reversed
// (a race shows as a result that changes); on a GPU the one order it has.
#ifdef RKV_EMU
inline std::vector<emu::Order> orders() { return {emu::Order::fwd, emu::Order::rev}; }
struct InOrder {
    explicit InOrder(emu::Order o) { emu::set_order(o); }
    ~InOrder() { emu::set_order(emu::Order::fwd); }
};
#else
inline std::vector<int> orders() { return {0}; }
struct InOrder {
    explicit InOrder(int) {}
};
#endif

}  // namespace kcheck
