// Fused causal attention with GQA on the tensor cores, FlashAttention-2 style, bf16 storage.
// Per batch b and query head h, reading KV head h / (NH / NKV):
//
//   forward:   S = scale Q K^T (causal),  P = softmax(S),  O = P V,  lse = log rowsum exp(S)
//   backward:  D = rowsum(dO * O),  dP = dO V^T,  dS = P (dP - D)
//              dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO  (dK, dV added when accumulating)
//
// Every product is a warp's mma.m16n8k16 (cuda/mma.cuh) on fragments loaded from shared
// memory by ldmatrix; S, P and dS stay in registers, and P or dS goes from the accumulator
// layout straight into the next product's A operand (two n8 accumulator tiles are one A tile).
// Tiles stream global -> shared by cp.async, two stages deep: the next tile loads while this
// one is used. Shared rows are padded by 16 bytes, so the 8 rows an ldmatrix reads fall in
// 8 different bank groups.
//
//   forward  (128 queries, head, batch):  4 warps x 32 query rows; key tiles of 64 (32 at head
//            dim 128) from key 0 to the last query; online softmax in registers, scores in log2 units
//            (s scale log2(e)), so every exponential is an exp2.
//   dQ       (64 queries, head, batch):   4 warps x 16 query rows; the same key tiles; P is
//            recomputed from lse.
//   dK, dV   (64 keys, KV head, batch):   4 warps x 16 key rows; every query head that reads
//            the KV head, in order, and in each the query tiles of 64 from the diagonal to T.
// Each element of dq, dk and dv has one writer that sums its terms in a fixed order: no atomics,
// the same bits every run. The key side computes S^T = K Q^T and dP^T = V dO^T directly, so its
// rows are the keys its warps own. D is computed once by a small kernel into scratch.
//
// Tiles that the causal mask empties for a whole warp are skipped; only tiles that cross the
// diagonal are masked element by element. Rows past T load as zeros and are never stored.
#include "layers/attention_mma.cuh"

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/mma.cuh"
#include "layers/attention_common.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

using bf16 = __nv_bfloat16;
using namespace attention_common;
using mma::cp_async_16;
using mma::ldmatrix_x4;
using mma::ldmatrix_x4_trans;
using mma::mma_m16n8k16;
using mma::pack_bf16;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kFwdRowTiles = 2;                       // m16 tiles of queries per warp, forward
constexpr int kFwdRows = 16 * kFwdRowTiles * kWarps;  // 128 queries per forward block
constexpr int kTile = 64;                             // keys per backward tile; queries per dQ block and tile
// Keys per forward tile: at head dim 128 the O accumulators take 128 registers a lane, so the
// scores get 32 (not 64) and nothing spills.
template <int D>
constexpr int kFwdKeys = D == 128 ? 32 : 64;

// Row stride of a shared tile of D bf16 columns: 16 bytes of padding per row.
template <int D>
constexpr int kStride = D + 8;

// tile (ROWS, D + 8) <- rows row0 .. row0 + ROWS - 1 of one head's (T, D) slice, whose rows are
// ld apart, 16 bytes per cp.async; rows at or past T become zeros.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* head, int row0, int T, int ld) {
    constexpr int chunks = D / 8;  // 16-byte pieces of a row
    static_assert(ROWS * chunks % kThreads == 0);
    RKV_UNROLL
    for (int i = 0; i < ROWS * chunks / kThreads; i++) {
        const int c = threadIdx.x + i * kThreads, row = c / chunks, col = c % chunks * 8;
        const bool valid = row0 + row < T;
        cp_async_16(tile + row * kStride<D> + col, valid ? head + size_t(row0 + row) * ld + col : head, valid);
    }
}

// The (row, column) of a 16x16 block whose address lane gives ldmatrix_x4 so that the four
// registers are the block's A fragment; with .trans, on a block stored (k, n), the B fragments
// of its two n8 tiles (registers 0, 1 and 2, 3).
__device__ __forceinline__ int a_row(int lane) { return lane % 8 + 8 * (lane / 8 % 2); }
__device__ __forceinline__ int a_col(int lane) { return 8 * (lane / 16); }
// The same for the B fragments of two n8 tiles of a block stored (n, k), without .trans.
__device__ __forceinline__ int b_row(int lane) { return lane % 8 + 8 * (lane / 16); }
__device__ __forceinline__ int b_col(int lane) { return 8 * (lane / 8 % 2); }

