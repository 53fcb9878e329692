// Fused causal attention with GQA on Hopper's warpgroup tensor cores, forward and backward,
// FlashAttention-3 style without TMA or warp specialization, bf16 storage. Per batch b and query
// head h, reading KV head h / (NH / NKV):
//
//   forward:   S = scale Q K^T (causal),  P = softmax(S),  O = P V,  lse = log rowsum exp(S)
//   backward:  D = rowsum(dO * O),  dP = dO V^T,  dS = P (dP - D)
//              dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO  (dK, dV added when accumulating)
//
// Forward. A block takes 128 queries, two warpgroups of 64 rows each; grid (ceil(T / 128), NH, B),
// the last query blocks (the most key tiles) launched first. A warpgroup walks the key tiles of
// 128 from key 0 to its block's diagonal, every product one wgmma per k-step of 16 (cuda/wgmma.cuh):
//   S (64, 128) = Q K^T      m64n128k16, Q and K read from shared memory
//   online softmax on S in registers, in log2 units (scores scaled by log2(e) / sqrt(HS), every
//   exponential an exp2); P is the S accumulators rounded to bf16, in place as the A operand
//   O (64, HS) += P V        m64nHSk16, P from registers, V read from shared memory
// The products are asynchronous: tile j issues S = Q K_j^T, then the previous tile's P V behind
// it, and runs its softmax while that P V is still on the tensor cores.
//
// K and V stream global -> shared by cp.async from all 256 threads, two stages each, a tile
// ahead: once tile j has issued S and P_{j-1} V_{j-1}, K_{j+1} and V_j load into the stages that
// tile j - 1's products (complete by then) read. One barrier per tile. Shared memory: Q (128, HS),
// K (2, 128, HS), V (2, 128, HS), each tile HS / 64 slabs of its rows x 64 columns in the 128-byte
// swizzle of cuda/wgmma.cuh (row r's 16-byte chunk c at slab + swizzle128(r, c)), from a base
// aligned to 1024 bytes: 80 KB at HS 64, 160 KB at HS 128. Q and K are K-major operands; V,
// stored (keys, HS), is P V's MN-major B.
//
// Backward. P is recomputed from the forward's lse; D comes first, from a small kernel into
// scratch. Two kernels of two warpgroups x 64 rows, every product one wgmma per k-step:
//   dQ      (128 queries, head, batch): key tiles of 64 from key 0 to the diagonal; S = Q K^T
//           and dP = dO V^T (m64n64k16, both from shared memory) issued together, P formed while
//           dP runs, then dQ += dS K (m64nHSk16, dS from registers, K the MN-major B). Q, dO
//           (128, HS) load once, K, V (64, HS) two stages.
//   dK, dV  (128 keys, KV head, batch): every query head that reads the KV head, in order, and
//           in each the query tiles of 64 from the block's diagonal to T; S^T = K Q^T and
//           dP^T = V dO^T issued together, then dV += P^T dO, running while dS^T is formed, then
//           dK += dS^T Q (Q, dO the MN-major B). Computing S^T and dP^T makes the accumulator
//           rows the warpgroup's keys, so P^T and dS^T are A operands straight from registers.
//           K, V (128, HS) load once; Q, dO (64, HS) and the queries' lse and D two stages.
// Each step's products are done before the next step's barrier, after which the loads a step
// ahead reuse its stage. Shared memory: 64 KB at HS 64, 128 KB at HS 128 (and 1 KB of lse and
// D). Each element of dq, dk and dv has one writer that sums its terms in a fixed order, then
// stores it (or adds it, to dk and dv of a source layer's later readers; no atomics): the same
// bits every run.
//
// Only tiles that cross a diagonal are masked element by element: the forward's last key tile,
// dQ's last two, each head's first two query tiles in dK, dV. Rows past T load as zeros and are
// never stored; keys past T load as zeros and lie past every stored row's diagonal; queries past
// T get a staged lse that makes their P exactly 0 (no inf or NaN).
#include "layers/attention_wgmma.cuh"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"
#include "layers/attention_common.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

using bf16 = __nv_bfloat16;
using namespace attention_common;
using wgmma::Major;

