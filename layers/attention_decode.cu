// Attention of new tokens over a KV cache (inference), in plain CUDA. Per batch b, query
// head h (reading KV head h / (NH / NKV)) and new token t at position p = pos0 + t, it
// computes what ref/attention_decode.h computes:
//
//   s_j = scale q_t . k_j   for the cache rows j = 0 .. p    // q (B, Tq, NH, HS), k (B, Tmax, NKV, HS)
//   out_t = sum_j softmax(s)_j v_j                           // out (B, Tq, NH, HS), v as k
//
// and kv_cache_write, which copies the new tokens' rows into the cache.
//
// Design: flash-decoding. Decoding (Tq = 1) leaves only B * NH rows of queries but hundreds
// to thousands of keys each, so the keys must be split, inside a block and, when the rows
// are too few for the GPU, across blocks.
//
// Inside a block: a block of kWarps warps owns a range of keys of one (t, h, b). Warp w takes
// the kKeys keys from w kKeys into the range on, then those kWarps kKeys further, and so on
// (its kKeys loads in flight together), and keeps an online softmax over them: running max m,
// running sum l and an fp32 accumulator o of the values. The lanes of a warp split the head
// dims (lane owns dims lane E .. lane E + E - 1, E = D / 32, HS padded to D = 32, 64 or 128
// with zeros; one access when HS is D and the E elements are 8 or 16 bytes), so a key row is
// one coalesced read and its dot product a warp_sum. (The query heads of a GQA group are
// separate blocks that read the same K/V rows, mostly from L2.) The warps' partials are merged
// through shared memory, warp 0 first.
//
// Across blocks: B NH Tq blocks of one row each fill the GPU when there are at least 2 per SM;
// then a block owns all of its row's keys and writes out (one kernel, no workspace). Fewer
// rows (a decode step of one sequence: 16 or 32 blocks on 132 SMs) would leave most SMs idle
// while a long cache is read, so each row's keys are cut into `splits` ranges of `range`
// keys, enough blocks for 2 per SM but at least kMinRangeKeys keys each (split_rule: from the
// shapes and the SM count only). Block (split, t, h, b) writes its merged m, l and unnormalized
// o to a workspace, and a second kernel combines a row's splits as the warps are combined. A
// row with fewer keys than the splits cover leaves its last splits empty: those blocks exit
// and the combine reads only the splits that hold keys, so no -inf partial is ever merged.
//
// Every sum has one fixed order, so results are the same bits in every run, without atomics.
// Scores are kept in log2 units: q is scaled by scale log2(e) once, and every exponential is
// an exp2.
//
// Routes as data: k_cache, v_cache are the base of all slots; the kernel adds
// kv_slot[layer] * slot_stride, read on the device.
#include "layers/attention_decode.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "layers/attention_common.cuh"
#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

using namespace attention_common;

constexpr int kWarps = 8;                     // warps of a block: they split the keys
constexpr int kThreads = 32 * kWarps;         // 256
constexpr int kKeys = 4;                      // consecutive keys a warp loads together per step
constexpr int kStepKeys = kWarps * kKeys;     // keys a block takes per step
constexpr int kMinRangeKeys = 8 * kStepKeys;  // 256: the fewest keys a split gives a block

// x = the lane's dims lane E .. lane E + E - 1 of a row, as float; zero at or past HS.
// kPacked: HS == D and the row aligned, so the E elements are one access.
template <int E, bool kPacked, class S>
__device__ __forceinline__ void load_dims(float (&x)[E], const S* row, int lane, int HS) {
    if constexpr (kPacked) {
        const Pack<S, E> p = load_pack<E>(row + lane * E);
        RKV_UNROLL
        for (int e = 0; e < E; e++) x[e] = to_float(p[e]);
    } else {
        RKV_UNROLL
        for (int e = 0; e < E; e++) x[e] = lane * E + e < HS ? to_float(row[lane * E + e]) : 0.0f;
    }
}

