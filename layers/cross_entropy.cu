// Softmax cross-entropy over the vocabulary, forward and backward (ref/cross_entropy.h),
// and the fused classifier, without ever storing the probabilities.
//   logits, dlogits (N, V), rows ld apart; targets, losses (N); target -1: loss 0, no gradient
//
// One block per row. The row's softmax statistics, the max m and s = sum exp(x - m),
// come from one pass: each thread keeps a running (m, s) over its strided elements
// (rescaling s when m grows, the online softmax), then the pairs are merged across the
// warp with shuffles and across warps through shared memory. Then
//   loss = (m - x[target]) + log s,   dlogit_i = (exp(x_i - m) / s - [i == target]) dloss
// so forward reads the row once, backward twice, and the fused classifier reads it twice
// and writes the gradient over the logits in the second pass. (The loss's terms in that order:
// m - x[target] is exact for bf16 logits, where m + log s would first round at their magnitude,
// which is all of a small loss.)
//
// The passes move 16-byte packs (layers/common.cuh). Rows need not start on a 16-byte
// boundary (the unpadded GPT-2 vocabulary, 50257, puts them at every alignment), so each row
// is split where it is: single elements up to the first boundary, aligned packs, and the
// elements after the last whole pack. The split depends only on V and where the buffer
// starts, so each thread's order of additions is the same on every run.
#include "layers/cross_entropy.cuh"

#include <stdexcept>
#include <string>

#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 512;

struct SoftmaxStats {
    float m, s;  // running max, and sum of exp(x - m)
};

