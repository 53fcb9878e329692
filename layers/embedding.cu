// Token and position embedding, forward and backward (ref/embedding.h).
//   tokens (B, T) in [0, V); wte (V, C), wpe (maxT, C) or null, out, dout (B, T, C) of S;
//   dwte (V, C), dwpe (maxT, C) in float
//
// Backward must be deterministic, so no float atomics: many positions can carry the
// same token and their rows of dout must be added into one row of dwte in a fixed order.
// We bucket the positions by token on the host (as llm.c does): read the B*T tokens
// back, sort (token, position) pairs, and hand the device one segment per distinct
// token, its positions in increasing order. One block column per segment then sums its
// rows in that order. The price is one stream synchronization and a B*T*4-byte copy
// each way per backward pass, small next to a training step; the sum is the same on
// every run. dwpe is a plain column sum over the batch, in batch order.
#include "layers/embedding.cuh"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "layers/common.cuh"

namespace rkv::cuda {
namespace {

constexpr int kBlock = 256;

// One thread per output element: out[n, c] = wte[tokens[n], c] + wpe[n % T, c].
template <class S>
__global__ void embedding_forward_kernel(S* out, const int* tokens, const S* wte, const S* wpe, int N, int T, int C) {
    const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= size_t(N) * C) return;
    const int n = int(idx / C), c = int(idx % C), t = n % T;
    float x = to_float(wte[size_t(tokens[n]) * C + c]);
    if (wpe) x += to_float(wpe[size_t(t) * C + c]);
    out[idx] = from_float<S>(x);
}

// Segment s holds the positions positions[start[s] .. start[s+1]) of token token[s].
// Block (s, j) owns columns j*blockDim.x + threadIdx.x of that token's row of dwte.
template <class S>
__global__ void embedding_backward_wte_kernel(float* dwte, const S* dout, const int* positions, const int* start,
                                              const int* token, int C) {
    const int s = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int p = start[s]; p < start[s + 1]; p++) acc += to_float(dout[size_t(positions[p]) * C + c]);
    dwte[size_t(token[s]) * C + c] += acc;
}

// One thread per (t, c) of dwpe (T, C): the sum over b of dout[b, t, c].
template <class S>
__global__ void embedding_backward_wpe_kernel(float* dwpe, const S* dout, int B, int T, int C) {
    const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= size_t(T) * C) return;
    float acc = 0.0f;
    for (int b = 0; b < B; b++) acc += to_float(dout[size_t(b) * T * C + idx]);
    dwpe[idx] += acc;
}

}  // namespace

template <class S>
void embedding_forward(const EmbeddingArgs<S, float>& a, cudaStream_t stream) {
    const size_t n = size_t(a.B) * a.T * a.C;
    if (n == 0) return;
    launch_kernel(embedding_forward_kernel<S>, unsigned(ceil_div<size_t>(n, kBlock)), kBlock, 0, stream, a.out,
                  a.tokens, a.wte, a.wpe, a.B * a.T, a.T, a.C);
}

template <class S>
void embedding_backward(const EmbeddingArgs<S, float>& a, cudaStream_t stream) {
    const int B = a.B, T = a.T, C = a.C, N = B * T;
    const int* tokens = a.tokens;
    float* dwte = a.dwte;
    const S* dout = a.dout;
    if (N == 0 || C == 0) return;
    if (a.dwpe)
        launch_kernel(embedding_backward_wpe_kernel<S>, unsigned(ceil_div<size_t>(size_t(T) * C, kBlock)), kBlock, 0,
                      stream, a.dwpe, dout, B, T, C);

    // The buckets, on the host: sorting (token << 32 | position) orders by token, then
    // by position within a token.
    std::vector<int> tok(N);
    cuda_check(cudaMemcpyAsync(tok.data(), tokens, N * sizeof(int), cudaMemcpyDeviceToHost, stream));
    cuda_check(cudaStreamSynchronize(stream));
    std::vector<uint64_t> keys(N);
    for (int n = 0; n < N; n++) keys[n] = uint64_t(uint32_t(tok[n])) << 32 | uint32_t(n);
    std::sort(keys.begin(), keys.end());
    // One upload, laid out as positions (N) | start (distinct + 1) | token (distinct).
    std::vector<int> packed(N), start, token;
    for (int p = 0; p < N; p++) {
        packed[p] = int(keys[p] & 0xffffffffu);
        const int v = int(keys[p] >> 32);
        if (p == 0 || v != token.back()) {
            start.push_back(p);
            token.push_back(v);
        }
    }
    const int distinct = int(token.size());
    start.push_back(N);
    packed.insert(packed.end(), start.begin(), start.end());
    packed.insert(packed.end(), token.begin(), token.end());

    StreamScratch<int> buckets(packed.size(), stream);
    cuda_check(
        cudaMemcpyAsync(buckets.get(), packed.data(), packed.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    const int* d_positions = buckets.get();
    const int* d_start = d_positions + N;
    const int* d_token = d_start + distinct + 1;
    launch_kernel(embedding_backward_wte_kernel<S>, dim3(distinct, ceil_div(C, kBlock)), kBlock, 0, stream, dwte, dout,
                  d_positions, d_start, d_token, C);
    // The host vectors may die now: a copy from pageable memory has read its source when
    // cudaMemcpyAsync returns (CUDA runtime API, "API synchronization behavior").
}

template void embedding_forward<float>(const EmbeddingArgs<float, float>&, cudaStream_t);
template void embedding_forward<__nv_bfloat16>(const EmbeddingArgs<__nv_bfloat16, float>&, cudaStream_t);
template void embedding_backward<float>(const EmbeddingArgs<float, float>&, cudaStream_t);
template void embedding_backward<__nv_bfloat16>(const EmbeddingArgs<__nv_bfloat16, float>&, cudaStream_t);

}  // namespace rkv::cuda
