// Fused causal attention with GQA, flash-style, in plain CUDA. Per batch b and query head h,
// reading KV head h / (NH / NKV), it computes what ref/attention.h computes:
//
//   forward:   S = scale Q K^T (causal),  P = softmax(S),  O = P V,  lse = log rowsum exp(S)
//   backward:  dP = dO V^T,  D = rowsum(dO * O),  dS = P (dP - D)
//              dQ = scale dS K,  dK = scale dS^T Q,  dV = P^T dO  (dK, dV added when accumulating)
//
// A block owns one tile of kTile rows in shared memory and streams the other side's rows
// through shared memory kTile at a time, only as far as the causal mask lets them matter:
//   forward  (query tile, head, batch):   keys 0 .. its last query; a running row max and
//            row sum (online softmax) rescale O as the keys come; lse is saved.
//   dQ       (query tile, head, batch):   the same keys; P = exp(S - lse) is recomputed.
//   dK, dV   (key tile, KV head, batch):  every query head that reads this KV head, in order,
//            and within each the query tiles from the diagonal to T.
// So each element of dq, dk and dv has exactly one writer, which sums its terms in a fixed
// order: the backward is deterministic without atomics. D is recomputed from dO and O
// wherever a query row is used (HS multiply-adds per row and tile, next to 4 kTile HS for
// S, dP, dQ or dK and dV), so the backward needs no workspace.
//
// Threads: kTPR adjacent lanes share a row; lane r of a row takes the streamed rows and the
// head dims r, r + kTPR, r + 2 kTPR, ... Head dims are padded to D (16, 32, 64 or 128) with
// zeros in shared memory, so every dot product runs over D. Scores are kept in log2 units,
// s * scale * log2(e), so every exponential is an exp2.
//
// Precision (layers/common.cuh): q, k, v, out and their gradients are of the storage type S
// (T is the sequence length), lse is float; tiles are converted to float as they are
// loaded, and all math is float.
//
// Routes as data: the K/V pointers are the base of all layers' blocks; a kernel adds
// kv_src[layer] * layer_stride, read on the device (no route: offset 0).
#include "layers/attention_plain.cuh"

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "layers/attention_common.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

using namespace attention_common;

constexpr int kTile = 32;               // rows of every tile, queries or keys
constexpr int kTPR = 4;                 // threads per row
constexpr int kThreads = kTile * kTPR;  // 128
constexpr int kCols = kTile / kTPR;     // streamed rows per thread and tile: 8

// Reductions over the kTPR lanes of a row.
__device__ __forceinline__ float row_sum(float x) {
    RKV_UNROLL
    for (int lane = 1; lane < kTPR; lane *= 2) x += __shfl_xor_sync(kFullMask, x, lane);
    return x;
}
__device__ __forceinline__ float row_max(float x) {
    RKV_UNROLL
    for (int lane = 1; lane < kTPR; lane *= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, lane));
    return x;
}

// tile (kTile, D + 1) = rows row0 .. row0 + kTile - 1 of one head's (T, HS) slice, whose rows
// are ld apart; rows at or past T and columns at or past HS are zero. The extra column keeps
// a warp's reads of kTPR or 8 different rows in different banks.
template <int D, class S>
__device__ void load_tile(float* tile, const S* head, int row0, int T, int ld, int HS) {
    for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
        const int row = e / D, d = e % D;
        tile[row * (D + 1) + d] = row0 + row < T && d < HS ? to_float(head[size_t(row0 + row) * ld + d]) : 0.0f;
    }
}

// D = rowsum(dO * O) of one query row (lane r's part, then the row's sum); 0 past T.
template <class S>
__device__ __forceinline__ float row_dot(const S* dout, const S* out, bool valid, int r, int HS) {
    float x = 0.0f;
    if (valid)
        for (int d = r; d < HS; d += kTPR) x += to_float(dout[d]) * to_float(out[d]);
    return row_sum(x);
}

