// A typed device allocation for the tests, copied to and from host vectors.
#pragma once

#include <cstddef>
#include <vector>

#include "cuda/compat.cuh"

namespace emu_test {

template <class T>
class DeviceBuffer {
public:
    explicit DeviceBuffer(std::size_t n) : n_(n) { rkv::cuda_check(cudaMalloc(&p_, n * sizeof(T))); }
    explicit DeviceBuffer(const std::vector<T>& h) : DeviceBuffer(h.size()) { from_host(h); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { cudaFree(p_); }

    T* get() const { return p_; }
    std::size_t size() const { return n_; }
    void from_host(const std::vector<T>& h) {
        rkv::cuda_check(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    void fill(T v) { from_host(std::vector<T>(n_, v)); }
    std::vector<T> to_host() const {
        std::vector<T> h(n_);
        rkv::cuda_check(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
        return h;
    }

private:
    T* p_ = nullptr;
    std::size_t n_;
};

}  // namespace emu_test