// The A fragment of the 16x16 block made of accumulator tiles c0 (columns 0-7) and c1 (8-15).
__device__ __forceinline__ void to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

// acc (MT m16 x N/8 n8 tiles) += A B^T where A's MT x 16 rows start at row `a` and B's N rows
// at row `b` of two shared tiles (row-major, D + 8 stride): the product of two row-major
// tiles over their D columns, as S = Q K^T.
template <int D, int MT, int N>
__device__ __forceinline__ void mma_abt(float (&acc)[MT][N / 8][4], const bf16* a, const bf16* b, int lane) {
    constexpr int S = kStride<D>;
    RKV_UNROLL
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t af[MT][4];
        RKV_UNROLL
        for (int mi = 0; mi < MT; mi++) ldmatrix_x4(af[mi], a + (16 * mi + a_row(lane)) * S + 16 * kk + a_col(lane));
        RKV_UNROLL
        for (int np = 0; np < N / 16; np++) {
            uint32_t bf[4];
            ldmatrix_x4(bf, b + (16 * np + b_row(lane)) * S + 16 * kk + b_col(lane));
            RKV_UNROLL
            for (int mi = 0; mi < MT; mi++) {
                mma_m16n8k16(acc[mi][2 * np], af[mi], bf[0], bf[1]);
                mma_m16n8k16(acc[mi][2 * np + 1], af[mi], bf[2], bf[3]);
            }
        }
    }
}

// acc (MT m16 x D/8 n8 tiles) += P B where P (MT x 16 rows, K columns) is in accumulator
// registers and B (K rows, D columns) is a row-major shared tile starting at row `b`: O = P V.
template <int D, int MT, int K>
__device__ __forceinline__ void mma_pb(float (&acc)[MT][D / 8][4], const float (&p)[MT][K / 8][4], const bf16* b,
                                       int lane) {
    constexpr int S = kStride<D>;
    RKV_UNROLL
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t af[MT][4];
        RKV_UNROLL
        for (int mi = 0; mi < MT; mi++) to_a(af[mi], p[mi][2 * kk], p[mi][2 * kk + 1]);
        RKV_UNROLL
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t bf[4];
            ldmatrix_x4_trans(bf, b + (16 * kk + a_row(lane)) * S + 16 * dp + a_col(lane));
            RKV_UNROLL
            for (int mi = 0; mi < MT; mi++) {
                mma_m16n8k16(acc[mi][2 * dp], af[mi], bf[0], bf[1]);
                mma_m16n8k16(acc[mi][2 * dp + 1], af[mi], bf[2], bf[3]);
            }
        }
    }
}

