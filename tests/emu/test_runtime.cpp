// The runtime API: launch limits with the GPU's error codes, errors,
// memory, streams, events and device properties.
#include <catch2/catch.hpp>

#include <vector>

#include "cuda/compat.cuh"
#include "tests/emu/device_buffer.h"

namespace {

using emu_test::DeviceBuffer;
using rkv::launch_kernel;

__global__ void touch(float* p) { p[threadIdx.x % 32] = 1.0f; }
__global__ void touch_smem(float* p) { p[0] = rkv::dynamic_smem<float>()[0] = 2.0f; }

cudaError_t code_of(auto&& launch) {
    try {
        launch();
    } catch (const rkv::cuda_error& e) {
        return e.code;
    }
    return cudaSuccess;
}

TEST_CASE("launch limits give the GPU's error codes", "[runtime]") {
    DeviceBuffer<float> p(32);
    float* d = p.get();
    const auto launch = [d](dim3 grid, dim3 block) {
        return code_of([&] { launch_kernel(touch, grid, block, 0, nullptr, d); });
    };
    CHECK(launch(1, 1024) == cudaSuccess);
    CHECK(launch(1, 1025) == cudaErrorInvalidConfiguration);
    CHECK(launch(1, dim3(32, 32, 2)) == cudaErrorInvalidConfiguration);
    CHECK(launch(1, dim3(1, 1, 65)) == cudaErrorInvalidConfiguration);
    CHECK(launch(1, dim3(0)) == cudaErrorInvalidConfiguration);
    CHECK(launch(dim3(1, 65536), 1) == cudaErrorInvalidConfiguration);
    CHECK(launch(dim3(0), 1) == cudaErrorInvalidConfiguration);
    CHECK(launch(dim3(1, 65535, 1), 1) == cudaSuccess);
    // A refused launch leaves nothing behind for the next call.
    CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("dynamic shared memory over 48 KiB needs the attribute, up to 227 KiB", "[runtime]") {
    DeviceBuffer<float> p(1);
    float* d = p.get();
    const auto launch = [d](std::size_t smem) {
        return code_of([&] { launch_kernel(touch_smem, 1, 32, smem, nullptr, d); });
    };
    CHECK(launch(48 << 10) == cudaSuccess);
    CHECK(launch((48 << 10) + 1) == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 << 10) == cudaSuccess);
    CHECK(launch(100 << 10) == cudaSuccess);
    CHECK(launch((100 << 10) + 4) == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 << 10) ==
          cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 << 10) == cudaSuccess);
    CHECK(launch(227 << 10) == cudaSuccess);
    CHECK(p.to_host()[0] == 2.0f);
}

TEST_CASE("cudaGetLastError returns and clears, cudaPeekAtLastError keeps", "[runtime]") {
    CHECK(cudaSetDevice(3) == cudaErrorInvalidDevice);
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidDevice);
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidDevice);
    CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
}

TEST_CASE("copies are checked against the allocation they touch", "[runtime]") {
    DeviceBuffer<float> p(16);
    std::vector<float> h(17, 3.0f);
    CHECK(cudaMemcpy(p.get(), h.data(), 16 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(p.get(), h.data(), 17 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(h.data(), p.get() + 1, 16 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(h.data(), h.data() + 1, sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemset(p.get() + 8, 0, 8 * sizeof(float)) == cudaSuccess);
    CHECK(cudaMemset(p.get() + 8, 0, 9 * sizeof(float)) == cudaErrorInvalidValue);
    CHECK(cudaFree(h.data()) == cudaErrorInvalidValue);
    cudaGetLastError();
    const std::vector<float> back = p.to_host();
    CHECK(back[7] == 3.0f);
    CHECK(back[8] == 0.0f);
}

TEST_CASE("streams and events", "[runtime]") {
    cudaStream_t s;
    cudaEvent_t start, stop;
    REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
    REQUIRE(cudaEventCreate(&start) == cudaSuccess);
    REQUIRE(cudaEventCreate(&stop) == cudaSuccess);
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaErrorInvalidResourceHandle);
    // As on the GPU, that error stays recorded until read, and launch_kernel's
    // check after the launch would report it.
    CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
    DeviceBuffer<float> p(32);
    CHECK(cudaEventRecord(start, s) == cudaSuccess);
    launch_kernel(touch, 4, 32, 0, s, p.get());
    CHECK(cudaMemsetAsync(p.get(), 0, 4, s) == cudaSuccess);
    CHECK(cudaEventRecord(stop, s) == cudaSuccess);
    CHECK(cudaStreamWaitEvent(nullptr, stop, 0) == cudaSuccess);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
    CHECK(ms >= 0.0f);
    CHECK(cudaStreamDestroy(s) == cudaSuccess);
    CHECK(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle);
    CHECK(code_of([&] { launch_kernel(touch, 1, 32, 0, s, p.get()); }) == cudaErrorInvalidResourceHandle);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaGetLastError();
}

TEST_CASE("the device is an sm_90 GPU", "[runtime]") {
    int n = 0, dev = -1, smem = 0;
    REQUIRE(cudaGetDeviceCount(&n) == cudaSuccess);
    CHECK(n == 1);
    CHECK(cudaSetDevice(0) == cudaSuccess);
    CHECK(cudaGetDevice(&dev) == cudaSuccess);
    CHECK(dev == 0);
    cudaDeviceProp p;
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    CHECK(p.major == 9);
    CHECK(p.minor == 0);
    CHECK(p.warpSize == 32);
    CHECK(p.maxThreadsPerBlock == 1024);
    CHECK(p.multiProcessorCount == 132);
    CHECK(p.sharedMemPerBlockOptin == 227u << 10);
    CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == cudaSuccess);
    CHECK(smem == 227 << 10);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

__constant__ float coefficients[4];
__device__ int launches;

__global__ void polynomial(const float* x, float* y) {
    const float v = x[threadIdx.x];
    y[threadIdx.x] = coefficients[0] + v * (coefficients[1] + v * (coefficients[2] + v * coefficients[3]));
    if (threadIdx.x == 0) ++launches;
}

TEST_CASE("__constant__ and __device__ variables through the symbol copies", "[runtime]") {
    const float c[4] = {1, 2, 3, 4};
    const int zero = 0;
    REQUIRE(cudaMemcpyToSymbol(coefficients, c, sizeof c) == cudaSuccess);
    REQUIRE(cudaMemcpyToSymbol(launches, &zero, sizeof zero) == cudaSuccess);
    DeviceBuffer<float> x(std::vector<float>{0, 1, 2}), y(3);
    launch_kernel(polynomial, 1, 3, 0, nullptr, x.get(), y.get());
    launch_kernel(polynomial, 1, 3, 0, nullptr, x.get(), y.get());
    CHECK(y.to_host() == std::vector<float>{1, 10, 49});
    int n = 0;
    REQUIRE(cudaMemcpyFromSymbol(&n, launches, sizeof n) == cudaSuccess);
    CHECK(n == 2);
}

}  // namespace
