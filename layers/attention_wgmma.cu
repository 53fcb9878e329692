// Fused causal attention forward with GQA on Hopper's warpgroup tensor cores, FlashAttention-3
// style without TMA or warp specialization, bf16 storage. Per batch b and query head h, reading
// KV head h / (NH / NKV):
//
//   S = scale Q K^T (causal),  P = softmax(S),  O = P V,  lse = log rowsum exp(S)
//
// A block takes 128 queries, two warpgroups of 64 rows each; grid (ceil(T / 128), NH, B), the
// last query blocks (the most key tiles) launched first. A warpgroup walks the key tiles of 128
// from key 0 to its block's diagonal, every product one wgmma per k-step of 16 (cuda/wgmma.cuh):
//   S (64, 128) = Q K^T      m64n128k16, Q and K read from shared memory
//   online softmax on S in registers, in log2 units (scores scaled by log2(e) / sqrt(HS), every
//   exponential an exp2); P is the S accumulators rounded to bf16, in place as the A operand
//   O (64, HS) += P V        m64nHSk16, P from registers, V read from shared memory
// The products are asynchronous: tile j issues S = Q K_j^T, then the previous tile's P V behind
// it, and runs its softmax while that P V is still on the tensor cores.
//
// K and V stream global -> shared by cp.async from all 256 threads, two stages each, a tile
// ahead: once tile j has issued S and P_{j-1} V_{j-1}, K_{j+1} and V_j load into the stages that
// tile j - 1's products (complete by then) read. One barrier per tile. Shared memory: Q (128, HS), K (2, 128, HS), V (2, 128, HS), each tile HS / 64
// slabs of 128 rows x 64 columns in the 128-byte swizzle of cuda/wgmma.cuh (row r's 16-byte
// chunk c at slab + swizzle128(r, c)), from a base aligned to 1024 bytes: 80 KB at HS 64,
// 160 KB at HS 128. Q and K are K-major operands; V, stored (keys, HS), is P V's MN-major B.
//
// Only the last key tile, the diagonal, is masked element by element. Rows past T load as zeros
// and are never stored; keys past T load as zeros and lie past every stored row's diagonal.
#include "layers/attention_wgmma.cuh"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

using bf16 = __nv_bfloat16;
using wgmma::Major;

constexpr int kWarpgroups = 2;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int kRows = 64 * kWarpgroups;  // queries per block
constexpr int kKeys = 128;               // keys per tile
static_assert(kRows == kKeys, "every shared tile is 128 rows; a block's diagonal is its last key tile");
constexpr int kSlab = 128 * 128;  // bytes of a slab: 128 rows of 64 bf16
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A (128, D) tile in bytes; the shared memory of Q, two stages of K and V, and room to align.
template <int D>
constexpr int kTileBytes = D / 64 * kSlab;
template <int D>
constexpr size_t kSmemBytes = 5 * kTileBytes<D> + 1024;

// Where the layer's K/V block starts in the all-layers buffers.
__device__ __forceinline__ size_t kv_block(const int* kv_src, int layer, size_t layer_stride) {
    return kv_src ? size_t(kv_src[layer]) * layer_stride : 0;
}

// tile (128, D), swizzled slabs <- rows row0 .. row0 + 127 of one head's (T, D) slice, whose rows
// are ld apart, 16 bytes per cp.async; rows at or past `end` (at most T) become zeros.
template <int D>
__device__ __forceinline__ void load_tile(unsigned char* tile, const bf16* head, int row0, int end, int ld) {
    constexpr int chunks = D / 8;  // 16-byte pieces of a row
    static_assert(128 * chunks % kThreads == 0);
    RKV_UNROLL
    for (int i = 0; i < 128 * chunks / kThreads; i++) {
        const int c = threadIdx.x + i * kThreads, row = c / chunks, chunk = c % chunks;
        const bool valid = row0 + row < end;
        mma::cp_async_16(tile + chunk / 8 * kSlab + wgmma::swizzle128(row, chunk % 8),
                         valid ? head + size_t(row0 + row) * ld + 8 * chunk : head, valid);
    }
}