// ---- Forward -------------------------------------------------------------------------------
// grid (ceil(T / kFwdRows), NH, B), kThreads threads. Warp w: queries q0 + 32 w .. + 31 as two
// m16 tiles; lane (g, t) holds rows +g and +g+8 of each, keys and dims 2t, 2t+1 of each n8 tile.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k_all, const bf16* v_all,
                                 const int* kv_src, int layer, size_t layer_stride, int T, int NH, int NKV) {
    constexpr int S = kStride<D>, MT = kFwdRowTiles, N = kFwdKeys<D>;
    bf16* Qs = rkv::dynamic_smem<bf16>();  // (kFwdRows, D + 8)     this block's queries
    bf16* Ks = Qs + kFwdRows * S;          // (2, N, D + 8)         key tiles, two stages
    bf16* Vs = Ks + 2 * N * S;             // (2, N, D + 8)         value tiles

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kFwdRows;  // the longest rows start first
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int w0 = q0 + 16 * MT * warp;              // the warp's first query
    const size_t qh = (size_t(b) * T * NH + h) * D;  // this head's (T, D) slice of q, out
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale_log2 = kLog2e / sqrtf(float(D));
    const int tiles = (min(q0 + kFwdRows, T) + N - 1) / N;  // key tiles up to the last query

    load_tile<kFwdRows, D>(Qs, q + qh, q0, T, NH * D);
    load_tile<N, D>(Ks, k_all + kvh_at, 0, T, NKV * D);
    load_tile<N, D>(Vs, v_all + kvh_at, 0, T, NKV * D);
    mma::cp_async_commit();

    float o[MT][D / 8][4] = {};  // O, unnormalized
    float m[MT][2], l[MT][2];    // rows g, g + 8: running max (log2 units), this lane's part of the row sum
    RKV_UNROLL
    for (int mi = 0; mi < MT; mi++) {
        RKV_UNROLL
        for (int hf = 0; hf < 2; hf++) m[mi][hf] = -INFINITY, l[mi][hf] = 0.0f;
    }

    // Key tile 0 comes first and holds key 0, which every row sees: m is finite from then on.
    for (int it = 0; it < tiles; it++) {
        const int j0 = it * N, stage = it % 2;
        if (it + 1 < tiles) {  // the other stage was freed by the barrier that ended it - 1
            load_tile<N, D>(Ks + (1 - stage) * N * S, k_all + kvh_at, j0 + N, T, NKV * D);
            load_tile<N, D>(Vs + (1 - stage) * N * S, v_all + kvh_at, j0 + N, T, NKV * D);
        }
        mma::cp_async_commit();
        mma::cp_async_wait<1>();
        __syncthreads();

        if (j0 <= w0 + 16 * MT - 1) {  // a key the warp's last query sees
            float s[MT][N / 8][4] = {};
            mma_abt<D, MT, N>(s, Qs + (w0 - q0) * S, Ks + stage * N * S, lane);

            if (j0 + N - 1 > w0) {  // the tile crosses the warp's diagonal
                RKV_UNROLL
                for (int mi = 0; mi < MT; mi++) {
                    RKV_UNROLL
                    for (int ni = 0; ni < N / 8; ni++) {
                        RKV_UNROLL
                        for (int e = 0; e < 4; e++)
                            if (j0 + 8 * ni + 2 * t + e % 2 > w0 + 16 * mi + g + 8 * (e / 2)) s[mi][ni][e] = -INFINITY;
                    }
                }
            }

            // Online softmax: the new row max, what came before rescaled to it, this tile's P.
            RKV_UNROLL
            for (int mi = 0; mi < MT; mi++) {
                RKV_UNROLL
                for (int hf = 0; hf < 2; hf++) {
                    float row_max = -INFINITY;
                    RKV_UNROLL
                    for (int ni = 0; ni < N / 8; ni++)
                        row_max = fmaxf(row_max, fmaxf(s[mi][ni][2 * hf], s[mi][ni][2 * hf + 1]));
                    const float m_new = fmaxf(m[mi][hf], group_max(row_max) * scale_log2);
                    const float rescale = exp2f(m[mi][hf] - m_new);
                    m[mi][hf] = m_new;
                    l[mi][hf] *= rescale;
                    RKV_UNROLL
                    for (int di = 0; di < D / 8; di++) o[mi][di][2 * hf] *= rescale, o[mi][di][2 * hf + 1] *= rescale;
                    RKV_UNROLL
                    for (int ni = 0; ni < N / 8; ni++) {
                        RKV_UNROLL
                        for (int e = 2 * hf; e < 2 * hf + 2; e++) {
                            const float p = exp2f(fmaf(s[mi][ni][e], scale_log2, -m_new));
                            s[mi][ni][e] = p;
                            l[mi][hf] += p;
                        }
                    }
                }
            }

            mma_pb<D, MT, N>(o, s, Vs + stage * N * S, lane);  // O += P V
        }
        __syncthreads();  // this stage is loaded again next
    }

    RKV_UNROLL
    for (int mi = 0; mi < MT; mi++) {
        RKV_UNROLL
        for (int hf = 0; hf < 2; hf++) {
            const int row = w0 + 16 * mi + g + 8 * hf;
            const float sum = group_sum(l[mi][hf]);
            if (row >= T) continue;
            bf16* o_row = out + qh + size_t(row) * NH * D;
            RKV_UNROLL
            for (int di = 0; di < D / 8; di++)
                *reinterpret_cast<__nv_bfloat162*>(o_row + 8 * di + 2 * t) =
                    __floats2bfloat162_rn(o[mi][di][2 * hf] / sum, o[mi][di][2 * hf + 1] / sum);
            if (t == 0) lse[(size_t(b) * NH + h) * T + row] = (m[mi][hf] + log2f(sum)) * kLn2;
        }
    }
}

