// Rotary position embedding, Hugging Face Llama's rotate-half convention: the head vector
// is split in halves (x1, x2) and pair i rotates by angle t * inv_freq(i):
//   out1 = x1 cos - x2 sin,   out2 = x2 cos + x1 sin
//   inp, out (B, T, NH, HS); position t is the index in the sequence, plus pos0 in the
//   forward of new tokens after pos0 cached ones (inference, ref/attention_decode.h).
// inv_freq(i) = theta^(-2i / HS), rescaled as the config's rope_type says (transformers'
// modeling_rope_utils): "linear" divides every frequency by factor; "llama3" (Llama 3.1) divides
// the low frequencies (wavelength over original_max_position_embeddings / low_freq_factor) by
// factor, keeps the high ones (wavelength under original_max_position_embeddings /
// high_freq_factor) and interpolates smoothly between.
// rope_inv_freq is the one definition of the frequencies: the CUDA kernels call it too.
#pragma once
#include <cmath>
#include <cstddef>

#include "ref/host_device.h"

namespace rkv {

enum class RopeType { none, linear, llama3 };  // config.json's rope_type "default", "linear", "llama3"

// Everything RoPE needs from the config, carried unchanged from ModelConfig to ref/ and the kernels.
struct RopeParams {
    double theta = 10000.0;  // rope_theta
    RopeType type = RopeType::none;
    double factor = 1.0;                          // linear and llama3
    double low_freq_factor = 1.0;                 // llama3
    double high_freq_factor = 4.0;                // llama3
    int original_max_position_embeddings = 8192;  // llama3: the pretraining context
};

inline bool operator==(const RopeParams& a, const RopeParams& b) {
    return a.theta == b.theta && a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
           a.high_freq_factor == b.high_freq_factor &&
           a.original_max_position_embeddings == b.original_max_position_embeddings;
}

// The arguments of RoPE (rope_forward, rope_backward below) and of QK-norm then RoPE in one pass
// (LayerOps::qk_norm_rope_*: ref/rmsnorm.h over each head's HS values, then RoPE), forward and
// backward, one struct carried unchanged from the model driver to ref/ and the kernels, as
// ref/attention_args.h for attention. S is the storage type, M that of rstd and dw (float for
// bf16 storage); pointers are in the implementation's memory.
//   inp, out, dout, dinp (B, T, NH, HS), HS even; w, dw (HS); rstd (B, T, NH)
// NH counts this tensor's heads: the query heads for q, the KV heads (NKV) for k. The forward's
// positions start at pos0 (0 in training; in inference the number already in the KV cache), the
// backward's at 0. Plain RoPE has no w, rstd, eps or dw.
template <class S, class M>
struct RopeArgs {
    int B = 0, T = 0, NH = 0, HS = 0;
    RopeParams rope;
    int pos0 = 0;
    const S* inp = nullptr;  // (B, T, NH, HS)
    S* out = nullptr;        // (B, T, NH, HS)
    // QK-norm's.
    const S* w = nullptr;  // (HS)
    M* rstd = nullptr;     // (B, T, NH)
    double eps = 0;
    // The backward's.
    const S* dout = nullptr;  // (B, T, NH, HS)
    S* dinp = nullptr;        // (B, T, NH, HS)
    M* dw = nullptr;          // (HS)
};

// Pair i's angle per position, in double (t times a small power is not exact in float at long T).
RKV_HOST_DEVICE inline double rope_inv_freq(const RopeParams& r, int i, int HS) {
    const double inv = pow(r.theta, -2.0 * i / HS);
    if (r.type == RopeType::linear) return inv / r.factor;
    if (r.type == RopeType::none) return inv;
    const double wavelen = 6.283185307179586 / inv;  // 2 pi / inv
    const double orig = r.original_max_position_embeddings;
    if (wavelen < orig / r.high_freq_factor) return inv;
    if (wavelen > orig / r.low_freq_factor) return inv / r.factor;
    const double smooth = (orig / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    return (1.0 - smooth) * inv / r.factor + smooth * inv;
}

}  // namespace rkv

namespace rkv::ref {

template <class S>
void rope_forward(const RopeArgs<S, S>& a) {
    const int B = a.B, T = a.T, H = a.NH, HS = a.HS, half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                const size_t base = ((size_t(b) * T + t) * H + h) * HS;
                const S* x = a.inp + base;
                S* o = a.out + base;
                for (int i = 0; i < half; i++) {
                    const double angle = double(a.pos0 + t) * rope_inv_freq(a.rope, i, HS);
                    const S c = S(std::cos(angle)), s = S(std::sin(angle));
                    const S x1 = x[i], x2 = x[i + half];
                    o[i] = x1 * c - x2 * s;
                    o[i + half] = x2 * c + x1 * s;
                }
            }
}

// The rotation's transpose: rotate by -angle, accumulated into dinp.
template <class S>
void rope_backward(const RopeArgs<S, S>& a) {
    const int B = a.B, T = a.T, H = a.NH, HS = a.HS, half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                const size_t base = ((size_t(b) * T + t) * H + h) * HS;
                const S* d = a.dout + base;
                S* dx = a.dinp + base;
                for (int i = 0; i < half; i++) {
                    const double angle = double(t) * rope_inv_freq(a.rope, i, HS);
                    const S c = S(std::cos(angle)), s = S(std::sin(angle));
                    dx[i] += d[i] * c + d[i + half] * s;
                    dx[i + half] += d[i + half] * c - d[i] * s;
                }
            }
}

}  // namespace rkv::ref