// K-major operand: k-step ks (columns 16 ks .. 16 ks + 15) of the rows from `row` (a multiple
// of 8) of the (128, D) tile at shared address `tile`.
__device__ __forceinline__ uint64_t k_major(uint32_t tile, int row, int ks) {
    return wgmma::descriptor(tile + ks / 4 * kSlab + 128 * row + 32 * (ks % 4), 16, 1024);
}

// MN-major operand: k-step ks (rows 16 ks .. 16 ks + 15, all D columns) of the (128, D) tile at
// shared address `tile`; its slabs of 64 columns are kSlab apart.
__device__ __forceinline__ uint64_t mn_major(uint32_t tile, int ks) {
    return wgmma::descriptor(tile + 2048 * ks, kSlab, 1024);
}

// 2^x, results below 2^-126 flushed to zero: on the GPU the one MUFU.EX2 (exp2f adds the
// handling of subnormal results, which a softmax weight that small does not need).
__device__ __forceinline__ float exp2_ftz(float x) {
#if defined(__CUDA_ARCH__)
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#else
    return exp2f(x);
#endif
}

// Max and sum over the 4 lanes of a group (they share the accumulator rows g and g + 8).
__device__ __forceinline__ float group_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
    return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
}
__device__ __forceinline__ float group_sum(float x) {
    x += __shfl_xor_sync(kFullMask, x, 1);
    return x + __shfl_xor_sync(kFullMask, x, 2);
}