// ---- Backward: dQ ------------------------------------------------------------------------------
// grid (ceil(T / kTile), NH, B), kThreads threads. Warp w: queries q0 + 16 w .. + 15; lane (g, t)
// rows +g, +g+8, keys and dims 2t, 2t+1 of each n8 tile.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_backward_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k_all, const bf16* v_all,
                                     const float* lse, const float* Dvec, const int* kv_src, int layer,
                                     size_t layer_stride, int T, int NH, int NKV) {
    constexpr int S = kStride<D>;
    bf16* Qs = rkv::dynamic_smem<bf16>();  // (kTile, D + 8)       this block's queries
    bf16* dOs = Qs + kTile * S;            // (kTile, D + 8)       their output gradients
    bf16* Ks = dOs + kTile * S;            // (2, kTile, D + 8)    key tiles, two stages
    bf16* Vs = Ks + 2 * kTile * S;         // (2, kTile, D + 8)    value tiles

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int w0 = q0 + 16 * warp;
    const size_t qh = (size_t(b) * T * NH + h) * D;
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale = 1.0f / sqrtf(float(D)), scale_log2 = kLog2e * scale;
    const int tiles = (min(q0 + kTile, T) + kTile - 1) / kTile;

    load_tile<kTile, D>(Qs, q + qh, q0, T, NH * D);
    load_tile<kTile, D>(dOs, dout + qh, q0, T, NH * D);
    load_tile<kTile, D>(Ks, k_all + kvh_at, 0, T, NKV * D);
    load_tile<kTile, D>(Vs, v_all + kvh_at, 0, T, NKV * D);
    mma::cp_async_commit();

    float lse2[2], Di[2];  // rows g, g + 8: lse in log2 units, D
    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int row = w0 + g + 8 * hf;
        const size_t at = (size_t(b) * NH + h) * T + row;
        lse2[hf] = row < T ? lse[at] * kLog2e : 0.0f;
        Di[hf] = row < T ? Dvec[at] : 0.0f;
    }

    float dq_acc[1][D / 8][4] = {};  // dS K
    for (int it = 0; it < tiles; it++) {
        const int j0 = it * kTile, stage = it % 2;
        if (it + 1 < tiles) {
            load_tile<kTile, D>(Ks + (1 - stage) * kTile * S, k_all + kvh_at, j0 + kTile, T, NKV * D);
            load_tile<kTile, D>(Vs + (1 - stage) * kTile * S, v_all + kvh_at, j0 + kTile, T, NKV * D);
        }
        mma::cp_async_commit();
        mma::cp_async_wait<1>();
        __syncthreads();

        if (j0 <= w0 + 15) {
            const bf16* Kt = Ks + stage * kTile * S;
            float s[1][kTile / 8][4] = {}, dp[1][kTile / 8][4] = {};
            mma_abt<D, 1, kTile>(s, Qs + (w0 - q0) * S, Kt, lane);                        // S = Q K^T
            mma_abt<D, 1, kTile>(dp, dOs + (w0 - q0) * S, Vs + stage * kTile * S, lane);  // dP = dO V^T

            // dS = P (dP - D), P = exp2(s - lse), zero past the diagonal; into s
            RKV_UNROLL
            for (int ni = 0; ni < kTile / 8; ni++) {
                RKV_UNROLL
                for (int e = 0; e < 4; e++) {
                    const int key = j0 + 8 * ni + 2 * t + e % 2, row = w0 + g + 8 * (e / 2);
                    const float p = key <= row ? exp2f(fmaf(s[0][ni][e], scale_log2, -lse2[e / 2])) : 0.0f;
                    s[0][ni][e] = p * (dp[0][ni][e] - Di[e / 2]);
                }
            }
            mma_pb<D, 1, kTile>(dq_acc, s, Kt, lane);  // dQ += dS K
        }
        __syncthreads();
    }

    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int row = w0 + g + 8 * hf;
        if (row >= T) continue;
        bf16* dq_row = dq + qh + size_t(row) * NH * D;
        RKV_UNROLL
        for (int di = 0; di < D / 8; di++)
            put_pair(dq_row, 8 * di + 2 * t, scale, dq_acc[0][di][2 * hf], dq_acc[0][di][2 * hf + 1], false);
    }
}

