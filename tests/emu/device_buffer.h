// A typed device allocation for the tests, copied to and from host vectors.
#pragma once

#include <cstddef>
#include <vector>

#include "cuda/compat.cuh"

namespace emu_test {

template <class E>
class DeviceBuffer {
public:
    explicit DeviceBuffer(std::size_t n) : n_(n) { rkv::cuda_check(cudaMalloc(&p_, n * sizeof(E))); }
    explicit DeviceBuffer(const std::vector<E>& h) : DeviceBuffer(h.size()) { from_host(h); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { cudaFree(p_); }

    E* get() const { return p_; }
    std::size_t size() const { return n_; }
    void from_host(const std::vector<E>& h) {
        rkv::cuda_check(cudaMemcpy(p_, h.data(), h.size() * sizeof(E), cudaMemcpyHostToDevice));
    }
    void fill(E v) { from_host(std::vector<E>(n_, v)); }
    std::vector<E> to_host() const {
        std::vector<E> h(n_);
        rkv::cuda_check(cudaMemcpy(h.data(), p_, n_ * sizeof(E), cudaMemcpyDeviceToHost));
        return h;
    }

private:
    E* p_ = nullptr;
    std::size_t n_;
};

}  // namespace emu_test