// grid (ceil(T / kRows), NH, B), kThreads threads. Warpgroup wg: queries q0 + 64 wg .. + 63; in
// it warp w, lane (g, t) holds rows +16w+g and +16w+g+8, keys and dims 8i + 2t, 8i + 2t + 1.
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k_all, const bf16* v_all,
                                   const int* kv_src, int layer, size_t layer_stride, int T, int NH, int NKV) {
    constexpr int tile = kTileBytes<D>, qk_steps = D / 16, pv_steps = kKeys / 16;
    unsigned char* base = rkv::dynamic_smem<unsigned char>();
    unsigned char* Qs = base + (1024 - wgmma::smem_address(base) % 1024) % 1024;  // (128, D) this block's queries
    unsigned char* Ks = Qs + tile;                                               // (2, 128, D) key tiles
    unsigned char* Vs = Ks + 2 * tile;                                           // (2, 128, D) value tiles
    const uint32_t q_at = wgmma::smem_address(Qs), k_at = q_at + tile, v_at = k_at + 2 * tile;

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // the longest rows start first
    const int wg_row = 64 * (threadIdx.x / 128);            // the warpgroup's first row in the block
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int row0 = q0 + wg_row + 16 * (threadIdx.x / 32 % 4) + g;  // this thread's rows: row0, row0 + 8
    const size_t qh = (size_t(b) * T * NH + h) * D;                  // this head's (T, D) slice of q, out
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale_log2 = kLog2e / sqrtf(float(D));
    const int tiles = q0 / kKeys + 1;        // key tiles 0 .. the diagonal
    const int key_end = min(T, q0 + kRows);  // the keys the block reads: 0 .. key_end - 1

    load_tile<D>(Qs, q + qh, q0, T, NH * D);
    load_tile<D>(Ks, k_all + kvh_at, 0, key_end, NKV * D);
    mma::cp_async_commit();

    float s[kKeys / 2];       // S, then P in fp32: the warpgroup's (64, kKeys) tile
    float o[D / 2] = {};      // O (64, D), unnormalized
    uint32_t p[pv_steps][4];  // the previous tile's P in bf16: the A operand of each k-step of P V
    // Rows g and g + 8 (index hf): the running max (log2 units), this lane's part of the row sum,
    // and the factor that takes O to the running max.
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, rescale[2] = {1.0f, 1.0f};

    // O = rescale O + P V, V the tile in `stage`: issued, not waited for.
    auto issue_pv = [&](int stage) {
        RKV_UNROLL
        for (int e = 0; e < D / 2; e++) o[e] *= rescale[e / 2 % 2];
        wgmma::fence_operand(o);
        wgmma::fence();
        RKV_UNROLL
        for (int ks = 0; ks < pv_steps; ks++)
            wgmma::mma_rs<D, Major::MN>(o, p[ks], mn_major(v_at + stage * tile, ks), true);
        wgmma::commit();
    };

    // Key tile j: S = Q K_j^T, the previous tile's P V behind it (but for the first tile), the
    // next loads, the softmax of S while that P V runs, then P in p. No branch lies between a
    // wgmma and its wait (ptxas would wait for the wgmma at the branch): the tile's flags are
    // types (std::bool_constant), and at the last tile the load of K_{j+1} is not skipped but
    // all zero fill, which reads nothing.
    auto key_tile = [&](int j, auto first, auto diagonal) {
        const int stage = j % 2;
        mma::cp_async_wait<0>();  // K_j (and Q) and V_{j-1}
        wgmma::fence_proxy_async();
        __syncthreads();  // ...are the block's; tile j - 1's products are done, its other stages free

        wgmma::fence_operand(s);
        wgmma::fence();
        RKV_UNROLL
        for (int ks = 0; ks < qk_steps; ks++)
            wgmma::mma_ss<kKeys, Major::K>(s, k_major(q_at, wg_row, ks), k_major(k_at + stage * tile, 0, ks), ks > 0);
        wgmma::commit();
        if constexpr (!first) issue_pv(1 - stage);  // the previous tile's P V, behind S

        load_tile<D>(Ks + (1 - stage) * tile, k_all + kvh_at, (j + 1) * kKeys, key_end, NKV * D);
        load_tile<D>(Vs + stage * tile, v_all + kvh_at, j * kKeys, key_end, NKV * D);
        mma::cp_async_commit();

        if constexpr (first) wgmma::wait<0>();
        else wgmma::wait<1>();  // S is done; P V runs on through the softmax
        wgmma::fence_operand(s);

        if constexpr (diagonal) {  // s[4i + 2hf + c] is key 8i + 2t + c of the tile, row g + 8 hf
            const int key0 = j * kKeys + 2 * t;
            RKV_UNROLL
            for (int e = 0; e < kKeys / 2; e++)
                if (key0 + 8 * (e / 4) + e % 2 > row0 + 8 * (e / 2 % 2)) s[e] = -INFINITY;
        }

        // Online softmax: the new row max, the rescale that takes what came before to it, P in place of S.
        RKV_UNROLL
        for (int hf = 0; hf < 2; hf++) {
            float row_max = -INFINITY;
            RKV_UNROLL
            for (int i = 0; i < kKeys / 8; i++)
                row_max = fmaxf(row_max, fmaxf(s[4 * i + 2 * hf], s[4 * i + 2 * hf + 1]));
            const float m_new = fmaxf(m[hf], group_max(row_max) * scale_log2);
            rescale[hf] = exp2_ftz(m[hf] - m_new);
            m[hf] = m_new;
            float sum = 0.0f;
            RKV_UNROLL
            for (int i = 0; i < kKeys / 8; i++)
                RKV_UNROLL
                for (int c = 0; c < 2; c++) {
                    float& x = s[4 * i + 2 * hf + c];
                    x = exp2_ftz(fmaf(x, scale_log2, -m_new));
                    sum += x;
                }
            l[hf] = l[hf] * rescale[hf] + sum;
        }

        wgmma::wait<0>();  // P V of tile j - 1 is done: its A registers and O are free
        wgmma::fence_operand(o);
        RKV_UNROLL
        for (int ks = 0; ks < pv_steps; ks++) wgmma::to_a(p[ks], s, ks);
    };

    constexpr std::true_type yes;
    constexpr std::false_type no;
    if (tiles == 1) {
        key_tile(0, yes, yes);
    } else {
        key_tile(0, yes, no);
        for (int j = 1; j < tiles - 1; j++) key_tile(j, no, no);
        key_tile(tiles - 1, no, yes);
    }

    mma::cp_async_wait<0>();  // V of the last tile
    wgmma::fence_proxy_async();
    __syncthreads();
    issue_pv((tiles - 1) % 2);
    wgmma::wait<0>();
    wgmma::fence_operand(o);

    // out = O / rowsum in bf16, lse = max + log2(rowsum) in natural-log units, for rows before T.
    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int row = row0 + 8 * hf;
        const float sum = group_sum(l[hf]);
        if (row >= T) continue;
        const float inv = 1.0f / sum;
        bf16* o_row = out + qh + size_t(row) * NH * D;
        RKV_UNROLL
        for (int i = 0; i < D / 8; i++)
            *reinterpret_cast<__nv_bfloat162*>(o_row + 8 * i + 2 * t) =
                __floats2bfloat162_rn(o[4 * i + 2 * hf] * inv, o[4 * i + 2 * hf + 1] * inv);
        if (t == 0) lse[(size_t(b) * NH + h) * T + row] = (m[hf] + log2f(sum)) * kLn2;
    }
}