constexpr int kWarpgroups = 2;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int kRows = 64 * kWarpgroups;  // queries per block (keys per dK/dV block)
constexpr int kKeys = 128;               // keys per forward tile
static_assert(kRows == kKeys, "the forward's tiles are 128 rows; a block's diagonal is its last key tile");
constexpr int kStep = 64;  // backward: queries per dK/dV step, keys per dQ step
// The staged lse (log2 units) of a query past T, whose q row loads as zeros: its P is
// exp2(0 - kNoQuery) = 0, with no inf or NaN.
constexpr float kNoQuery = 1e30f;

// Bytes of a slab (ROWS rows of 64 bf16) and of a (ROWS, D) tile.
template <int ROWS>
constexpr int kSlab = 128 * ROWS;
template <int ROWS, int D>
constexpr int kTileBytes = D / 64 * kSlab<ROWS>;
// Shared memory and room to align it: the forward's Q and two stages of K and V; the backward's
// (128, D) tiles (Q and dO, or K and V) and two stages of (64, D) ones (K and V, or Q and dO),
// and for dK/dV two stages of the queries' lse and D.
template <int D>
constexpr size_t kSmemBytes = 5 * kTileBytes<kRows, D> + 1024;
template <int D>
constexpr size_t kDqSmemBytes = 2 * kTileBytes<kRows, D> + 4 * kTileBytes<kStep, D> + 1024;
template <int D>
constexpr size_t kDkvSmemBytes = kDqSmemBytes<D> + 4 * kStep * sizeof(float);

// tile (ROWS, D), swizzled slabs <- rows row0 .. row0 + ROWS - 1 of one head's (T, D) slice, whose
// rows are ld apart, 16 bytes per cp.async; rows at or past `end` (at most T) become zeros.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile(unsigned char* tile, const bf16* head, int row0, int end, int ld) {
    constexpr int chunks = D / 8;  // 16-byte pieces of a row
    static_assert(ROWS * chunks % kThreads == 0);
    RKV_UNROLL
    for (int i = 0; i < ROWS * chunks / kThreads; i++) {
        const int c = threadIdx.x + i * kThreads, row = c / chunks, chunk = c % chunks;
        const bool valid = row0 + row < end;
        mma::cp_async_16(tile + chunk / 8 * kSlab<ROWS> + wgmma::swizzle128(row, chunk % 8),
                         valid ? head + size_t(row0 + row) * ld + 8 * chunk : head, valid);
    }
}

// K-major operand: k-step ks (columns 16 ks .. 16 ks + 15) of the rows from `row` (a multiple
// of 8) of the (ROWS, D) tile at shared address `tile`.
template <int ROWS>
__device__ __forceinline__ uint64_t k_major(uint32_t tile, int row, int ks) {
    return wgmma::descriptor(tile + ks / 4 * kSlab<ROWS> + 128 * row + 32 * (ks % 4), 16, 1024);
}

// MN-major operand: k-step ks (rows 16 ks .. 16 ks + 15, all D columns) of the (ROWS, D) tile at
// shared address `tile`; its slabs of 64 columns are kSlab<ROWS> apart.
template <int ROWS>
__device__ __forceinline__ uint64_t mn_major(uint32_t tile, int ks) {
    return wgmma::descriptor(tile + 2048 * ks, kSlab<ROWS>, 1024);
}

// acc (64, N) = A B^T over the D columns, issued and committed, not waited for: A is 64 rows from
// `row` of a (kRows, D) tile, B a (N, D) tile, both K-major at shared addresses a and b.
template <int N, int D>
__device__ __forceinline__ void issue_abt(float (&acc)[N / 2], uint32_t a, int row, uint32_t b) {
    RKV_UNROLL
    for (int ks = 0; ks < D / 16; ks++)
        wgmma::mma_ss<N, Major::K>(acc, k_major<kRows>(a, row, ks), k_major<N>(b, 0, ks), ks > 0);
    wgmma::commit();
}