// ---- Forward ----------------------------------------------------------------------------
// grid (ceil(T / kTile), NH, B), kThreads threads. Thread (i, r): query row q0 + i; keys
// j0 + r + kTPR c of each key tile; output dims r + kTPR c.
template <int D, class S>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(S* out, float* lse, const S* q, const S* k_all, const S* v_all, const int* kv_src,
                             int layer, size_t layer_stride, int T, int NH, int NKV, int HS) {
    constexpr int ld = D + 1;
    float* Qs = rkv::dynamic_smem<float>();  // (kTile, D + 1)     this block's queries
    float* Ks = Qs + kTile * ld;             // (kTile, D + 1)     the current key tile
    float* Vs = Ks + kTile * ld;             // (kTile, D + 1)     its values
    float* Ps = Vs + kTile * ld;             // (kTile, kTile + 1) P of the tile, unnormalized

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;  // the longest rows start first
    const int i = threadIdx.x / kTPR, r = threadIdx.x % kTPR;
    const size_t qh = (size_t(b) * T * NH + h) * HS;  // this head's (T, HS) slice in q, out
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * HS;
    const float scale_log2 = kLog2e / sqrtf(float(HS));

    load_tile<D>(Qs, q + qh, q0, T, NH * HS, HS);
    float m = -INFINITY;     // running row max (log2 units)
    float l = 0.0f;          // running sum of exp2(s - m) over this lane's keys
    float o[D / kTPR] = {};  // O[i, r + kTPR c], unnormalized
    // Key tiles up to the diagonal one; each has a key at or before every row's query, and
    // the first has key 0, so m is finite from the first tile on.
    for (int j0 = 0; j0 <= q0; j0 += kTile) {
        load_tile<D>(Ks, k_all + kvh_at, j0, T, NKV * HS, HS);
        load_tile<D>(Vs, v_all + kvh_at, j0, T, NKV * HS, HS);
        __syncthreads();

        // s (kCols) = S[i, r + kTPR c] in log2 units, -inf past the diagonal
        float s[kCols] = {};
        for (int d = 0; d < D; d++) {
            const float qd = Qs[i * ld + d];
            RKV_UNROLL
            for (int c = 0; c < kCols; c++) s[c] += qd * Ks[(r + kTPR * c) * ld + d];
        }
        float tile_max = -INFINITY;
        RKV_UNROLL
        for (int c = 0; c < kCols; c++) {
            s[c] = j0 + r + kTPR * c <= q0 + i ? s[c] * scale_log2 : -INFINITY;
            tile_max = fmaxf(tile_max, s[c]);
        }

        // Online softmax: rescale what came before to the new max, add this tile's P.
        const float m_new = fmaxf(m, row_max(tile_max));
        const float rescale = exp2f(m - m_new);
        l *= rescale;
        RKV_UNROLL
        for (int c = 0; c < D / kTPR; c++) o[c] *= rescale;
        RKV_UNROLL
        for (int c = 0; c < kCols; c++) {
            const float p = exp2f(s[c] - m_new);
            l += p;
            Ps[i * (kTile + 1) + r + kTPR * c] = p;
        }
        m = m_new;
        __syncwarp();  // a row's P comes from its kTPR lanes, all in one warp

        // O[i, :] += P[i, :] V
        for (int j = 0; j < kTile; j++) {
            const float p = Ps[i * (kTile + 1) + j];
            RKV_UNROLL
            for (int c = 0; c < D / kTPR; c++) o[c] += p * Vs[j * ld + r + kTPR * c];
        }
        __syncthreads();  // Ks, Vs and Ps are overwritten next
    }

    l = row_sum(l);
    if (q0 + i < T) {
        S* o_row = out + qh + size_t(q0 + i) * NH * HS;
        RKV_UNROLL
        for (int c = 0; c < D / kTPR; c++)
            if (r + kTPR * c < HS) o_row[r + kTPR * c] = from_float<S>(o[c] / l);
        if (r == 0) lse[(size_t(b) * NH + h) * T + q0 + i] = (m + log2f(l)) * kLn2;
    }
}

