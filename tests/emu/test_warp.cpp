// Warp operations: every shuffle variant at every width, votes, reductions,
// 64-bit and bf16 values, and the misuses the emulator reports.
#include <catch2/catch.hpp>

#include <vector>

#include "cuda/compat.cuh"
#include "tests/emu/device_buffer.h"

namespace {

using emu_test::DeviceBuffer;
using rkv::launch_kernel;

enum Variant { idx, up, down, bfly };

// Lane l shuffles the value 100 + l; out holds, per lane, the lane it read.
__global__ void shuffle(int* out, int variant, int arg, int width) {
    const int lane = static_cast<int>(threadIdx.x % 32), v = 100 + lane;
    int r = 0;
    switch (variant) {
        case idx: r = __shfl_sync(0xffffffffu, v, arg, width); break;
        case up: r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
        case down: r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
        case bfly: r = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
    }
    out[threadIdx.x] = r - 100;
}

// What CUDA's programming guide says each lane reads.
int expected(Variant variant, int lane, int arg, int width) {
    const int seg = lane / width * width, in = lane % width;
    switch (variant) {
        case idx: return seg + arg % width;
        case up: return in >= arg ? lane - arg : lane;
        case down: return in + arg < width ? lane + arg : lane;
        case bfly: return lane ^ arg;
    }
    return -1;
}

TEST_CASE("shuffles of every variant and width read the lane CUDA specifies", "[warp]") {
    DeviceBuffer<int> out(64);
    for (const Variant variant : {idx, up, down, bfly})
        for (int width = 1; width <= 32; width *= 2)
            for (int arg = 0; arg < (variant == idx ? 2 * width : width); ++arg) {
                launch_kernel(shuffle, 1, 64, 0, nullptr, out.get(), static_cast<int>(variant), arg, width);
                const std::vector<int> got = out.to_host();
                for (int t = 0; t < 64; ++t) {
                    INFO("variant " << variant << " width " << width << " arg " << arg << " thread " << t);
                    REQUIRE(got[t] == expected(variant, t % 32, arg, width));
                }
            }
}

// Warp-level tree sums of doubles and bf16 pairs.
__global__ void warp_sums(double* d, __nv_bfloat162* b) {
    const unsigned lane = threadIdx.x % 32;
    double x = lane + 0.5;
    __nv_bfloat162 y(__float2bfloat16(static_cast<float>(lane)), __float2bfloat16(1.0f));
    for (int offset = 16; offset > 0; offset /= 2) {
        x += __shfl_xor_sync(0xffffffffu, x, offset);
        y = __hadd2(y, __shfl_down_sync(0xffffffffu, y, static_cast<unsigned>(offset)));
    }
    d[threadIdx.x] = x;
    b[threadIdx.x] = y;
}

TEST_CASE("64-bit and bf16x2 values shuffle whole", "[warp]") {
    DeviceBuffer<double> d(32);
    DeviceBuffer<__nv_bfloat162> b(32);
    launch_kernel(warp_sums, 1, 32, 0, nullptr, d.get(), b.get());
    for (double v : d.to_host()) REQUIRE(v == 512.0);
    const __nv_bfloat162 lane0 = b.to_host()[0];
    REQUIRE(__bfloat162float(lane0.x) == 496.0f);
    REQUIRE(__bfloat162float(lane0.y) == 32.0f);
}

__global__ void votes(unsigned* out) {
    const unsigned lane = threadIdx.x % 32;
    unsigned* o = out + threadIdx.x * 8;
    o[0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
    o[1] = static_cast<unsigned>(__any_sync(0xffffffffu, lane == 31));
    o[2] = static_cast<unsigned>(__all_sync(0xffffffffu, lane < 31));
    o[3] = __reduce_add_sync(0xffffffffu, lane);
    o[4] = static_cast<unsigned>(__reduce_min_sync(0xffffffffu, static_cast<int>(lane) - 7));
    o[5] = __reduce_max_sync(0xffffffffu, lane * 3);
    o[6] = __match_any_sync(0xffffffffu, lane / 8) ^ __reduce_xor_sync(0xffffffffu, 1u << lane);
    // Two half-warps, each its own group with its own mask.
    const unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    o[7] = __ballot_sync(half, lane % 2);
}

TEST_CASE("votes, reductions and matches", "[warp]") {
    DeviceBuffer<unsigned> out(64 * 8);
    launch_kernel(votes, 1, 64, 0, nullptr, out.get());
    const std::vector<unsigned> h = out.to_host();
    unsigned every_third = 0;
    for (unsigned l = 0; l < 32; l += 3) every_third |= 1u << l;
    for (unsigned t = 0; t < 64; ++t) {
        const unsigned* o = &h[t * 8];
        const unsigned lane = t % 32;
        REQUIRE(o[0] == every_third);
        REQUIRE(o[1] == 1u);
        REQUIRE(o[2] == 0u);
        REQUIRE(o[3] == 496u);
        REQUIRE(static_cast<int>(o[4]) == -7);
        REQUIRE(o[5] == 93u);
        REQUIRE(o[6] == ~(0xffu << (lane / 8 * 8)));
        REQUIRE(o[7] == (lane < 16 ? 0x0000aaaau : 0xaaaa0000u));
    }
}

// A 32-lane inclusive scan with __shfl_up_sync, in blocks of 40 threads: the
// second warp has 8 lanes and must name only those.
__global__ void scan(int* out) {
    const unsigned lane = threadIdx.x % 32;
    const unsigned mask = __activemask();
    int v = 1;
    for (unsigned d = 1; d < 32; d *= 2) {
        const int other = __shfl_up_sync(mask, v, d);
        if (lane >= d) v += other;
    }
    out[threadIdx.x] = v;
}

TEST_CASE("partial warps: __activemask names the lanes that exist", "[warp]") {
    DeviceBuffer<int> out(40);
    launch_kernel(scan, 1, 40, 0, nullptr, out.get());
    const std::vector<int> h = out.to_host();
    for (int t = 0; t < 40; ++t) REQUIRE(h[t] == t % 32 + 1);
}

// Each half-warp is its own group. Lanes 8-15 read lanes 16-23, outside
// their mask: undefined on the GPU, poisoned (all ones: -1) here.
__global__ void half_warps(int* out) {
    const int lane = static_cast<int>(threadIdx.x % 32);
    const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    __syncwarp(mask);
    out[threadIdx.x] = __shfl_down_sync(mask, lane, 8);
}

TEST_CASE("half-warp groups, and reading a lane outside the mask", "[warp]") {
    DeviceBuffer<int> out(32);
    launch_kernel(half_warps, 1, 32, 0, nullptr, out.get());
    const std::vector<int> h = out.to_host();
    for (int lane = 0; lane < 32; ++lane) {
        INFO("lane " << lane);
        if (lane < 8 || (lane >= 16 && lane < 24))
            REQUIRE(h[lane] == lane + 8);
        else if (lane < 16)
            REQUIRE(h[lane] == -1);
        else
            REQUIRE(h[lane] == lane);  // past the end of the warp: keeps its own value
    }
}

__global__ void shuffle_after_exit(int* out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void mismatched_ops(int* out) {
    int v = static_cast<int>(threadIdx.x);
    if (threadIdx.x < 16)
        v = __shfl_down_sync(0xffffffffu, v, 1);
    else
        v = static_cast<int>(__ballot_sync(0xffffffffu, v));
    out[threadIdx.x] = v;
}

__global__ void full_mask_in_small_block(int* out) {
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void bad_width(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0, 12); }

TEST_CASE("warp misuse is reported", "[warp][bugs]") {
    DeviceBuffer<int> out(64);
    int* o = out.get();
    REQUIRE_THROWS_WITH(launch_kernel(shuffle_after_exit, 1, 32, 0, nullptr, o), Catch::Contains("exited"));
    REQUIRE_THROWS_WITH(launch_kernel(mismatched_ops, 1, 32, 0, nullptr, o),
                        Catch::Contains("divergent warp operation"));
    REQUIRE_THROWS_WITH(launch_kernel(full_mask_in_small_block, 1, 20, 0, nullptr, o),
                        Catch::Contains("lanes 20-31 of warp 0 do not exist"));
    REQUIRE_THROWS_WITH(launch_kernel(bad_width, 1, 32, 0, nullptr, o), Catch::Contains("power of 2"));
}

}  // namespace