// acc (64, D) += A B, issued and committed, not waited for: A (64, K) in registers, the bf16
// fragments of its k-steps; B the (K, D) tile at shared address b, MN-major.
template <int K, int D>
__device__ __forceinline__ void issue_ab(float (&acc)[D / 2], const uint32_t (&a)[K / 16][4], uint32_t b) {
    wgmma::fence_operand(acc);
    wgmma::fence();
    RKV_UNROLL
    for (int ks = 0; ks < K / 16; ks++) wgmma::mma_rs<D, Major::MN>(acc, a[ks], mn_major<K>(b, ks), true);
    wgmma::commit();
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

// grid (ceil(T / kRows), NH, B), kThreads threads. Warpgroup wg: queries q0 + 64 wg .. + 63; in
// it warp w, lane (g, t) holds rows +16w+g and +16w+g+8, keys and dims 8i + 2t, 8i + 2t + 1.
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k_all, const bf16* v_all,
                                   const int* kv_src, int layer, size_t layer_stride, int T, int NH, int NKV) {
    constexpr int tile = kTileBytes<kKeys, D>, pv_steps = kKeys / 16;
    unsigned char* base = rkv::dynamic_smem<unsigned char>();
    unsigned char* Qs = base + (1024 - wgmma::smem_address(base) % 1024) % 1024;  // (128, D) this block's queries
    unsigned char* Ks = Qs + tile;                                                // (2, 128, D) key tiles
    unsigned char* Vs = Ks + 2 * tile;                                            // (2, 128, D) value tiles
    const uint32_t q_at = wgmma::smem_address(Qs), k_at = q_at + tile, v_at = k_at + 2 * tile;

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // the longest rows start first
    const int wg_row = 64 * (threadIdx.x / 128);          // the warpgroup's first row in the block
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int row0 = q0 + wg_row + 16 * (threadIdx.x / 32 % 4) + g;  // this thread's rows: row0, row0 + 8
    const size_t qh = (size_t(b) * T * NH + h) * D;                  // this head's (T, D) slice of q, out
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale_log2 = kLog2e / sqrtf(float(D));
    const int tiles = q0 / kKeys + 1;        // key tiles 0 .. the diagonal
    const int key_end = min(T, q0 + kRows);  // the keys the block reads: 0 .. key_end - 1

    load_tile<kRows, D>(Qs, q + qh, q0, T, NH * D);
    load_tile<kKeys, D>(Ks, k_all + kvh_at, 0, key_end, NKV * D);
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
        issue_ab<kKeys, D>(o, p, v_at + stage * tile);
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
        issue_abt<kKeys, D>(s, q_at, wg_row, k_at + stage * tile);   // S = Q K^T
        if constexpr (!decltype(first)::value) issue_pv(1 - stage);  // the previous tile's P V, behind S

        load_tile<kKeys, D>(Ks + (1 - stage) * tile, k_all + kvh_at, (j + 1) * kKeys, key_end, NKV * D);
        load_tile<kKeys, D>(Vs + stage * tile, v_all + kvh_at, j * kKeys, key_end, NKV * D);
        mma::cp_async_commit();

        if constexpr (decltype(first)::value)
            wgmma::wait<0>();
        else
            wgmma::wait<1>();  // S is done; P V runs on through the softmax
        wgmma::fence_operand(s);

        if constexpr (decltype(diagonal)::value) {  // s[4i + 2hf + c] is key 8i + 2t + c of the tile, row g + 8 hf
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
            for (int i = 0; i < kKeys / 8; i++) {
                RKV_UNROLL
                for (int c = 0; c < 2; c++) {
                    float& x = s[4 * i + 2 * hf + c];
                    x = exp2_ftz(fmaf(x, scale_log2, -m_new));
                    sum += x;
                }
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

// ---- Backward: dQ -----------------------------------------------------------------------------
// grid (ceil(T / kRows), NH, B), kThreads threads. Warpgroup wg: queries q0 + 64 wg .. + 63; in
// it warp w, lane (g, t) holds rows +16w+g and +16w+g+8, keys and dims 8i + 2t, 8i + 2t + 1.
// Key tiles of kStep from key 0 to the block's diagonal, each:
//   S (64, kStep) = Q K^T, dP (64, kStep) = dO V^T     issued together; P = exp2(S - lse) while dP runs
//   dS = P (dP - D);  dQ (64, D) += dS K                 dS from registers, K (keys, D) MN-major
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_backward_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k_all, const bf16* v_all,
                                       const float* lse, const float* Dvec, const int* kv_src, int layer,
                                       size_t layer_stride, int T, int NH, int NKV) {
    constexpr int rows_tile = kTileBytes<kRows, D>, tile = kTileBytes<kStep, D>;
    constexpr int ds_steps = kStep / 16;
    unsigned char* base = rkv::dynamic_smem<unsigned char>();
    unsigned char* Qs = base + (1024 - wgmma::smem_address(base) % 1024) % 1024;  // (128, D) this block's queries
    unsigned char* dOs = Qs + rows_tile;                                          // (128, D) their output gradients
    unsigned char* Ks = dOs + rows_tile;                                          // (2, kStep, D) key tiles
    unsigned char* Vs = Ks + 2 * tile;                                            // (2, kStep, D) value tiles
    const uint32_t q_at = wgmma::smem_address(Qs), do_at = q_at + rows_tile, k_at = do_at + rows_tile,
                   v_at = k_at + 2 * tile;

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // the longest rows start first
    const int wg_row = 64 * (threadIdx.x / 128);          // the warpgroup's first row in the block
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int row0 = q0 + wg_row + 16 * (threadIdx.x / 32 % 4) + g;  // this thread's rows: row0, row0 + 8
    const size_t qh = (size_t(b) * T * NH + h) * D;                  // this head's (T, D) slice of q, dq, dout
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale = 1.0f / sqrtf(float(D)), scale_log2 = kLog2e * scale;
    const int key_end = min(T, q0 + kRows);      // the keys the block reads: 0 .. key_end - 1
    const int tiles = ceil_div(key_end, kStep);  // key tiles 0 .. the diagonal
    const int diagonal = q0 / kStep;             // the first tile that crosses a row's diagonal

    load_tile<kRows, D>(Qs, q + qh, q0, T, NH * D);
    load_tile<kRows, D>(dOs, dout + qh, q0, T, NH * D);
    load_tile<kStep, D>(Ks, k_all + kvh_at, 0, key_end, NKV * D);
    load_tile<kStep, D>(Vs, v_all + kvh_at, 0, key_end, NKV * D);
    mma::cp_async_commit();

    float lse2[2], Di[2];  // rows row0, row0 + 8 (index hf): lse in log2 units, D
    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int row = row0 + 8 * hf;
        const size_t at = (size_t(b) * NH + h) * T + row;
        lse2[hf] = row < T ? lse[at] * kLog2e : kNoQuery;
        Di[hf] = row < T ? Dvec[at] : 0.0f;
    }

    float s[kStep / 2];        // S, then P: the warpgroup's (64, kStep)
    float dp[kStep / 2];       // dP, then dS
    float dq_acc[D / 2] = {};  // dQ (64, D) = sum over key tiles of dS K
    uint32_t ds[ds_steps][4];  // dS in bf16: the A operand of each k-step of dS K

    // Key tile j, whole: its products are done when it returns, so the next barrier frees its
    // stage. `diagonal` is a type (std::bool_constant): no branch between a wgmma and its wait.
    auto key_tile = [&](int j, auto diagonal) {
        const int stage = j % 2;
        mma::cp_async_wait<0>();  // K_j, V_j (and Q, dO)
        wgmma::fence_proxy_async();
        __syncthreads();  // ...are the block's; tile j - 1 is done with the other stage
        if (j + 1 < tiles) {
            load_tile<kStep, D>(Ks + (1 - stage) * tile, k_all + kvh_at, (j + 1) * kStep, key_end, NKV * D);
            load_tile<kStep, D>(Vs + (1 - stage) * tile, v_all + kvh_at, (j + 1) * kStep, key_end, NKV * D);
        }
        mma::cp_async_commit();

        const uint32_t kt = k_at + stage * tile, vt = v_at + stage * tile;
        wgmma::fence_operand(s);
        wgmma::fence_operand(dp);
        wgmma::fence();
        issue_abt<kStep, D>(s, q_at, wg_row, kt);    // S = Q K^T
        issue_abt<kStep, D>(dp, do_at, wg_row, vt);  // dP = dO V^T

        wgmma::wait<1>();  // S is done; dP runs on through P
        wgmma::fence_operand(s);
        // s[4i + 2hf + c] is row row0 + 8 hf, key j kStep + 8i + 2t + c
        RKV_UNROLL
        for (int e = 0; e < kStep / 2; e++) {
            s[e] = exp2_ftz(fmaf(s[e], scale_log2, -lse2[e / 2 % 2]));
            if constexpr (decltype(diagonal)::value)
                if (j * kStep + 8 * (e / 4) + 2 * t + e % 2 > row0 + 8 * (e / 2 % 2)) s[e] = 0.0f;
        }

        wgmma::wait<0>();
        wgmma::fence_operand(dp);
        RKV_UNROLL
        for (int e = 0; e < kStep / 2; e++) dp[e] = s[e] * (dp[e] - Di[e / 2 % 2]);
        RKV_UNROLL
        for (int ks = 0; ks < ds_steps; ks++) wgmma::to_a(ds[ks], dp, ks);

        issue_ab<kStep, D>(dq_acc, ds, kt);  // dQ += dS K
        wgmma::wait<0>();
        wgmma::fence_operand(dq_acc);
    };

    constexpr std::true_type yes;
    constexpr std::false_type no;
    for (int j = 0; j < diagonal; j++) key_tile(j, no);
    for (int j = diagonal; j < tiles; j++) key_tile(j, yes);

    // dq = scale dQ, rows before T.
    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int row = row0 + 8 * hf;
        if (row >= T) continue;
        bf16* dq_row = dq + qh + size_t(row) * NH * D;
        RKV_UNROLL
        for (int i = 0; i < D / 8; i++)
            put_pair(dq_row, 8 * i + 2 * t, scale, dq_acc[4 * i + 2 * hf], dq_acc[4 * i + 2 * hf + 1], false);
    }
}

