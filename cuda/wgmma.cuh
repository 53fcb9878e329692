// Warpgroup-level tensor-core products on Hopper: wgmma.mma_async m64nNk16, bf16 in, fp32
// accumulate, B (and optionally A) read by the tensor cores straight from shared memory through
// a 64-bit descriptor. Under nvcc for sm_90a each call is its PTX instruction; elsewhere (the
// emulator, cuda/emu) each is computed from the same shared memory, decoding the same
// descriptor, into the same registers, so a kernel written against these layouts computes the
// same thing in both; and as on the GPU the product is asynchronous (see `emulated` below: the
// emulator reports a kernel that touches a product's operands before its wait). (Device code for
// another architecture traps: the host side runs these kernels only in an sm_90a build on a GPU
// of compute capability 9.0: attention_wgmma_supported().)
//
// A warpgroup is 4 consecutive warps starting at a warp index divisible by 4; all 128 threads
// issue each call together. Warp w of the group (w = warp % 4) owns rows 16 w .. 16 w + 15 of
// the m64 tile. With lane = 4 g + t:
//   D (64 x N fp32)   d[4 i + 2 j + c] = D[16 w + g + 8 j][8 i + 2 t + c]      i < N / 8
//   A (64 x 16 bf16, registers, two per uint32_t, low half first), as mma.m16n8k16's A:
//                     a[0] = A[16 w + g][2t, 2t+1]    a[1] = A[16 w + g + 8][2t, 2t+1]
//                     a[2] = A[16 w + g][2t+8, 2t+9]  a[3] = A[16 w + g + 8][2t+8, 2t+9]
// So the accumulator columns 16 s .. 16 s + 15 of one product, rounded to bf16 in pairs, are
// the A operand of the next one's k-step s (to_a below): P goes from S to P V in registers.
//
// Shared-memory layout: 128-byte swizzle, the one layout used here. A tile is stored as
// "atoms" of 8 rows x 128 bytes (64 bf16), 1024-byte aligned; inside an atom row r's 16-byte
// chunk c sits at chunk c ^ r (swizzle128: address bits 4-6 ^= bits 7-9, of the shared-window
// address, which is why atoms must be 1024-byte aligned). A (rows, 64 k) slab is its atoms one
// after another (row r at 128 r); wider tiles are several such slabs side by side in k.
//   K-major operand (A, or B stored (n, k) as K for S = Q K^T): a k-step of 16 is 32 bytes
//     into the row: descriptor(slab + 32 (s % 4), sbo = 1024 (next 8 rows)).
//   MN-major operand (B stored (k, n) as V for O = P V, n contiguous): a k-step is 16 rows,
//     2048 bytes: descriptor(slab + 2048 s, sbo = 1024 (next 8 k), lbo = the distance between
//     slabs of 64 n).
// (These are the canonical layouts of the PTX ISA's "Shared Memory Matrix Layout" for the
// 128B swizzle mode, as CUTLASS's GMMA::Layout_{K,MN}_SW128_Atom name them.)
#pragma once

#include "cuda/compat.cuh"
#include "cuda/mma.cuh"

#include <algorithm>
#include <cstdint>
#include <cstring>
#if !defined(__CUDACC__)
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#endif

namespace rkv::cuda::wgmma {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define RKV_WGMMA_PTX 1
#endif

enum class Major { K, MN };

// The address of p (in the block's dynamic shared memory) in the shared window: what
// descriptors and the swizzle see. Under the emulator, its offset from the dynamic base.
__device__ __forceinline__ uint32_t smem_address(const void* p) {
#if defined(__CUDA_ARCH__)
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#else
    return static_cast<uint32_t>(static_cast<const unsigned char*>(p) - rkv::dynamic_smem<unsigned char>());
#endif
}

// Where chunk c (16 bytes) of row r of a 128-byte-swizzled slab lives, in bytes from the slab.
__device__ __forceinline__ uint32_t swizzle128(int r, int c) { return 128 * r + 16 * (c ^ (r % 8)); }

// A descriptor of the 128-byte-swizzle mode (layout type 1 in bits 62-63), byte offsets
// stored >> 4 in 14-bit fields: start 0-13, leading 16-29, stride 32-45; base offset 0.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t lbo, uint32_t sbo) {
    return uint64_t((address >> 4) & 0x3fff) | uint64_t((lbo >> 4) & 0x3fff) << 16 |
           uint64_t((sbo >> 4) & 0x3fff) << 32 | uint64_t(1) << 62;
}