// ---- Launchers ------------------------------------------------------------------------------------

void check_shape(int NH, int NKV, int HS, std::initializer_list<const void*> pointers) {
    if (NKV < 1 || NH % NKV != 0)
        throw std::invalid_argument("attention_wgmma: NH (" + std::to_string(NH) + ") is not a multiple of NKV (" +
                                    std::to_string(NKV) + ")");
    if (HS != 64 && HS != 128)
        throw std::invalid_argument("attention_wgmma: head dim " + std::to_string(HS) + " is not 64 or 128");
    for (const void* p : pointers)
        if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
            throw std::invalid_argument("attention_wgmma: a tensor is not 16-byte aligned");
}

template <int D>
void launch_forward(bf16* out, float* lse, const bf16* q, const bf16* k_all, const bf16* v_all, const int* kv_src,
                    int layer, size_t layer_stride, int B, int T, int NH, int NKV, cudaStream_t stream) {
    auto* kernel = attention_wgmma_forward_kernel<D>;
    cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes<D>)));
    launch_kernel(kernel, dim3(ceil_div(T, kRows), NH, B), kThreads, kSmemBytes<D>, stream, out, lse, q, k_all, v_all,
                  kv_src, layer, layer_stride, T, NH, NKV);
}

}  // namespace

bool attention_wgmma_supported() {
#if defined(RKV_EMU) && !defined(__CUDACC__)
    return true;
#elif defined(RKV_SM90A)
    int device = 0, major = 0, minor = 0;
    cuda_check(cudaGetDevice(&device));
    cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return major == 9 && minor == 0;
#else
    return false;
#endif
}

void attention_wgmma_forward_routed(bf16* out, float* lse, const bf16* q, const bf16* k_all, const bf16* v_all,
                                    const int* kv_src, int layer, size_t layer_stride, int B, int T, int NH,
                                    int NKV, int HS, cudaStream_t stream) {
    check_shape(NH, NKV, HS, {out, q, k_all, v_all});
    if (!attention_wgmma_supported())
        throw std::runtime_error("attention_wgmma: needs a build for sm_90a and a GPU of compute capability 9.0");
    if (B == 0 || T == 0) return;
    if (HS == 64)
        launch_forward<64>(out, lse, q, k_all, v_all, kv_src, layer, layer_stride, B, T, NH, NKV, stream);
    else
        launch_forward<128>(out, lse, q, k_all, v_all, kv_src, layer, layer_stride, B, T, NH, NKV, stream);
}

void attention_wgmma_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T,
                             int NH, int NKV, int HS, cudaStream_t stream) {
    attention_wgmma_forward_routed(out, lse, q, k, v, nullptr, 0, 0, B, T, NH, NKV, HS, stream);
}

}  // namespace rkv::cuda