// ---- Backward: dQ -------------------------------------------------------------------------
// grid (ceil(T / kTile), NH, B), kThreads threads. Thread (i, r): query row q0 + i; keys
// j0 + r + kTPR c of each key tile; dQ dims r + kTPR c.
template <int D, class S>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(S* dq, const S* dout, const S* q, const S* k_all, const S* v_all, const S* out,
                                 const float* lse, const int* kv_src, int layer, size_t layer_stride, int T, int NH,
                                 int NKV, int HS) {
    constexpr int ld = D + 1;
    float* Qs = rkv::dynamic_smem<float>();  // (kTile, D + 1)     this block's queries
    float* dOs = Qs + kTile * ld;            // (kTile, D + 1)     their output gradients
    float* Ks = dOs + kTile * ld;            // (kTile, D + 1)     the current key tile
    float* Vs = Ks + kTile * ld;             // (kTile, D + 1)     its values
    float* dSs = Vs + kTile * ld;            // (kTile, kTile + 1) dS of the tile

    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (NH / NKV);
    const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
    const int i = threadIdx.x / kTPR, r = threadIdx.x % kTPR;
    const size_t qh = (size_t(b) * T * NH + h) * HS;
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * HS;
    const float scale = 1.0f / sqrtf(float(HS)), scale_log2 = kLog2e * scale;

    load_tile<D>(Qs, q + qh, q0, T, NH * HS, HS);
    load_tile<D>(dOs, dout + qh, q0, T, NH * HS, HS);
    const bool valid = q0 + i < T;
    const size_t row = qh + size_t(q0 + i) * NH * HS;
    const float Di = row_dot(dout + row, out + row, valid, r, HS);
    const float lse_i = valid ? lse[(size_t(b) * NH + h) * T + q0 + i] * kLog2e : 0.0f;  // log2 units

    float dq_acc[D / kTPR] = {};  // dS K, dims r + kTPR c
    for (int j0 = 0; j0 <= q0; j0 += kTile) {
        load_tile<D>(Ks, k_all + kvh_at, j0, T, NKV * HS, HS);
        load_tile<D>(Vs, v_all + kvh_at, j0, T, NKV * HS, HS);
        __syncthreads();

        // s, dp (kCols) = S[i, r + kTPR c] (log2 units), dP[i, r + kTPR c]
        float s[kCols] = {}, dp[kCols] = {};
        for (int d = 0; d < D; d++) {
            const float qd = Qs[i * ld + d], dod = dOs[i * ld + d];
            RKV_UNROLL
            for (int c = 0; c < kCols; c++) {
                s[c] += qd * Ks[(r + kTPR * c) * ld + d];
                dp[c] += dod * Vs[(r + kTPR * c) * ld + d];
            }
        }
        // dS = P (dP - D), P = exp2(s - lse), zero past the diagonal
        RKV_UNROLL
        for (int c = 0; c < kCols; c++) {
            const float p = j0 + r + kTPR * c <= q0 + i ? exp2f(s[c] * scale_log2 - lse_i) : 0.0f;
            dSs[i * (kTile + 1) + r + kTPR * c] = p * (dp[c] - Di);
        }
        __syncwarp();

        // dQ[i, :] += dS[i, :] K
        for (int j = 0; j < kTile; j++) {
            const float ds = dSs[i * (kTile + 1) + j];
            RKV_UNROLL
            for (int c = 0; c < D / kTPR; c++) dq_acc[c] += ds * Ks[j * ld + r + kTPR * c];
        }
        __syncthreads();
    }

    if (valid) {
        RKV_UNROLL
        for (int c = 0; c < D / kTPR; c++)
            if (r + kTPR * c < HS) {
                dq[row + r + kTPR * c] = from_float<S>(scale * dq_acc[c]);
            }
    }
}