// ---- Backward: dK, dV -----------------------------------------------------------------------------
// grid (ceil(T / kTile), NKV, B), kThreads threads. Warp w: keys j0 + 16 w .. + 15; lane (g, t)
// rows (keys) +g, +g+8, queries and dims 2t, 2t+1 of each n8 tile.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_backward_dkdv_kernel(bf16* dk_all, bf16* dv_all, bool accumulate, const bf16* dout, const bf16* q,
                                       const bf16* k_all, const bf16* v_all, const float* lse, const float* Dvec,
                                       const int* kv_src, int layer, size_t layer_stride, int T, int NH, int NKV) {
    constexpr int S = kStride<D>;
    bf16* Ks = rkv::dynamic_smem<bf16>();                          // (kTile, D + 8)       this block's keys
    bf16* Vs = Ks + kTile * S;                                     // (kTile, D + 8)       their values
    bf16* Qs = Vs + kTile * S;                                     // (2, kTile, D + 8)    query tiles, two stages
    bf16* dOs = Qs + 2 * kTile * S;                                // (2, kTile, D + 8)    their output gradients
    float* lse_s = reinterpret_cast<float*>(dOs + 2 * kTile * S);  // (2, kTile) lse of the queries, log2 units
    float* D_s = lse_s + 2 * kTile;                                // (2, kTile) D of the queries

    const int b = blockIdx.z, kvh = blockIdx.y, group = NH / NKV;
    const int j0 = blockIdx.x * kTile;  // the first key tiles see the most queries: they start first
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int w0 = j0 + 16 * warp;  // the warp's first key
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * D;
    const float scale = 1.0f / sqrtf(float(D)), scale_log2 = kLog2e * scale;
    const int q_tiles = (T - j0 + kTile - 1) / kTile;  // query tiles i0 = j0, j0 + kTile, ... of each head
    const int steps = group * q_tiles;

    // Step it: query head kvh * group + it / q_tiles, queries j0 + (it % q_tiles) kTile ..
    auto load_step = [&](int it, int stage) {
        const int h = kvh * group + it / q_tiles, i0 = j0 + it % q_tiles * kTile;
        const size_t qh = (size_t(b) * T * NH + h) * D;
        load_tile<kTile, D>(Qs + stage * kTile * S, q + qh, i0, T, NH * D);
        load_tile<kTile, D>(dOs + stage * kTile * S, dout + qh, i0, T, NH * D);
        if (threadIdx.x < kTile) {  // read after the barrier that follows this step's wait
            const int row = i0 + threadIdx.x;
            const size_t at = (size_t(b) * NH + h) * T + row;
            lse_s[stage * kTile + threadIdx.x] = row < T ? lse[at] * kLog2e : 0.0f;
            D_s[stage * kTile + threadIdx.x] = row < T ? Dvec[at] : 0.0f;
        }
    };

    load_tile<kTile, D>(Ks, k_all + kvh_at, j0, T, NKV * D);
    load_tile<kTile, D>(Vs, v_all + kvh_at, j0, T, NKV * D);
    load_step(0, 0);
    mma::cp_async_commit();

    float dk_acc[1][D / 8][4] = {}, dv_acc[1][D / 8][4] = {};  // dS^T Q, P^T dO
    for (int it = 0; it < steps; it++) {
        const int i0 = j0 + it % q_tiles * kTile, stage = it % 2;
        if (it + 1 < steps) load_step(it + 1, 1 - stage);
        mma::cp_async_commit();
        mma::cp_async_wait<1>();
        __syncthreads();

        const bf16* Qt = Qs + stage * kTile * S;
        const bf16* dOt = dOs + stage * kTile * S;
        const float* lse_t = lse_s + stage * kTile;
        const float* D_t = D_s + stage * kTile;
        float st[1][kTile / 8][4] = {}, dpt[1][kTile / 8][4] = {};
        mma_abt<D, 1, kTile>(st, Ks + (w0 - j0) * S, Qt, lane);    // S^T = K Q^T
        mma_abt<D, 1, kTile>(dpt, Vs + (w0 - j0) * S, dOt, lane);  // dP^T = V dO^T

        // P^T = exp2(s - lse) and dS^T = P^T (dP^T - D), zero where the query precedes the key or is past T
        const bool masked = i0 < w0 + 15 || i0 + kTile > T;
        RKV_UNROLL
        for (int ni = 0; ni < kTile / 8; ni++) {
            RKV_UNROLL
            for (int e = 0; e < 4; e++) {
                const int qi = 8 * ni + 2 * t + e % 2, query = i0 + qi, key = w0 + g + 8 * (e / 2);
                const float p =
                    !masked || (query >= key && query < T) ? exp2f(fmaf(st[0][ni][e], scale_log2, -lse_t[qi])) : 0.0f;
                st[0][ni][e] = p;
                dpt[0][ni][e] = p * (dpt[0][ni][e] - D_t[qi]);
            }
        }
        mma_pb<D, 1, kTile>(dv_acc, st, dOt, lane);  // dV += P^T dO
        mma_pb<D, 1, kTile>(dk_acc, dpt, Qt, lane);  // dK += dS^T Q
        __syncthreads();
    }

    RKV_UNROLL
    for (int hf = 0; hf < 2; hf++) {
        const int key = w0 + g + 8 * hf;
        if (key >= T) continue;
        const size_t at = kvh_at + size_t(key) * NKV * D;
        RKV_UNROLL
        for (int di = 0; di < D / 8; di++) {
            put_pair(dk_all + at, 8 * di + 2 * t, scale, dk_acc[0][di][2 * hf], dk_acc[0][di][2 * hf + 1], accumulate);
            put_pair(dv_all + at, 8 * di + 2 * t, 1.0f, dv_acc[0][di][2 * hf], dv_acc[0][di][2 * hf + 1], accumulate);
        }
    }
}