// ---- Attention ---------------------------------------------------------------------------
// grid (Tq splits, NH, B), kThreads threads: block (x splits + split, h, b) takes keys
// split range .. split range + range - 1 of query t = Tq - 1 - x of head h in sequence b (the
// longest rows start first). part null (splits 1, range >= pos0 + Tq): the block takes all the
// row's keys and writes out. Else it writes its partial to part (B, Tq, NH, splits, 2 + HS):
// m, l, o; a split past the row's last key writes nothing.
template <int D, bool kPacked, class S>
__global__ void __launch_bounds__(kThreads)
    attention_decode_kernel(S* out, float* part, const S* q, const S* k_cache, const S* v_cache, const int* kv_slot,
                            int layer, size_t slot_stride, int range, int Tq, int pos0, int Tmax, int NH, int NKV,
                            int HS) {
    constexpr int E = D / 32;
    __shared__ float o_s[kWarps][D];            // each warp's o
    __shared__ float m_s[kWarps], l_s[kWarps];  // and its m, l

    const int splits = gridDim.x / Tq, split = blockIdx.x % splits;
    const int t = Tq - 1 - int(blockIdx.x / splits), h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int keys = pos0 + t + 1;                             // cache rows 0 .. pos0 + t; later rows are never read
    const int lo = split * range, hi = min(keys, lo + range);  // this block's keys lo .. hi - 1
    if (lo >= keys) return;                                    // none: the combine skips this split
    const size_t row = (size_t(b) * Tq + t) * NH + h, qo = row * HS;  // this row of q and out
    const size_t kv0 = kv_block(kv_slot, layer, slot_stride) + (size_t(b) * Tmax * NKV + kvh) * HS;
    const size_t ld = size_t(NKV) * HS;  // between cache rows

    float qs[E];
    load_dims<E, kPacked>(qs, q + qo, lane, HS);
    const float scale_log2 = kLog2e / sqrtf(float(HS));
    RKV_UNROLL
    for (int e = 0; e < E; e++) qs[e] *= scale_log2;

    float m = -INFINITY;  // running max of the warp's scores (log2 units)
    float l = 0.0f;       // running sum of exp2(s - m)
    float o[E] = {};      // running sum of exp2(s - m) v, the lane's dims
    for (int j0 = lo + warp * kKeys; j0 < hi; j0 += kStepKeys) {
        // Keys j0 .. j0 + kKeys - 1: all loads first, then the dot products' warp sums. Key j0
        // is in range, so m_new is finite; those from hi on get s = -inf and p = 0.
        float s[kKeys], vs[kKeys][E];
        RKV_UNROLL
        for (int u = 0; u < kKeys; u++) {
            float ks[E] = {};
            RKV_UNROLL
            for (int e = 0; e < E; e++) vs[u][e] = 0.0f;
            if (j0 + u < hi) {
                load_dims<E, kPacked>(ks, k_cache + kv0 + size_t(j0 + u) * ld, lane, HS);
                load_dims<E, kPacked>(vs[u], v_cache + kv0 + size_t(j0 + u) * ld, lane, HS);
            }
            s[u] = 0.0f;
            RKV_UNROLL
            for (int e = 0; e < E; e++) s[u] += qs[e] * ks[e];
        }
        float m_new = m;
        RKV_UNROLL
        for (int u = 0; u < kKeys; u++) {
            s[u] = j0 + u < hi ? warp_sum(s[u]) : -INFINITY;  // j0 + u < hi is the same on every lane
            m_new = fmaxf(m_new, s[u]);
        }

        // Online softmax: rescale what came before to the new max (by 0 on the first step), add these keys.
        const float rescale = exp2f(m - m_new);
        l *= rescale;
        RKV_UNROLL
        for (int e = 0; e < E; e++) o[e] *= rescale;
        RKV_UNROLL
        for (int u = 0; u < kKeys; u++) {
            const float p = exp2f(s[u] - m_new);
            l += p;
            RKV_UNROLL
            for (int e = 0; e < E; e++) o[e] += p * vs[u][e];
        }
        m = m_new;
    }

    // Merge the warps: out = sum_w 2^(m_w - M) o_w / sum_w 2^(m_w - M) l_w, M = max_w m_w, warp 0
    // first. Warp 0 has key lo, so M is finite; a warp that got no keys (m = -inf, l = o = 0) adds 0.
    if (lane == 0) {
        m_s[warp] = m;
        l_s[warp] = l;
    }
    RKV_UNROLL
    for (int e = 0; e < E; e++) o_s[warp][lane * E + e] = o[e];
    __syncthreads();
    const int d = threadIdx.x;
    if (d < HS) {
        float M = -INFINITY;
        for (int w = 0; w < kWarps; w++) M = fmaxf(M, m_s[w]);
        float num = 0.0f, den = 0.0f;
        for (int w = 0; w < kWarps; w++) {
            const float c = exp2f(m_s[w] - M);
            num += c * o_s[w][d];
            den += c * l_s[w];
        }
        if (part) {  // this split's m, l and o, unnormalized
            float* at = part + (row * splits + split) * (2 + HS);
            if (d == 0) {
                at[0] = M;
                at[1] = den;
            }
            at[2 + d] = num;
        } else {
            out[qo + d] = from_float<S>(num / den);
        }
    }
}