// ---- Backward: dK, dV -----------------------------------------------------------------------
// grid (ceil(T / kTile), NKV, B), kThreads threads. Thread (j, r): key row j0 + j; queries
// i0 + r + kTPR c of each query tile; dK, dV dims r + kTPR c. (To fetch a query tile's lse
// and D, the kTPR lanes of row j take query row i0 + j.)
template <int D, class S>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(S* dk_all, S* dv_all, bool accumulate, const S* dout, const S* q, const S* k_all,
                                   const S* v_all, const S* out, const float* lse, const int* kv_src, int layer,
                                   size_t layer_stride, int T, int NH, int NKV, int HS) {
    constexpr int ld = D + 1;
    float* Ks = rkv::dynamic_smem<float>();    // (kTile, D + 1)     this block's keys
    float* Vs = Ks + kTile * ld;               // (kTile, D + 1)     their values
    float* Qs = Vs + kTile * ld;               // (kTile, D + 1)     the current query tile
    float* dOs = Qs + kTile * ld;              // (kTile, D + 1)     its output gradients
    float* Pt = dOs + kTile * ld;              // (kTile, kTile + 1) P^T of the tile
    float* dSt = Pt + kTile * (kTile + 1);     // (kTile, kTile + 1) dS^T of the tile
    float* lse_s = dSt + kTile * (kTile + 1);  // (kTile) lse of the query tile, log2 units
    float* D_s = lse_s + kTile;                // (kTile) D of the query tile

    const int b = blockIdx.z, kvh = blockIdx.y, group = NH / NKV;
    const int j0 = blockIdx.x * kTile;  // the first key tiles see the most queries: they start first
    const int j = threadIdx.x / kTPR, r = threadIdx.x % kTPR;
    const size_t kvh_at = kv_block(kv_src, layer, layer_stride) + (size_t(b) * T * NKV + kvh) * HS;
    const float scale = 1.0f / sqrtf(float(HS)), scale_log2 = kLog2e * scale;

    load_tile<D>(Ks, k_all + kvh_at, j0, T, NKV * HS, HS);
    load_tile<D>(Vs, v_all + kvh_at, j0, T, NKV * HS, HS);
    float dk_acc[D / kTPR] = {}, dv_acc[D / kTPR] = {};  // dS^T Q, P^T dO, dims r + kTPR c
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const size_t qh = (size_t(b) * T * NH + h) * HS;
        for (int i0 = j0; i0 < T; i0 += kTile) {
            load_tile<D>(Qs, q + qh, i0, T, NH * HS, HS);
            load_tile<D>(dOs, dout + qh, i0, T, NH * HS, HS);
            const bool valid = i0 + j < T;
            const size_t row = qh + size_t(i0 + j) * NH * HS;
            const float Dj = row_dot(dout + row, out + row, valid, r, HS);
            if (r == 0) {
                D_s[j] = Dj;
                lse_s[j] = valid ? lse[(size_t(b) * NH + h) * T + i0 + j] * kLog2e : 0.0f;
            }
            __syncthreads();

            // s, dp (kCols) = S[r + kTPR c, j] (log2 units), dP[r + kTPR c, j]
            float s[kCols] = {}, dp[kCols] = {};
            for (int d = 0; d < D; d++) {
                const float kd = Ks[j * ld + d], vd = Vs[j * ld + d];
                RKV_UNROLL
                for (int c = 0; c < kCols; c++) {
                    s[c] += Qs[(r + kTPR * c) * ld + d] * kd;
                    dp[c] += dOs[(r + kTPR * c) * ld + d] * vd;
                }
            }
            // P, dS of query rows i = r + kTPR c; zero where the query precedes the key or is past T
            RKV_UNROLL
            for (int c = 0; c < kCols; c++) {
                const int i = r + kTPR * c;
                const float p = i0 + i < T && j0 + j <= i0 + i ? exp2f(s[c] * scale_log2 - lse_s[i]) : 0.0f;
                Pt[j * (kTile + 1) + i] = p;
                dSt[j * (kTile + 1) + i] = p * (dp[c] - D_s[i]);
            }
            __syncwarp();

            // dV[j, :] += P^T[j, :] dO,  dK[j, :] += dS^T[j, :] Q
            for (int i = 0; i < kTile; i++) {
                const float p = Pt[j * (kTile + 1) + i], ds = dSt[j * (kTile + 1) + i];
                RKV_UNROLL
                for (int c = 0; c < D / kTPR; c++) {
                    dv_acc[c] += p * dOs[i * ld + r + kTPR * c];
                    dk_acc[c] += ds * Qs[i * ld + r + kTPR * c];
                }
            }
            __syncthreads();
        }
    }

    if (j0 + j < T) {
        const size_t row = kvh_at + size_t(j0 + j) * NKV * HS;
        S* dk_row = dk_all + row;
        S* dv_row = dv_all + row;
        RKV_UNROLL
        for (int c = 0; c < D / kTPR; c++)
            if (r + kTPR * c < HS) {
                S& dk = dk_row[r + kTPR * c];
                S& dv = dv_row[r + kTPR * c];
                dk = from_float<S>(scale * dk_acc[c] + (accumulate ? to_float(dk) : 0.0f));
                dv = from_float<S>(dv_acc[c] + (accumulate ? to_float(dv) : 0.0f));
            }
    }
}