// Orders this thread's earlier shared-memory writes (plain stores, cp.async) before later reads
// by the tensor cores (the async proxy); a barrier after it makes them the block's.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(RKV_WGMMA_PTX)
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// Before the first wgmma that reads registers (accumulators, A) written since the last one.
__device__ __forceinline__ void fence() {
#if defined(RKV_WGMMA_PTX)
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}

// Keeps the compiler from moving accesses to r across wgmma's asynchronous use of it.
template <int n>
__device__ __forceinline__ void fence_operand(float (&r)[n]) {
#if defined(RKV_WGMMA_PTX)
    RKV_UNROLL
    for (int i = 0; i < n; i++) asm volatile("" : "+f"(r[i])::"memory");
#endif
}

// The A operand of k-step s out of an fp32 accumulator (columns 16 s .. 16 s + 15).
template <int n>
__device__ __forceinline__ void to_a(uint32_t (&a)[4], const float (&d)[n], int s) {
    a[0] = mma::pack_bf16(d[8 * s + 0], d[8 * s + 1]);
    a[1] = mma::pack_bf16(d[8 * s + 2], d[8 * s + 3]);
    a[2] = mma::pack_bf16(d[8 * s + 4], d[8 * s + 5]);
    a[3] = mma::pack_bf16(d[8 * s + 6], d[8 * s + 7]);
}

#if !defined(__CUDACC__)
namespace emulated {

// The emulator runs a product asynchronously in the ways a kernel can observe: issued, it
// computes its result from what it reads then and leaves NaN in the accumulators, which get
// the result at the wait that completes its group (a read before the wait shows as NaN, a
// write is lost). What it read must not change before that wait: the wait checks its A
// registers and every shared-memory element it read, and stops the kernel with a report if
// one changed (on the GPU the tensor cores may read them until then).
struct Product {
    float* d;                     // the accumulators (n)
    std::vector<float> result;    // what they get at the wait
    const uint32_t* a = nullptr;  // the A registers (mma_rs), as read at issue
    uint32_t a_bits[4] = {};
    std::vector<std::pair<uint32_t, uint16_t>> smem;  // (address, bits) of each element read
};

struct InFlight final : emu::AsyncState {
    std::vector<Product> open;                // issued since the last commit
    std::deque<std::vector<Product>> groups;  // committed, oldest first
    bool idle() const override { return open.empty() && groups.empty(); }
    std::string pending() const override { return "wgmma products in flight: no wgmma wait completed them"; }
    // The newest result still owed to accumulators d, or null: a product accumulating into d
    // behind another one (k-steps, in order) starts from it.
    const std::vector<float>* owed(const float* d) const {
        for (auto it = open.rbegin(); it != open.rend(); ++it)
            if (it->d == d) return &it->result;
        for (auto g = groups.rbegin(); g != groups.rend(); ++g)
            for (auto it = g->rbegin(); it != g->rend(); ++it)
                if (it->d == d) return &it->result;
        return nullptr;
    }
};

inline InFlight& in_flight() {
    auto& state = emu::here.thread->async;
    if (!state) state = std::make_shared<InFlight>();
    return static_cast<InFlight&>(*state);
}

// The byte address (shared window) of element (row, k) of a K-major operand, (n, k) of an
// MN-major one, under a 128B-swizzle descriptor; k < 16.
inline uint32_t element_address(uint64_t desc, Major major, int row, int k) {
    const uint32_t start = uint32_t(desc & 0x3fff) << 4, lbo = uint32_t(desc >> 16 & 0x3fff) << 4,
                   sbo = uint32_t(desc >> 32 & 0x3fff) << 4;
    const uint32_t linear = major == Major::K ? start + 128 * (row % 8) + sbo * (row / 8) + 2 * (k % 8) + 16 * (k / 8)
                                              : start + 2 * (row % 8) + 16 * (row / 8 % 8) + lbo * (row / 64) +
                                                    128 * (k % 8) + sbo * (k / 8);
    return linear ^ ((linear >> 7 & 7) << 4);
}

inline uint16_t smem_bits(uint32_t address) {
    uint16_t bits;
    std::memcpy(&bits, rkv::dynamic_smem<unsigned char>() + address, sizeof bits);
    return bits;
}

// The element at `address`, recorded as read by product p.
inline float read_smem(Product& p, uint32_t address) {
    const uint16_t bits = smem_bits(address);
    p.smem.emplace_back(address, bits);
    return __uint_as_float(uint32_t(bits) << 16);
}

// Issues d = (accumulate ? d : 0) + A B for this thread's accumulator entries; a(p, row, k)
// gives A; a_regs are the A registers when A is in registers.
template <int N, class ReadA>
void issue(float (&d)[N / 2], ReadA a, const uint32_t* a_regs, uint64_t b_desc, Major b_major, bool accumulate) {
    InFlight& flight = in_flight();
    Product p;
    p.d = d;
    if (accumulate) {
        const std::vector<float>* before = flight.owed(d);
        p.result = before ? *before : std::vector<float>(d, d + N / 2);
    } else {
        p.result.assign(N / 2, 0.0f);
    }
    if (a_regs) {
        p.a = a_regs;
        std::memcpy(p.a_bits, a_regs, sizeof p.a_bits);
    }
    const int w = threadIdx.x / 32 % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    float arow[2][16];
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < 16; k++) arow[j][k] = a(p, 16 * w + g + 8 * j, k);
    for (int i = 0; i < N / 8; i++)
        for (int c = 0; c < 2; c++) {
            float bcol[16];
            for (int k = 0; k < 16; k++) bcol[k] = read_smem(p, element_address(b_desc, b_major, 8 * i + 2 * t + c, k));
            for (int j = 0; j < 2; j++) {
                float& acc = p.result[4 * i + 2 * j + c];
                for (int k = 0; k < 16; k++) acc = fmaf(arow[j][k], bcol[k], acc);
            }
        }
    std::fill(d, d + N / 2, std::numeric_limits<float>::quiet_NaN());
    flight.open.push_back(std::move(p));
}

