// Warp-level tensor-core primitives: mma.m16n8k16 (bf16 in, fp32 accumulate), ldmatrix x4
// (plain and transposed) and cp.async. Under nvcc, for the device, each is its PTX
// instruction. Elsewhere (the emulator, cuda/emu) each is a warp collective built from
// __shfl_sync that puts the same values in the same lanes and registers as the PTX ISA's
// fragment layouts ("Matrix Fragments for mma.m16n8k16", "ldmatrix"), so a kernel written
// against these layouts computes the same thing in both.
//
// Fragments of one m16n8k16 product D (16x8) = A (16x16) B (16x8) + C, for lane
// = 4 g + t (g = lane / 4 the group, t = lane % 4 the thread in the group); each uint32_t
// holds two bf16, the lower column or row in the low half:
//   A (row-major) a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]
//                 a[2] = A[g][2t+8, 2t+9]  a[3] = A[g+8][2t+8, 2t+9]
//   B (k x n)     b0 = B[2t, 2t+1][g]      b1 = B[2t+8, 2t+9][g]
//   C, D (fp32)   c[0], c[1] = C[g][2t, 2t+1]    c[2], c[3] = C[g+8][2t, 2t+1]
// So the C fragments of two n8 tiles side by side (columns 0-7 and 8-15), rounded to bf16
// in pairs, are the A fragment of the 16x16 block they make: P never leaves registers.
#pragma once

#include "cuda/compat.cuh"

#include <cstdint>
#include <cstring>

namespace rkv::cuda::mma {

constexpr unsigned kAllLanes = 0xffffffffu;

// Two floats as a bf16 pair (round to nearest), lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const uint32_t*>(&v);
#else
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return bits;
#endif
}

#if !defined(__CUDA_ARCH__)
namespace emulated {
__device__ __forceinline__ float bf16_lo(uint32_t x) { return __uint_as_float(x << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t x) { return __uint_as_float(x & 0xffff0000u); }
__device__ __forceinline__ unsigned long long join(uint32_t lo, uint32_t hi) {
    return (unsigned long long)hi << 32 | lo;
}
template <class V>
__device__ __forceinline__ const V* shfl_pointer(const V* p, int src_lane) {
    return reinterpret_cast<const V*>(__shfl_sync(kAllLanes, reinterpret_cast<unsigned long long>(p), src_lane));
}
}  // namespace emulated
#endif

// d (16x8, fp32) += a (16x16, bf16) b (16x8, bf16), fragments as above; b0, b1 are b's two registers.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    using namespace emulated;
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    // Rows g and g+8 of A live in lanes 4g .. 4g+3; columns 2t and 2t+1 of B in lanes 8t .. 8t+3
    // and 8t+4 .. 8t+7. Thread u of a group holds k = 2u, 2u+1, 2u+8, 2u+9.
    float row[2][16], col[2][16];
    for (int u = 0; u < 4; u++) {
        const unsigned long long a01 = __shfl_sync(kAllLanes, join(a[0], a[1]), 4 * g + u);
        const unsigned long long a23 = __shfl_sync(kAllLanes, join(a[2], a[3]), 4 * g + u);
        const unsigned long long b_even = __shfl_sync(kAllLanes, join(b0, b1), 8 * t + u);
        const unsigned long long b_odd = __shfl_sync(kAllLanes, join(b0, b1), 8 * t + 4 + u);
        const uint32_t ra[2][2] = {{uint32_t(a01), uint32_t(a23)}, {uint32_t(a01 >> 32), uint32_t(a23 >> 32)}};
        for (int r = 0; r < 2; r++)
            for (int half = 0; half < 2; half++) {
                row[r][2 * u + 8 * half] = bf16_lo(ra[r][half]);
                row[r][2 * u + 8 * half + 1] = bf16_hi(ra[r][half]);
            }
        const unsigned long long cb[2] = {b_even, b_odd};
        for (int c = 0; c < 2; c++)
            for (int half = 0; half < 2; half++) {
                const uint32_t x = uint32_t(cb[c] >> (32 * half));
                col[c][2 * u + 8 * half] = bf16_lo(x);
                col[c][2 * u + 8 * half + 1] = bf16_hi(x);
            }
    }
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) {
            float acc = d[2 * r + c];
            for (int kk = 0; kk < 16; kk++) acc = fmaf(row[r][kk], col[c][kk], acc);
            d[2 * r + c] = acc;
        }
#endif
}

// ldmatrix .x4: four 8x8 bf16 matrices from shared memory. Lanes 8i .. 8i+7 give the addresses
// of rows 0..7 of matrix i (16 bytes each, 16-byte aligned); r[i] gets, in lane 4g + t,
//   plain:  matrix i's row g, columns 2t, 2t+1
//   trans:  matrix i's rows 2t, 2t+1 of column g (the transposed matrix's row g)
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* row_address) {
#if defined(__CUDA_ARCH__)
    const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
#else
    using namespace emulated;
    const int lane = threadIdx.x % 32;
    for (int i = 0; i < 4; i++) {
        const auto* row = shfl_pointer(row_address, 8 * i + lane / 4);
        std::memcpy(&r[i], row + 2 * (lane % 4), sizeof(uint32_t));
    }
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* row_address) {
#if defined(__CUDA_ARCH__)
    const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
#else
    using namespace emulated;
    const int lane = threadIdx.x % 32;
    for (int i = 0; i < 4; i++) {
        const auto* row0 = shfl_pointer(row_address, 8 * i + 2 * (lane % 4));
        const auto* row1 = shfl_pointer(row_address, 8 * i + 2 * (lane % 4) + 1);
        uint16_t lo, hi;
        std::memcpy(&lo, row0 + lane / 4, sizeof lo);
        std::memcpy(&hi, row1 + lane / 4, sizeof hi);
        r[i] = uint32_t(hi) << 16 | lo;
    }
#endif
}

// 16 bytes global -> shared without passing through registers; zeros instead when !valid
// (src is then not read, but must still be a valid address). Completes at cp_async_wait.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__)
    const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(at), "l"(src), "r"(valid ? 16 : 0));
#else
    if (valid)
        std::memcpy(dst, src, 16);
    else
        std::memset(dst, 0, 16);
#endif
}

// Closes the group of cp.async issued since the last commit (an empty group is fine).
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.commit_group;");
#endif
}

// Waits until at most `pending` committed groups are still in flight (this thread's copies;
// a barrier after it makes every thread's copies visible).
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.wait_group %0;" ::"n"(pending) : "memory");
#endif
}

}  // namespace rkv::cuda::mma