// ---- Combine the splits ------------------------------------------------------------------
// grid (Tq, NH, B), HS threads: thread d of block (t, h, b) merges dim d of the row's splits
// that hold keys, in split order, as the warps are merged: out = sum_s 2^(m_s - M) o_s /
// sum_s 2^(m_s - M) l_s, M = max_s m_s. Split 0 holds key 0 and every split read holds one,
// so every m_s, and M, is finite.
template <class S>
__global__ void attention_decode_combine_kernel(S* out, const float* part, int splits, int range, int Tq, int pos0,
                                                int NH, int HS) {
    const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z, d = threadIdx.x;
    const int used = ceil_div(pos0 + t + 1, range);  // the splits with keys of this row
    const size_t row = (size_t(b) * Tq + t) * NH + h;
    const float* p = part + row * splits * (2 + HS);  // (splits, 2 + HS)
    float M = -INFINITY;
    for (int s = 0; s < used; s++) M = fmaxf(M, p[s * (2 + HS)]);
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < used; s++) {
        const float c = exp2f(p[s * (2 + HS)] - M);
        num += c * p[s * (2 + HS) + 2 + d];
        den += c * p[s * (2 + HS) + 1];
    }
    out[row * HS + d] = from_float<S>(num / den);
}

// ---- Cache write -------------------------------------------------------------------------
// One thread per W elements of src (B, Tq, width), W dividing width.
template <int W, class S>
__global__ void kv_cache_write_kernel(S* cache, const S* src, size_t packs, int Tq, int pos0, int Tmax, int width) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= packs) return;
    const size_t e = i * W, row = e / width;  // row = b Tq + t
    const size_t b = row / Tq, t = row % Tq;
    store_pack(cache + (b * Tmax + pos0 + t) * width + e % width, load_pack<W>(src + e));
}

// ---- Launchers ----------------------------------------------------------------------------

// The positions both launchers take: pos0 .. pos0 + Tq - 1 inside (Tmax) rows.
void check_positions(const char* who, int B, int Tq, int pos0, int Tmax) {
    const std::string name = who;
    if (B < 0 || Tq < 0 || pos0 < 0)
        throw std::invalid_argument(name + ": B (" + std::to_string(B) + "), Tq (" + std::to_string(Tq) +
                                    ") and pos0 (" + std::to_string(pos0) + ") must not be negative");
    if (int64_t(pos0) + Tq > Tmax)
        throw std::invalid_argument(name + ": pos0 + Tq (" + std::to_string(int64_t(pos0) + Tq) +
                                    ") is past the cache's Tmax (" + std::to_string(Tmax) + ")");
}

// Whether p is aligned to `bytes`.
bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// How the blocks share a row's keys: `splits` ranges of `range` keys, the last maybe short.
struct Split {
    int splits, range;
};

// For `rows` rows whose longest has `keys` keys: one split when the rows give 2 blocks per SM;
// else the fewest equal ranges that give 2 blocks per SM, but none under kMinRangeKeys keys
// (so one split when keys <= kMinRangeKeys).
// The SM count is read once: a process drives one GPU (one per rank), and this runs per layer
// and decode step.
Split split_rule(int64_t rows, int keys) {
    static const int sms = [] {
        int device = 0, count = 0;
        cuda_check(cudaGetDevice(&device));
        cuda_check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
        return count;
    }();
    const int64_t target = 2 * int64_t(sms);
    if (rows >= target) return {1, keys};
    const int want = int(ceil_div(target, rows));
    const int range = std::max(kMinRangeKeys, ceil_div(ceil_div(keys, want), kStepKeys) * kStepKeys);
    return {ceil_div(keys, range), range};
}

}  // namespace