// ---- Launchers --------------------------------------------------------------------------------

// Shared memory of the kernels: (kTile, D + 1) tiles, (kTile, kTile + 1) P or dS tiles.
constexpr size_t tiles_bytes(int D, int tiles, int score_tiles, int vectors) {
    return (size_t(tiles) * kTile * (D + 1) + size_t(score_tiles) * kTile * (kTile + 1) + size_t(vectors) * kTile) *
           sizeof(float);
}

}  // namespace

template <class S>
void attention_plain_forward(const AttentionArgs<S, float>& a, cudaStream_t stream) {
    check_shape("attention_plain", a.NH, a.NKV);
    // Head dims padded to D = 16, 32, 64 or 128 (zeros in shared memory).
    with_padded_head_dim<16, 32, 64, 128>("attention_plain", a.HS, [&](auto padded) {
        constexpr int D = decltype(padded)::value;
        if (a.B == 0 || a.T == 0) return;
        const dim3 grid((a.T + kTile - 1) / kTile, a.NH, a.B);
        launch_kernel_big_smem(attention_forward_kernel<D, S>, grid, kThreads, tiles_bytes(D, 3, 1, 0), stream, a.out,
                               a.lse, a.q, a.k_all, a.v_all, a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV, a.HS);
    });
}

template <class S>
void attention_plain_backward(const AttentionArgs<S, float>& a, cudaStream_t stream) {
    check_shape("attention_plain", a.NH, a.NKV);
    with_padded_head_dim<16, 32, 64, 128>("attention_plain", a.HS, [&](auto padded) {
        constexpr int D = decltype(padded)::value;
        if (a.B == 0 || a.T == 0) return;
        const unsigned tiles = (a.T + kTile - 1) / kTile;
        launch_kernel_big_smem(attention_backward_dq_kernel<D, S>, dim3(tiles, a.NH, a.B), kThreads,
                               tiles_bytes(D, 4, 1, 0), stream, a.dq, a.dout, a.q, a.k_all, a.v_all, a.out, a.lse,
                               a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV, a.HS);
        launch_kernel_big_smem(attention_backward_dkdv_kernel<D, S>, dim3(tiles, a.NKV, a.B), kThreads,
                               tiles_bytes(D, 4, 2, 2), stream, a.dk_all, a.dv_all, a.accumulate_kv, a.dout, a.q,
                               a.k_all, a.v_all, a.out, a.lse, a.kv_src, a.layer, a.layer_stride, a.T, a.NH, a.NKV,
                               a.HS);
    });
}

template void attention_plain_forward<float>(const AttentionArgs<float, float>&, cudaStream_t);
template void attention_plain_backward<float>(const AttentionArgs<float, float>&, cudaStream_t);
template void attention_plain_forward<__nv_bfloat16>(const AttentionArgs<__nv_bfloat16, float>&, cudaStream_t);
template void attention_plain_backward<__nv_bfloat16>(const AttentionArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