// Completes the oldest committed group: checks what its products read, then delivers.
inline void complete_oldest(InFlight& flight) {
    for (Product& p : flight.groups.front()) {
        if (p.a && std::memcmp(p.a, p.a_bits, sizeof p.a_bits) != 0)
            emu::fault("the A registers of a wgmma changed before the wgmma wait that completes it");
        for (const auto& [address, bits] : p.smem)
            if (smem_bits(address) != bits)
                emu::fault("shared memory at " + std::to_string(address) +
                           ", read by a wgmma, changed before the wgmma wait that completes it");
        std::copy(p.result.begin(), p.result.end(), p.d);
    }
    flight.groups.pop_front();
}

}  // namespace emulated
#endif

// Closes the group of wgmma issued since the last commit.
__device__ __forceinline__ void commit() {
#if defined(RKV_WGMMA_PTX)
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#elif !defined(__CUDACC__)
    emulated::InFlight& flight = emulated::in_flight();
    flight.groups.push_back(std::move(flight.open));
    flight.open.clear();
#endif
}

// Waits until at most `pending` committed groups are in flight; their accumulators are then
// this thread's to read and write.
template <int pending>
__device__ __forceinline__ void wait() {
#if defined(RKV_WGMMA_PTX)
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(pending) : "memory");
#elif !defined(__CUDACC__)
    emulated::InFlight& flight = emulated::in_flight();
    while (flight.groups.size() > size_t(pending)) emulated::complete_oldest(flight);
#endif
}

// d (64 x N) = (accumulate ? d : 0) + A (64 x 16, shared, K-major) B (16 x N, shared).
template <int N, Major b_major>
__device__ __forceinline__ void mma_ss(float (&d)[N / 2], uint64_t a_desc, uint64_t b_desc, bool accumulate);