template <class S>
void attention_decode_forward(const AttentionDecodeArgs<S>& a, cudaStream_t stream) {
    const int B = a.B, Tq = a.Tq, pos0 = a.pos0, Tmax = a.Tmax, NH = a.NH, NKV = a.NKV, HS = a.HS;
    S* out = a.out;
    const S *q = a.q, *k_cache = a.k_cache, *v_cache = a.v_cache;
    const int* kv_slot = a.kv_slot;
    const int layer = a.layer;
    const size_t slot_stride = a.slot_stride;
    check_positions("attention_decode_forward", B, Tq, pos0, Tmax);
    if (NH < 1) throw std::invalid_argument("attention_decode_forward: NH (" + std::to_string(NH) + ") < 1");
    check_shape("attention_decode_forward", NH, NKV);
    if (HS < 1 || HS > 128)  // as the head-dim dispatch below would, but for empty inputs too
        throw std::invalid_argument("attention_decode_forward: head dim " + std::to_string(HS) + " is not in 1 .. 128");
    if (B == 0 || Tq == 0) return;

    // The attention kernel over `splits` ranges of `range` keys, writing out (part null) or part.
    const auto attend = [&](float* part, int splits, int range) {
        const dim3 grid(Tq * splits, NH, B);
        const auto launch = [&](auto kernel) {
            launch_kernel(kernel, grid, kThreads, 0, stream, out, part, q, k_cache, v_cache, kv_slot, layer,
                          slot_stride, range, Tq, pos0, Tmax, NH, NKV, HS);
        };
        // Packed loads where a lane's E dims are 8 or 16 bytes, HS fills D and every row is aligned.
        const auto run = [&](auto padded) {
            constexpr int D = decltype(padded)::value, E = D / 32;
            constexpr size_t bytes = E * sizeof(S);
            if constexpr (bytes == 8 || bytes == 16) {
                if (HS == D && slot_stride % E == 0 && aligned(out, bytes) && aligned(q, bytes) &&
                    aligned(k_cache, bytes) && aligned(v_cache, bytes))
                    return launch(attention_decode_kernel<D, true, S>);
            }
            launch(attention_decode_kernel<D, false, S>);
        };
        with_padded_head_dim<32, 64, 128>("attention_decode_forward", HS, run);
    };

    const Split split = split_rule(int64_t(B) * NH * Tq, pos0 + Tq);
    if (split.splits == 1) return attend(nullptr, 1, pos0 + Tq);
    StreamScratch<float> part(size_t(B) * Tq * NH * split.splits * (2 + HS), stream);  // (B, Tq, NH, splits, 2 + HS)
    attend(part.get(), split.splits, split.range);
    launch_kernel(attention_decode_combine_kernel<S>, dim3(Tq, NH, B), HS, 0, stream, out, part.get(), split.splits,
                  split.range, Tq, pos0, NH, HS);
}

template <class S>
void kv_cache_write(const KvCacheWriteArgs<S>& a, cudaStream_t stream) {
    check_positions("kv_cache_write", a.B, a.Tq, a.pos0, a.Tmax);
    if (a.width < 0) throw std::invalid_argument("kv_cache_write: width " + std::to_string(a.width) + " is negative");
    const size_t n = size_t(a.B) * a.Tq * a.width;
    if (n == 0) return;

    constexpr int kBlock = 256;
    const auto launch = [&](auto kernel, int W) {
        const size_t packs = n / W;
        launch_kernel(kernel, unsigned(ceil_div(packs, size_t(kBlock))), kBlock, 0, stream, a.cache, a.src, packs, a.Tq,
                      a.pos0, a.Tmax, a.width);
    };
    if (whole_packs<S>(size_t(a.width), a.cache, a.src))
        launch(kv_cache_write_kernel<kPack<S>, S>, kPack<S>);
    else
        launch(kv_cache_write_kernel<1, S>, 1);
}

#define INSTANTIATE(S)                                                                      \
    template void attention_decode_forward<S>(const AttentionDecodeArgs<S>&, cudaStream_t); \
    template void kv_cache_write<S>(const KvCacheWriteArgs<S>&, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace rkv::cuda
