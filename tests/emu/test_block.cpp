// Blocks: built-in variables, barriers, shared memory, atomics, thread order.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cuda/compat.cuh"
#include "tests/emu/device_buffer.h"

namespace {

using emu_test::DeviceBuffer;
using rkv::launch_kernel;

__global__ void write_indices(int* out) {
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned n = blockDim.x * blockDim.y * blockDim.z;
    out[b * n + t] = static_cast<int>(threadIdx.x | threadIdx.y << 4 | threadIdx.z << 8 | blockIdx.x << 12 |
                                      blockIdx.y << 16 | blockIdx.z << 20);
}

TEST_CASE("built-in variables in 3D grids and blocks", "[block]") {
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    DeviceBuffer<int> out(12 * 24);
    launch_kernel(write_indices, grid, block, 0, nullptr, out.get());
    const std::vector<int> h = out.to_host();
    for (unsigned bz = 0; bz < 2; ++bz)
        for (unsigned by = 0; by < 2; ++by)
            for (unsigned bx = 0; bx < 3; ++bx)
                for (unsigned z = 0; z < 2; ++z)
                    for (unsigned y = 0; y < 3; ++y)
                        for (unsigned x = 0; x < 4; ++x) {
                            const unsigned b = bx + 3 * (by + 2 * bz), t = x + 4 * (y + 3 * z);
                            REQUIRE(h[b * 24 + t] ==
                                    static_cast<int>(x | y << 4 | z << 8 | bx << 12 | by << 16 | bz << 20));
                        }
}

// Sums `in` block by block; threads past `live` return before the barriers.
__global__ void block_sum(const float* in, float* out, unsigned live) {
    __shared__ float partial[256];
    const unsigned t = threadIdx.x;
    if (t >= live) return;
    partial[t] = in[blockIdx.x * live + t];
    __syncthreads();
    for (unsigned stride = 128; stride > 0; stride /= 2) {
        if (t < stride && t + stride < live) partial[t] += partial[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

// block_sum over blocks x live small integers: each block's sum is exact, whatever the order.
void check_block_sums(unsigned blocks, unsigned live) {
    std::vector<float> h(blocks * live);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<float>(i % 17);
    DeviceBuffer<float> in(h), out(blocks);
    launch_kernel(block_sum, blocks, 256, 0, nullptr, in.get(), out.get(), live);
    const std::vector<float> sums = out.to_host();
    for (unsigned b = 0; b < blocks; ++b) {
        float want = 0;
        for (unsigned i = 0; i < live; ++i) want += h[b * live + i];
        REQUIRE(sums[b] == want);
    }
}

TEST_CASE("shared-memory reduction, one copy of __shared__ per block", "[block]") {
    for (const unsigned live : {256u, 200u, 33u, 1u}) check_block_sums(7, live);
}

__global__ void divergent_barrier(int* out) {
    if (threadIdx.x < 16)
        __syncthreads();
    else
        __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void barrier_against_warp(int* out) {
    if (threadIdx.x % 32 < 16)
        __syncwarp();
    else
        __syncthreads();
    out[threadIdx.x] = 1;
}

TEST_CASE("a barrier reached from two places is reported", "[block][bugs]") {
    DeviceBuffer<int> out(64);
    REQUIRE_THROWS_WITH(launch_kernel(divergent_barrier, 1, 64, 0, nullptr, out.get()),
                        Catch::Contains("divergent __syncthreads"));
    try {
        launch_kernel(divergent_barrier, 1, 64, 0, nullptr, out.get());
    } catch (const emu::kernel_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("threads 0-15 wait at __syncthreads() at test_block.cpp"));
        CHECK_THAT(what, Catch::Contains("threads 16-63 wait at __syncthreads() at test_block.cpp"));
    }
}

TEST_CASE("a deadlock is reported with the waiting threads, not hung", "[block][bugs]") {
    DeviceBuffer<int> out(32);
    try {
        launch_kernel(barrier_against_warp, 1, 32, 0, nullptr, out.get());
        FAIL("no deadlock reported");
    } catch (const emu::kernel_error& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("deadlock"));
        CHECK_THAT(what, Catch::Contains("threads 0-15 wait at __syncwarp(0xffffffff)"));
        CHECK_THAT(what, Catch::Contains("threads 16-31 wait at __syncthreads()"));
    }
    // The emulator is usable again after a fault.
    launch_kernel(write_indices, 1, 32, 0, nullptr, out.get());
    REQUIRE(out.to_host()[5] == 5);
}

__global__ void barrier_counts(int* out) {
    const int t = static_cast<int>(threadIdx.x);
    out[0 * 96 + t] = __syncthreads_count(t % 3 == 0);
    out[1 * 96 + t] = __syncthreads_and(t < 96);
    out[2 * 96 + t] = __syncthreads_and(t < 95);
    out[3 * 96 + t] = __syncthreads_or(t == 70);
    out[4 * 96 + t] = __syncthreads_or(0);
}

TEST_CASE("__syncthreads_count/and/or", "[block]") {
    DeviceBuffer<int> out(5 * 96);
    launch_kernel(barrier_counts, 1, 96, 0, nullptr, out.get());
    const std::vector<int> h = out.to_host();
    for (int t = 0; t < 96; ++t) {
        REQUIRE(h[t] == 32);
        REQUIRE(h[96 + t] == 1);
        REQUIRE(h[2 * 96 + t] == 0);
        REQUIRE(h[3 * 96 + t] == 1);
        REQUIRE(h[4 * 96 + t] == 0);
    }
}

// Forgets the barrier between writing shared memory and reading a neighbour's
// slot: what each thread reads depends on the order threads run in.
__global__ void missing_barrier(float* out) {
    float* s = rkv::dynamic_smem<float>();
    const unsigned t = threadIdx.x;
    s[t] = static_cast<float>(t);
    out[t] = s[(t + 1) % blockDim.x];
}

TEST_CASE("a racy kernel gives different results under different orders", "[block][bugs]") {
    auto run = [](emu::Order o) {
        emu::set_order(o);
        DeviceBuffer<float> out(64);
        launch_kernel(missing_barrier, 1, 64, 64 * sizeof(float), nullptr, out.get());
        emu::set_order(emu::Order::fwd);
        return out.to_host();
    };
    const std::vector<float> fwd = run(emu::Order::fwd), rev = run(emu::Order::rev), rnd = run(emu::Order::rand);
    // Forward: each thread reads a slot not yet written (NaN from the poisoned
    // shared memory) but the last; reverse: the slot is written, but the first.
    for (unsigned t = 0; t < 63; ++t) {
        REQUIRE(std::isnan(fwd[t]));
        REQUIRE(rev[t] == static_cast<float>(t + 1));
    }
    REQUIRE(fwd[63] == 0.0f);
    REQUIRE(std::isnan(rev[63]));
    int nan_in_rand = 0;
    for (float v : rnd) nan_in_rand += std::isnan(v);
    REQUIRE(nan_in_rand > 0);
    REQUIRE(nan_in_rand < 63);
}

__global__ void read_smem(float* out) { out[threadIdx.x] = rkv::dynamic_smem<float>()[threadIdx.x]; }

TEST_CASE("fresh device memory and dynamic shared memory are NaN", "[block][bugs]") {
    DeviceBuffer<float> out(32);
    for (float v : out.to_host()) REQUIRE(std::isnan(v));
    launch_kernel(read_smem, 1, 32, 32 * sizeof(float), nullptr, out.get());
    for (float v : out.to_host()) REQUIRE(std::isnan(v));
}

__global__ void store(float* p, float v) { p[threadIdx.x] = v; }

TEST_CASE("a pointer argument outside device memory is reported", "[block][bugs]") {
    std::vector<float> host(32);
    REQUIRE_THROWS_WITH(launch_kernel(store, 1, 32, 0, nullptr, host.data(), 1.0f),
                        Catch::Contains("argument 0 points outside"));
    float* freed = nullptr;
    rkv::cuda_check(cudaMalloc(&freed, 32 * sizeof(float)));
    rkv::cuda_check(cudaFree(freed));
    REQUIRE_THROWS_AS(launch_kernel(store, 1, 32, 0, nullptr, freed, 1.0f), emu::kernel_error);
    float* pinned = nullptr;
    rkv::cuda_check(cudaMallocHost(&pinned, 32 * sizeof(float)));
    launch_kernel(store, 1, 32, 0, nullptr, pinned, 2.0f);  // reachable from the device
    REQUIRE(pinned[31] == 2.0f);
    rkv::cuda_check(cudaFreeHost(pinned));
}

__global__ void contend(int* i, unsigned* u, float* f, double* d, __nv_bfloat16* b, int* maxv, int* minv,
                        unsigned* wrap, int* cas_sum) {
    const int t = static_cast<int>(threadIdx.x + blockIdx.x * blockDim.x);
    atomicAdd(i, 1);
    atomicAdd(u, 2u);
    atomicAdd(f, 0.5f);
    atomicAdd(d, 0.25);
    if (t < 128) atomicAdd(b, __float2bfloat16(1.0f));
    atomicMax(maxv, (t * 7919) % 10007);
    atomicMin(minv, (t * 7919) % 10007 - 5000);
    atomicInc(wrap, 9);
    // An add built from compare-and-swap, as kernels do for missing types.
    int old = *cas_sum, seen;
    do {
        seen = old;
        old = atomicCAS(cas_sum, seen, seen + t);
    } while (old != seen);
}

TEST_CASE("atomics under contention", "[block]") {
    DeviceBuffer<int> i(1), maxv(1), minv(1), cas_sum(1);
    DeviceBuffer<unsigned> u(1), wrap(1);
    DeviceBuffer<float> f(1);
    DeviceBuffer<double> d(1);
    DeviceBuffer<__nv_bfloat16> b(1);
    i.fill(0), u.fill(0), f.fill(0), d.fill(0), b.fill(__float2bfloat16(0.0f)), cas_sum.fill(0);
    maxv.fill(-1), minv.fill(1 << 30), wrap.fill(0);
    const int blocks = 16, threads = 256, n = blocks * threads;
    launch_kernel(contend, blocks, threads, 0, nullptr, i.get(), u.get(), f.get(), d.get(), b.get(), maxv.get(),
                  minv.get(), wrap.get(), cas_sum.get());
    int want_max = -1, want_min = 1 << 30;
    for (int t = 0; t < n; ++t) {
        want_max = std::max(want_max, (t * 7919) % 10007);
        want_min = std::min(want_min, (t * 7919) % 10007 - 5000);
    }
    REQUIRE(i.to_host()[0] == n);
    REQUIRE(u.to_host()[0] == 2u * n);
    REQUIRE(f.to_host()[0] == 0.5f * n);
    REQUIRE(d.to_host()[0] == 0.25 * n);
    REQUIRE(__bfloat162float(b.to_host()[0]) == 128.0f);
    REQUIRE(maxv.to_host()[0] == want_max);
    REQUIRE(minv.to_host()[0] == want_min);
    REQUIRE(wrap.to_host()[0] == static_cast<unsigned>(n % 10));
    REQUIRE(cas_sum.to_host()[0] == n * (n - 1) / 2);
}

TEST_CASE("blocks spread over several OS threads", "[block]") {
    struct Threads {
        Threads() { emu::set_threads(4); }
        ~Threads() { emu::set_threads(1); }
    } threads;
    check_block_sums(64, 200);
    DeviceBuffer<int> ignored(8 * 64);
    REQUIRE_THROWS_WITH(launch_kernel(divergent_barrier, 8, 64, 0, nullptr, ignored.get()),
                        Catch::Contains("divergent __syncthreads"));
}

template <class V>
__global__ void axpy(V a, const V* x, V* y, int n) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = a * x[i] + y[i];
}

TEST_CASE("template kernels launch", "[block]") {
    const int n = 1000;
    DeviceBuffer<double> x(std::vector<double>(n, 2.0)), y(std::vector<double>(n, 1.0));
    launch_kernel(axpy<double>, (n + 255) / 256, 256, 0, nullptr, 3.0, x.get(), y.get(), n);
    for (double v : y.to_host()) REQUIRE(v == 7.0);
}

}  // namespace