// ---- Launchers ------------------------------------------------------------------------------------

// Shared memory of `rows` padded rows of D bf16 and `floats` floats.
constexpr size_t smem_bytes(int D, int rows, int floats = 0) {
    return size_t(rows) * (D + 8) * sizeof(bf16) + size_t(floats) * sizeof(float);
}

}  // namespace

void attention_mma_forward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    check_shape("attention_mma", a.NH, a.NKV, {a.out, a.q, a.k_all, a.v_all});
    with_head_dim<64, 128>("attention_mma", a.HS, [&](auto hs) {
        constexpr int D = decltype(hs)::value;
        if (a.B == 0 || a.T == 0) return;
        launch_kernel_big_smem(attention_mma_forward_kernel<D>, dim3(ceil_div(a.T, kFwdRows), a.NH, a.B), kThreads,
                               smem_bytes(D, kFwdRows + 4 * kFwdKeys<D>), stream, a.out, a.lse, a.q, a.k_all, a.v_all,
                               a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV);
    });
}

void attention_mma_backward(const AttentionArgs<bf16, float>& a, cudaStream_t stream) {
    check_shape("attention_mma", a.NH, a.NKV, {a.dq, a.dk_all, a.dv_all, a.dout, a.q, a.k_all, a.v_all, a.out});
    with_head_dim<64, 128>("attention_mma", a.HS, [&](auto hs) {
        constexpr int D = decltype(hs)::value;
        if (a.B == 0 || a.T == 0) return;
        StreamScratch<float> Dvec(size_t(a.B) * a.T * a.NH, stream);  // (B, NH, T)
        row_dots<D>(Dvec.get(), a.dout, a.out, a.B, a.T, a.NH, stream);
        const unsigned tiles = ceil_div(a.T, kTile);
        launch_kernel_big_smem(attention_mma_backward_dq_kernel<D>, dim3(tiles, a.NH, a.B), kThreads,
                               smem_bytes(D, 6 * kTile), stream, a.dq, a.dout, a.q, a.k_all, a.v_all, a.lse, Dvec.get(),
                               a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV);
        launch_kernel_big_smem(attention_mma_backward_dkdv_kernel<D>, dim3(tiles, a.NKV, a.B), kThreads,
                               smem_bytes(D, 6 * kTile, 4 * kTile), stream, a.dk_all, a.dv_all, a.accumulate_kv, a.dout,
                               a.q, a.k_all, a.v_all, a.lse, Dvec.get(), a.kv_src, a.layer, a.layer_stride, a.T, a.NH,
                               a.NKV);
    });
}

}  // namespace rkv::cuda