// ---- Backward: dK, dV --------------------------------------------------------------------------
// grid (ceil(T / kRows), NKV, B), kThreads threads. Warpgroup wg: keys k0 + 64 wg .. + 63; in it
// warp w, lane (g, t) holds rows (keys) +16w+g and +16w+g+8, queries and dims 8i + 2t, 8i + 2t + 1.
// Every query head that reads the KV head, in order, and in each the query tiles of kStep from
// the block's diagonal to T, in order, each:
//   S^T (64, kStep) = K Q^T, dP^T (64, kStep) = V dO^T   issued together; P^T = exp2(S^T - lse)
//   dV (64, D) += P^T dO                                  issued, and running while dS^T is formed
//   dS^T = P^T (dP^T - D);  dK (64, D) += dS^T Q          Q, dO (queries, D) MN-major
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_backward_dkdv_kernel(bf16* dk_all, bf16* dv_all, bool accumulate, const bf16* dout, const bf16* q,
                                         const bf16* k_all, const bf16* v_all, const float* lse, const float* Dvec,
                                         const int* kv_src, int layer, size_t layer_stride, int T, int NH, int NKV) {
    constexpr int keys_tile = kTileBytes<kRows, D>, tile = kTileBytes<kStep, D>;
    constexpr int pq_steps = kStep / 16;
    unsigned char* base = rkv::dynamic_smem<unsigned char>();
    unsigned char* Ks = base + (1024 - wgmma::smem_address(base) % 1024) % 1024;  // (128, D) this block's keys
    unsigned char* Vs = Ks + keys_tile;                                           // (128, D) their values
    unsigned char* Qs = Vs + keys_tile;                                           // (2, kStep, D) query tiles
    unsigned char* dOs = Qs + 2 * tile;                       // (2, kStep, D) their output gradients
    float* lse_s = reinterpret_cast<float*>(dOs + 2 * tile);  // (2, kStep) the queries' lse, log2 units
    float* D_s = lse_s + 2 * kStep;                           // (2, kStep) the queries' D
    const uint32_t k_at = wgmma::smem_address(Ks), v_at = k_at + keys_tile, q_at = v_at + keys_tile,
                   do_at = q_at + 2 * tile;

    const int b = blockIdx.z, kvh = blockIdx.y, group = NH / NKV;
    const int k0 = blockIdx.x * kRows;            // the first keys see the most queries: they start first
    const int wg_key = 64 * (threadIdx.x / 128);  // the warpgroup's first key in the block
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int key0 = k0 + wg_key + 16 * (threadIdx.x / 32 % 4) + g;  // this thread's keys: key0, key0 + 8
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale = 1.0f / sqrtf(float(D)), scale_log2 = kLog2e * scale;
    const int q_tiles = ceil_div(T - k0, kStep);  // query tiles k0, k0 + kStep, ... of each head
    const int steps = group * q_tiles;

    // Step it: query head kvh group + it / q_tiles, queries k0 + (it % q_tiles) kStep .. + kStep - 1.
    auto load_step = [&](int it, int stage) {
        const int h = kvh * group + it / q_tiles, i0 = k0 + it % q_tiles * kStep;
        const size_t qh = (size_t(b) * T * NH + h) * D;
        load_tile<kStep, D>(Qs + stage * tile, q + qh, i0, T, NH * D);
        load_tile<kStep, D>(dOs + stage * tile, dout + qh, i0, T, NH * D);
        if (threadIdx.x < kStep) {  // read after the barrier that follows this step's wait
            const int row = i0 + threadIdx.x;
            const size_t at = (size_t(b) * NH + h) * T + row;
            lse_s[stage * kStep + threadIdx.x] = row < T ? lse[at] * kLog2e : kNoQuery;
            D_s[stage * kStep + threadIdx.x] = row < T ? Dvec[at] : 0.0f;
        }
    };

    load_tile<kRows, D>(Ks, k_all + kvh_at, k0, T, NKV * D);
    load_tile<kRows, D>(Vs, v_all + kvh_at, k0, T, NKV * D);
    load_step(0, 0);
    mma::cp_async_commit();

    float st[kStep / 2];                         // S^T, then P^T: the warpgroup's (64 keys, kStep queries)
    float dpt[kStep / 2];                        // dP^T, then dS^T
    float dk_acc[D / 2] = {};                    // dK (64, D) = sum of dS^T Q, unscaled
    float dv_acc[D / 2] = {};                    // dV (64, D) = sum of P^T dO
    uint32_t pa[pq_steps][4], dsa[pq_steps][4];  // P^T and dS^T in bf16: A operands of each k-step

    // Step it, whole: its products are done when it returns, so the next barrier frees its
    // stage. `diagonal` is a type (std::bool_constant): no branch between a wgmma and its wait.
    auto step = [&](int it, auto diagonal) {
        const int stage = it % 2, i0 = k0 + it % q_tiles * kStep;
        mma::cp_async_wait<0>();  // this step's Q, dO (and K, V)
        wgmma::fence_proxy_async();
        __syncthreads();  // ...are the block's, as are its lse and D; step it - 1 is done with the other stage
        if (it + 1 < steps) load_step(it + 1, 1 - stage);
        mma::cp_async_commit();

        const uint32_t qt = q_at + stage * tile, dot = do_at + stage * tile;
        const float* lse_t = lse_s + stage * kStep;
        const float* D_t = D_s + stage * kStep;
        wgmma::fence_operand(st);
        wgmma::fence_operand(dpt);
        wgmma::fence();
        issue_abt<kStep, D>(st, k_at, wg_key, qt);    // S^T = K Q^T
        issue_abt<kStep, D>(dpt, v_at, wg_key, dot);  // dP^T = V dO^T

        wgmma::wait<1>();  // S^T is done; dP^T runs on through P^T
        wgmma::fence_operand(st);
        // st[4i + 2hf + c] is key key0 + 8 hf, query i0 + 8i + 2t + c
        RKV_UNROLL
        for (int e = 0; e < kStep / 2; e++) {
            const int qi = 8 * (e / 4) + 2 * t + e % 2;
            st[e] = exp2_ftz(fmaf(st[e], scale_log2, -lse_t[qi]));
            if constexpr (decltype(diagonal)::value)
                if (i0 + qi < key0 + 8 * (e / 2 % 2)) st[e] = 0.0f;
        }
        RKV_UNROLL
        for (int ks = 0; ks < pq_steps; ks++) wgmma::to_a(pa[ks], st, ks);
        issue_ab<kStep, D>(dv_acc, pa, dot);  // dV += P^T dO

        wgmma::wait<1>();  // dP^T is done; dV runs on through dS^T
        wgmma::fence_operand(dpt);
        RKV_UNROLL
        for (int e = 0; e < kStep / 2; e++) dpt[e] = st[e] * (dpt[e] - D_t[8 * (e / 4) + 2 * t + e % 2]);
        RKV_UNROLL
        for (int ks = 0; ks < pq_steps; ks++) wgmma::to_a(dsa[ks], dpt, ks);
        issue_ab<kStep, D>(dk_acc, dsa, qt);  // dK += dS^T Q
        wgmma::wait<0>();
        wgmma::fence_operand(dv_acc);
        wgmma::fence_operand(dk_acc);
    };

    // The first two query tiles of a head cross the diagonal of one warpgroup or the other.
    constexpr std::true_type yes;
    constexpr std::false_type no;
    for (int h = 0; h < group; h++) {
        const int it = h * q_tiles;
        for (int i = 0; i < min(2, q_tiles); i++) step(it + i, yes);
        for (int i = 2; i < q_tiles; i++) step(it + i, no);
    }

    // dk = scale dK, dv = dV (added to them when accumulate), keys before T.
    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int key = key0 + 8 * hf;
        if (key >= T) continue;
        const size_t at = kvh_at + size_t(key) * NKV * D;
        RKV_UNROLL
        for (int i = 0; i < D / 8; i++) {
            put_pair(dk_all + at, 8 * i + 2 * t, scale, dk_acc[4 * i + 2 * hf], dk_acc[4 * i + 2 * hf + 1], accumulate);
            put_pair(dv_all + at, 8 * i + 2 * t, 1.0f, dv_acc[4 * i + 2 * hf], dv_acc[4 * i + 2 * hf + 1], accumulate);
        }
    }
}