__device__ __forceinline__ SoftmaxStats merge(SoftmaxStats a, SoftmaxStats b) {
    const float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return {m, 0.0f};  // both empty: exp(-inf - -inf) would be NaN
    return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// Merges the 32 lanes' statistics. merge() is symmetric in its arguments, so the
// butterfly leaves the same bits in every lane.
__device__ __forceinline__ SoftmaxStats warp_merge(SoftmaxStats st) {
    for (int offset = 16; offset > 0; offset /= 2) {
        const SoftmaxStats other{__shfl_xor_sync(kFullMask, st.m, offset), __shfl_xor_sync(kFullMask, st.s, offset)};
        st = merge(st, other);
    }
    return st;
}

// Row x (V) as [0, head) one element at a time, [head, body_end) in aligned packs, and
// [body_end, V) one element at a time (head < kPack<S>, as is V - body_end).
struct RowSplit {
    int head, body_end;
};

template <class S>
__device__ __forceinline__ RowSplit split_row(const S* x, int V) {
    const int to_boundary = int((16 - reinterpret_cast<uintptr_t>(x) % 16) % 16 / sizeof(S));
    const int head = min(V, to_boundary);
    return {head, head + (V - head) / kPack<S> * kPack<S>};
}

// Calls f(i, x[i]) for this thread's elements of row x (V), x[i] as float.
template <class S, class F>
__device__ __forceinline__ void visit_row(const S* x, int V, F f) {
    constexpr int W = kPack<S>;
    const RowSplit r = split_row(x, V);
    for (int i = threadIdx.x; i < r.head; i += blockDim.x) f(i, to_float(x[i]));
    for (int i = r.head + threadIdx.x * W; i < r.body_end; i += blockDim.x * W) {
        const Pack<S, W> p = load_pack<W>(x + i);
        for (int k = 0; k < W; k++) f(i + k, to_float(p[k]));
    }
    for (int i = r.body_end + threadIdx.x; i < V; i += blockDim.x) f(i, to_float(x[i]));
}

// x[i] = f(i, x[i]) for this thread's elements of row x (V), in float. The row is read for
// the last time here: streaming loads.
template <class S, class F>
__device__ __forceinline__ void update_row(S* x, int V, F f) {
    constexpr int W = kPack<S>;
    const RowSplit r = split_row(x, V);
    for (int i = threadIdx.x; i < r.head; i += blockDim.x) x[i] = from_float<S>(f(i, to_float(x[i])));
    for (int i = r.head + threadIdx.x * W; i < r.body_end; i += blockDim.x * W) {
        Pack<S, W> p = load_pack_cs<W>(x + i);
        for (int k = 0; k < W; k++) p[k] = from_float<S>(f(i + k, to_float(p[k])));
        store_pack(x + i, p);
    }
    for (int i = r.body_end + threadIdx.x; i < V; i += blockDim.x) x[i] = from_float<S>(f(i, to_float(x[i])));
}

// The statistics of row x (V) over the whole block, the same bits in every thread. Ends
// with a barrier that every thread reaches after reading its elements.
template <class S>
__device__ SoftmaxStats row_stats(const S* x, int V) {
    __shared__ SoftmaxStats warp_stats[32];
    SoftmaxStats st{-INFINITY, 0.0f};
    visit_row(x, V, [&](int, float v) {  // merge(st, {v, 1}) with one exp
        if (v > st.m) {
            st.s = st.s * expf(st.m - v) + 1.0f;
            st.m = v;
        } else {
            st.s += expf(v - st.m);
        }
    });
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    st = warp_merge(st);
    if (lane == 0) warp_stats[warp] = st;
    __syncthreads();
    return warp_merge(lane < warps ? warp_stats[lane] : SoftmaxStats{-INFINITY, 0.0f});
}

// d loss / d x_i, scaled by dloss; scale = dloss / s.
__device__ __forceinline__ float dlogit(float x, SoftmaxStats st, float scale, bool is_target, float dloss) {
    return expf(x - st.m) * scale - (is_target ? dloss : 0.0f);
}

template <class S>
__global__ void cross_entropy_forward_kernel(float* losses, const S* logits, const int* targets, int V, int ld) {
    const int n = blockIdx.x, target = targets[n];
    if (target < 0) {  // the whole block leaves: no barrier is left waiting
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const S* x = logits + size_t(n) * ld;
    const SoftmaxStats st = row_stats(x, V);
    if (threadIdx.x == 0) losses[n] = (st.m - to_float(x[target])) + logf(st.s);
}

template <class S>
__global__ void cross_entropy_backward_kernel(S* dlogits, const S* logits, const int* targets, float dloss, int V,
                                              int ld) {
    const int n = blockIdx.x, target = targets[n];
    if (target < 0) return;
    const S* x = logits + size_t(n) * ld;
    const SoftmaxStats st = row_stats(x, V);
    const float scale = dloss / st.s;
    // d in packs; x by element, as its rows may sit at other alignments than d's (training
    // uses the fused classifier, not this kernel).
    update_row(dlogits + size_t(n) * ld, V,
               [&](int i, float d) { return d + dlogit(to_float(x[i]), st, scale, i == target, dloss); });
}

template <class S>
__global__ void fused_classifier_kernel(S* logits_dlogits, float* losses, const int* targets, float dloss, int V,
                                        int ld) {
    const int n = blockIdx.x, target = targets[n];
    S* x = logits_dlogits + size_t(n) * ld;
    if (target < 0) {
        update_row(x, V, [](int, float) { return 0.0f; });
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    // Read before row_stats' barrier: after it, some thread overwrites x[target].
    const float x_target = to_float(x[target]);
    const SoftmaxStats st = row_stats(x, V);
    if (threadIdx.x == 0) losses[n] = (st.m - x_target) + logf(st.s);
    const float scale = dloss / st.s;
    update_row(x, V, [&](int i, float v) { return dlogit(v, st, scale, i == target, dloss); });
}

void check_stride(const char* what, int V, int ld) {
    if (ld < V)
        throw std::invalid_argument(std::string(what) + ": row stride " + std::to_string(ld) + " < V " +
                                    std::to_string(V));
}

}  // namespace

template <class S>
void cross_entropy_forward(const CrossEntropyArgs<S, float>& a, cudaStream_t stream) {
    check_stride("cross_entropy_forward", a.V, a.row_stride());
    if (a.N == 0) return;
    launch_kernel(cross_entropy_forward_kernel<S>, a.N, kBlock, 0, stream, a.losses, a.logits, a.targets, a.V,
                  a.row_stride());
}

template <class S>
void cross_entropy_backward(const CrossEntropyArgs<S, float>& a, cudaStream_t stream) {
    check_stride("cross_entropy_backward", a.V, a.row_stride());
    if (a.N == 0) return;
    launch_kernel(cross_entropy_backward_kernel<S>, a.N, kBlock, 0, stream, a.dlogits, a.logits, a.targets, a.dloss,
                  a.V, a.row_stride());
}

template <class S>
void fused_classifier(const CrossEntropyArgs<S, float>& a, cudaStream_t stream) {
    check_stride("fused_classifier", a.V, a.row_stride());
    if (a.N == 0) return;
    launch_kernel(fused_classifier_kernel<S>, a.N, kBlock, 0, stream, a.dlogits, a.losses, a.targets, a.dloss, a.V,
                  a.row_stride());
}

template void cross_entropy_forward<float>(const CrossEntropyArgs<float, float>&, cudaStream_t);
template void cross_entropy_forward<__nv_bfloat16>(const CrossEntropyArgs<__nv_bfloat16, float>&, cudaStream_t);
template void cross_entropy_backward<float>(const CrossEntropyArgs<float, float>&, cudaStream_t);
template void cross_entropy_backward<__nv_bfloat16>(const CrossEntropyArgs<__nv_bfloat16, float>&, cudaStream_t);
template void fused_classifier<float>(const CrossEntropyArgs<float, float>&, cudaStream_t);
template void fused_classifier<__nv_bfloat16>(const CrossEntropyArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