// d (64 x N) = (accumulate ? d : 0) + A (64 x 16, registers) B (16 x N, shared).
template <int N, Major b_major>
__device__ __forceinline__ void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b_desc, bool accumulate);

#if !defined(__CUDACC__)
template <int N, Major b_major>
__device__ __forceinline__ void mma_ss(float (&d)[N / 2], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
    using namespace emulated;
    auto a = [&](Product& p, int row, int k) { return read_smem(p, element_address(a_desc, Major::K, row, k)); };
    issue<N>(d, a, nullptr, b_desc, b_major, accumulate);
}

template <int N, Major b_major>
__device__ __forceinline__ void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b_desc, bool accumulate) {
    using namespace emulated;
    // Rows g and g + 8 of the warp's 16 live in lanes 4 g .. 4 g + 3 (mma.m16n8k16's A).
    const int g = threadIdx.x % 32 / 4;
    float rows[2][16];
    for (int u = 0; u < 4; u++) {
        const unsigned long long a01 = __shfl_sync(mma::kAllLanes, mma::emulated::join(a[0], a[1]), 4 * g + u);
        const unsigned long long a23 = __shfl_sync(mma::kAllLanes, mma::emulated::join(a[2], a[3]), 4 * g + u);
        const uint32_t r[2][2] = {{uint32_t(a01), uint32_t(a23)}, {uint32_t(a01 >> 32), uint32_t(a23 >> 32)}};
        for (int j = 0; j < 2; j++)
            for (int half = 0; half < 2; half++) {
                rows[j][2 * u + 8 * half] = mma::emulated::bf16_lo(r[j][half]);
                rows[j][2 * u + 8 * half + 1] = mma::emulated::bf16_hi(r[j][half]);
            }
    }
    const int w = threadIdx.x / 32 % 4;
    auto at = [&](Product&, int row, int k) { return rows[(row - 16 * w - g) / 8][k]; };
    issue<N>(d, at, a, b_desc, b_major, accumulate);
}
#else

// The PTX, one instruction per shape: the accumulators as "+f" operands %0 .. %(N/2 - 1).
#define RKV_ACC8(i)                                                                                             \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define RKV_ACC32(i) RKV_ACC8(i), RKV_ACC8(i + 8), RKV_ACC8(i + 16), RKV_ACC8(i + 24)
#define RKV_REGS32                                                                                          \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
    "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define RKV_REGS64                                                                                          \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
    "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "  \
    "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "  \
    "%62, %63}"

template <int N, Major b_major>
__device__ __forceinline__ void mma_ss(float (&d)[N / 2], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
    static_assert(N == 64 || N == 128, "wgmma shapes used here: m64n64k16, m64n128k16");
#if defined(RKV_WGMMA_PTX)
    constexpr int tnsp_b = b_major == Major::MN;
    if constexpr (N == 64)
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RKV_REGS32 ", %32, %33, p, 1, 1, 0, %35;\n}"
            : RKV_ACC32(0)
            : "l"(a_desc), "l"(b_desc), "r"(int(accumulate)), "n"(tnsp_b));
    else
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " RKV_REGS64 ", %64, %65, p, 1, 1, 0, %67;\n}"
            : RKV_ACC32(0), RKV_ACC32(32)
            : "l"(a_desc), "l"(b_desc), "r"(int(accumulate)), "n"(tnsp_b));
#else
    __trap();
#endif
}

template <int N, Major b_major>
__device__ __forceinline__ void mma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b_desc, bool accumulate) {
    static_assert(N == 64 || N == 128, "wgmma shapes used here: m64n64k16, m64n128k16");
#if defined(RKV_WGMMA_PTX)
    constexpr int tnsp_b = b_major == Major::MN;
    if constexpr (N == 64)
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RKV_REGS32
            ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}"
            : RKV_ACC32(0)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(int(accumulate)), "n"(tnsp_b));
    else
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " RKV_REGS64
            ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}"
            : RKV_ACC32(0), RKV_ACC32(32)
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(int(accumulate)), "n"(tnsp_b));
#else
    __trap();
#endif
}

#undef RKV_ACC8
#undef RKV_ACC32
#undef RKV_REGS32
#undef RKV_REGS64
#endif

}  // namespace rkv::cuda::wgmma