// ---- Launchers ------------------------------------------------------------------------------------

template <int D>
void launch_forward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    launch_kernel_big_smem(attention_wgmma_forward_kernel<D>, dim3(ceil_div(a.T, kRows), a.NH, a.B), kThreads,
                           kSmemBytes<D>, stream, a.out, a.lse, a.q, a.k_all, a.v_all, a.kv_src, a.layer,
                           a.layer_stride, a.T, a.NH, a.NKV);
}

template <int D>
void launch_backward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    StreamScratch<float> Dvec(size_t(a.B) * a.T * a.NH, stream);  // (B, NH, T)
    row_dots<D>(Dvec.get(), a.dout, a.out, a.B, a.T, a.NH, stream);
    launch_kernel_big_smem(attention_wgmma_backward_dq_kernel<D>, dim3(ceil_div(a.T, kRows), a.NH, a.B), kThreads,
                           kDqSmemBytes<D>, stream, a.dq, a.dout, a.q, a.k_all, a.v_all, a.lse, Dvec.get(), a.kv_src,
                           a.layer, a.layer_stride, a.T, a.NH, a.NKV);
    launch_kernel_big_smem(attention_wgmma_backward_dkdv_kernel<D>, dim3(ceil_div(a.T, kRows), a.NKV, a.B), kThreads,
                           kDkvSmemBytes<D>, stream, a.dk_all, a.dv_all, a.accumulate_kv, a.dout, a.q, a.k_all, a.v_all,
                           a.lse, Dvec.get(), a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV);
}

}  // namespace

bool attention_wgmma_supported() {
#if defined(RKV_EMU) && !defined(__CUDACC__)
    return true;
#elif defined(RKV_SM90A)
    // Read once: a process drives one GPU (one per rank), and `auto` asks at every layer.
    static const bool supported = [] {
        int device = 0, major = 0, minor = 0;
        cuda_check(cudaGetDevice(&device));
        cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
        cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
        return major == 9 && minor == 0;
    }();
    return supported;
#else
    return false;
#endif
}

void attention_wgmma_forward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    check_shape("attention_wgmma", a.NH, a.NKV, {a.out, a.q, a.k_all, a.v_all});
    with_head_dim<64, 128>("attention_wgmma", a.HS, [&](auto hs) {
        if (!attention_wgmma_supported())
            throw std::runtime_error("attention_wgmma: needs a build for sm_90a and a GPU of compute capability 9.0");
        if (a.B > 0 && a.T > 0) launch_forward<decltype(hs)::value>(a, stream);
    });
}

void attention_wgmma_backward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    check_shape("attention_wgmma", a.NH, a.NKV, {a.dq, a.dk_all, a.dv_all, a.dout, a.q, a.k_all, a.v_all, a.out});
    with_head_dim<64, 128>("attention_wgmma", a.HS, [&](auto hs) {
        if (!attention_wgmma_supported())
            throw std::runtime_error("attention_wgmma: needs a build for sm_90a and a GPU of compute capability 9.0");
        if (a.B > 0 && a.T > 0) launch_backward<decltype(hs)::value>(a, stream);
    });
}

}  // namespace rkv::cuda
