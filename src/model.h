// The model driver: forward and backward over all layers under a route, written once
// against LayerOps so that the CPU reference and the CUDA kernels share it.
//
// Layer l, with x = resid[l] (B*T, C):
//   h     = norm1(x)
//   q     = rope(qk_norm(h Wq^T + bq))
//   k, v  = rope(qk_norm(h Wk^T + bk)), h Wv^T + bv      only if some layer reads layer l
//   a     = attention(q, k[src], v[src])                  src = route.kv_src[l]
//   m     = x + a Wo^T + bo
//   y     = mlp(norm2(m));  resid[l+1] = m + y
// then logits = norm_f(resid[L]) Wlm^T and the mean cross-entropy over non-skipped targets.
// Each residual add runs fused with the norm that reads its result (norm2, the next layer's
// norm1 or norm_f), and in training the loss and dlogits come from one fused pass that
// overwrites the logits.
//
// Precision (src/layer_ops.h): activations and the weights' working copy in S; parameter
// gradients, statistics and losses in Master (float for bf16).
//
// Inference (forward_cached): the same layers over new tokens, Tq per sequence at positions
// pos0 .. pos0 + Tq - 1 after the pos0 ones a KvCache (src/kv_cache.h) holds; the kept layers
// write their K/V into the cache and every layer attends to its source's slot.
//
// K and V of all layers live in one buffer (L, B, T, NKV, HS), so an attention kernel can
// take the route as data. In backward, the layers run top-down: every reader of layer j
// is at or above j, so by the time layer j is reached, dK[j] and dV[j] hold the sum of
// all its readers' contributions and flow into layer j's K/V projections. Layers nobody
// reads compute no K/V and get no W_k, W_v gradient.
//
// Recomputation (src/recompute.h): with --recompute mlp or layer the per-layer activations
// that the backward can compute again are laid out for one layer, which every layer's forward
// overwrites; the backward reruns layer l's forward kernels on its stored input (mid[l], or
// resid[l]) before layer_backward(l), so it reads the very bits the forward wrote. K, V and the
// residual stream stay stored for every layer.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "src/config.h"
#include "src/kv_cache.h"
#include "src/layer_ops.h"
#include "src/params.h"
#include "src/recompute.h"
#include "src/route.h"

namespace rkv {

// One device buffer of a Model: its kind (src/memory_plan.h lists the kinds) and its bytes,
// alignment padding included.
struct ModelBuffer {
    const char* kind;
    size_t bytes;
};

template <class S>
class Model {
public:
    using Master = master_t<S>;
    const ModelConfig config;
    const ParamTable table;
    const int B, T;              // micro-batch shape the buffers are sized for
    const size_t capacity;       // elements of params and grads: table.total, or more
                                 // (zeros) so that ranks can split them evenly
    const Recompute recompute;   // which activations are kept for one layer only
    const size_t grad_capacity;  // elements of grads: capacity, or fewer with grads_window
    S* params = nullptr;         // (capacity): the working copy of the weights
    Master* grads = nullptr;     // (grad_capacity); backward accumulates into it

    // Called in backward with each layer's d(attention output), (B, T, NH, HS); for tests.
    std::function<void(int layer, const S* datt)> on_attention_grad;
    // Called in backward as soon as grads[begin, end) are final for this micro-batch: the
    // final norm and head, each layer top-down, then the embeddings; the calls partition
    // [0, table.total). The trainer starts their reduction across ranks here.
    std::function<void(size_t begin, size_t end)> on_grads_final;
    // When set, where backward accumulates the gradients of [begin, end), one of the ranges
    // on_grads_final reports, asked before their first write (the embeddings' first when the
    // head is tied to them); else grads + begin. ZeRO-2 (src/sharded_grads.h) hands out
    // working windows, so that no rank holds the whole gradient buffer.
    std::function<Master*(size_t begin, size_t end)> grads_window;

    // Without training, no gradient buffers (grads is null). grad_capacity 0: capacity.
    Model(const ModelConfig& c, LayerOps<S>& ops, int B, int T, size_t param_capacity = 0, bool training = true,
          Recompute recompute = Recompute::none, size_t grad_capacity = 0);
    ~Model();
    Model(const Model&) = delete;
    // The buffers a Model of this shape allocates, in one arena, without making it: the same
    // list the constructor lays out (for the memory plan).
    static std::vector<ModelBuffer> buffers(const ModelConfig& c, int B, int T, size_t param_capacity = 0,
                                            bool training = true, Recompute recompute = Recompute::none,
                                            size_t grad_capacity = 0);
    Model& operator=(const Model&) = delete;

    // inputs, targets: host arrays (B, T); targets may be null (no loss), -1 skips a token.
    // Returns the mean loss over non-skipped targets.
    double forward(const int* inputs, const int* targets, const Route& route);
    // forward, then backward of loss_scale * loss into grads (logits() then holds dlogits).
    double forward_backward(const int* inputs, const int* targets, const Route& route, double loss_scale = 1.0);
    void zero_grad() { ops_.zero(grads, std::min(table.total, grad_capacity)); }

    // Inference: the logits of Tq <= T new tokens per sequence, inputs host (B, Tq), after the
    // cache.length positions the cache holds; their keys and values join the cache, under its
    // route. Then logits(Tq) has them.
    void forward_cached(const int* inputs, int Tq, KvCache<S>& cache);
    // The logits of the last forward's tokens t0 .. Tq - 1 of each sequence, which ran Tq, on
    // the host: (B, Tq - t0, V).
    std::vector<Master> logits(int Tq, int t0 = 0) const;

    // Under --recompute layer, q, att and lse hold the layer computed last.
    const S* k(int l) const { return layer_acts(l).k; }  // (B, T, NKV, HS)
    const S* v(int l) const { return layer_acts(l).v; }
    const S* q(int l) const { return layer_acts(l).q; }  // (B, T, NH, HS)
    const S* att(int l) const { return layer_acts(l).att; }
    const Master* lse(int l) const { return layer_acts(l).lse; }  // (B, NH, T)
    // After backward, for layers the route reads.
    const S* dk(int l) const { return g_.dk + size_t(l) * N_ * config.kv_dim(); }
    const S* dv(int l) const { return g_.dv + size_t(l) * N_ * config.kv_dim(); }

private:
    LayerOps<S>& ops_;
    const int N_;          // B * T rows
    const int ld_logits_;  // the logits' row stride: V up to a multiple of 64 (128 bytes of bf16)
    Route route_;
    size_t n_valid_ = 0;  // non-skipped targets of the last forward
    void* arena_ = nullptr;

    struct Activations {
        int* tokens;
        int* targets;  // (N)
        int* route;    // (L): the route's kv_src, read by the attention kernels
        S* resid;      // (L+1, N, C): the residual stream entering each layer, and the last
        // Below, (L, ...) is (1, ...) for what --recompute recomputes: the attention block's
        // (ln1 .. mid but K, V, k_rstd) under layer, the MLP's (ln2 .. act) under mlp and layer.
        S* ln1;
        Master* ln1_mean;
        Master* ln1_rstd;  // (L, N, C), (L, N), (L, N)
        S* qp;
        S* q;
        Master* q_rstd;  // (L, N, QD): projection, after QK-norm and RoPE; (L, N*NH)
        S* kp;
        S* k;
        Master* k_rstd;  // (L, N, KVD), (L, N, KVD), (L, N*NKV)
        S* v;            // (L, N, KVD)
        S* att;
        Master* lse;  // (L, N, QD), (L, B*NH*T)
        S* mid;       // (L, N, C): residual after attention
        S* ln2;
        Master* ln2_mean;
        Master* ln2_rstd;  // (L, N, C), (L, N), (L, N)
        S* fc;
        S* up;
        S* act;  // (L, N, FF): GELU input or SwiGLU gate; SwiGLU up; activation
        S* lnf;
        Master* lnf_mean;
        Master* lnf_rstd;  // (N, C), (N), (N)
        S* logits;
        Master* losses;  // (N, V), rows ld_logits_ apart: logits, dlogits in training; (N)
        S* proj;         // (N, C) scratch for a projection's output
    } a_{};
    struct Gradients {
        S* dresid;
        S* dln;  // (N, C)
        S* datt;
        S* dq;  // (N, QD)
        S* dk;
        S* dv;   // (L, N, KVD): summed over each source's readers
        S* dkp;  // (N, KVD)
        S* dfc;
        S* dup;
        S* dact;  // (N, FF); dup, dact SwiGLU's
    } g_{};

    // Layer l's slice of every per-layer activation (null where the family has none).
    struct LayerActs {
        S* x;
        S* ln1;
        Master* ln1_mean;
        Master* ln1_rstd;
        S* qp;
        S* q;
        Master* q_rstd;
        S* kp;
        S* k;
        Master* k_rstd;
        S* v;
        S* att;
        Master* lse;
        S* mid;
        S* ln2;
        Master* ln2_mean;
        Master* ln2_rstd;
        S* fc;
        S* up;
        S* act;
        S* out;
    };
    LayerActs layer_acts(int l) const;
    // Every buffer, in arena order: take(pointer, elements, kind, needed) for each.
    template <class Take>
    static void layout(const ModelConfig& c, int B, int T, size_t capacity, size_t grad_capacity, bool training,
                       Recompute recompute, S*& params, Master*& grads, Activations& a, Gradients& g, Take&& take);
    // The layers the attention block's and the MLP's activations are kept for: L, or 1 when
    // the backward recomputes them.
    static size_t attention_layers(size_t L, Recompute r) { return r == Recompute::layer ? 1 : L; }
    static size_t mlp_layers(size_t L, Recompute r) { return r == Recompute::none ? L : 1; }
    static int logits_stride(const ModelConfig& c) { return (c.vocab_size + 63) / 64 * 64; }
    // A norm's output, its statistics and its weights.
    struct NormSlot {
        S* out;
        Master* mean;
        Master* rstd;
        size_t w, b;
    };
    NormSlot norm_reading(int l) const;  // the norm that reads resid[l]: layer l's norm1, or norm_f at L

    // The tokens a forward runs on: T per sequence (the model's T, or fewer in inference) at
    // positions pos0 ..; with a cache, attention reads it (forward_cached), else the layers' K/V.
    struct Pass {
        int T, pos0;
        KvCache<S>* cache;
    };

    // The gradient ranges backward writes now, and where (grads_window).
    struct GradWindow {
        size_t begin, end;
        Master* at;
    };
    std::vector<GradWindow> windows_;

    bool qk_transformed() const { return config.qk_norm || config.positions == Positions::RoPE; }
    const S* p(size_t offset) const { return offset == LayerParams::npos ? nullptr : params + offset; }
    Master* gp(size_t offset) const {
        if (offset == LayerParams::npos) return nullptr;
        if (!grads_window) return grads + offset;
        for (const GradWindow& w : windows_)
            if (offset >= w.begin && offset < w.end) return w.at + (offset - w.begin);
        throw std::logic_error(fmt::format("gradient element {} written outside its window", offset));
    }

    // slot = norm(inp), or with a residual b: inp = resid_out = a + b first (fused); N rows.
    void norm_forward(const NormSlot& slot, const S* inp, int N);
    void residual_norm_forward(const NormSlot& slot, S* resid_out, const S* a, const S* b, int N);
    void norm_backward(S* dinp, const S* dout, const S* inp, size_t w, size_t b, Master* mean, Master* rstd);
    void qk_forward(S* out, Master* rstd, const S* raw, size_t norm_w, int H, const Pass& s);
    void qk_backward(S* draw, const S* dout, const S* raw, size_t norm_w, Master* rstd, int H);
    // Embedding, layers, norm_f and the head: a_.logits.
    void forward_logits(const int* inputs, const Route& route);
    // What both forwards run: the checked inputs (B, s.T), then the embedding at positions
    // s.pos0 .., the layers under route_, norm_f and the head.
    void forward_pass(const int* inputs, const Pass& s);
    // Checks targets and uploads them; n_valid_ counts the non-skipped ones.
    void set_targets(const int* targets);
    double mean_loss();  // the mean of a_.losses over non-skipped targets
    void layer_forward(int l, const Pass& s);
    // The parts of layer_forward that recomputation reruns: q's projection, QK-norm and RoPE;
    // attention, the output projection and norm2 of the residual add (mid); the MLP up to act.
    void q_forward(int l, const Pass& s);
    void attention_forward(int l, const Pass& s);
    void mlp_in_forward(int l, int N);
    // Before layer_backward(l): the activations of layer l that the layout keeps for one layer,
    // from its stored input, by the forward's own kernels (nothing without recomputation).
    void recompute_forward(int l);
    void layer_backward(int l);
    void backward();  // from the dlogits in a_.logits
};

// ---------------------------------------------------------------------------------------

template <class S>
Model<S>::Model(const ModelConfig& c, LayerOps<S>& ops, int B_, int T_, size_t param_capacity, bool training,
                Recompute recompute_, size_t grad_capacity_)
    : config(c),
      table(c),
      B(B_),
      T(T_),
      capacity(std::max(table.total, param_capacity)),
      recompute(recompute_),
      grad_capacity(grad_capacity_ ? grad_capacity_ : capacity),
      ops_(ops),
      N_(B_ * T_),
      ld_logits_(logits_stride(c)) {
    if (B < 1 || T < 1) throw std::invalid_argument(fmt::format("batch {} x {} is empty", B, T));
    if (T > c.max_position_embeddings)
        throw std::invalid_argument(
            fmt::format("sequence length {} exceeds max_position_embeddings {}", T, c.max_position_embeddings));
    // Two passes over the same list (layout): first count the bytes, then hand out the pointers.
    char* base = nullptr;
    size_t used = 0;
    auto take = [&](auto*& ptr, size_t n, const char*, bool needed) {
        using P = std::remove_reference_t<decltype(*ptr)>;
        if (!needed) {
            ptr = nullptr;
            return;
        }
        used = (used + 63) / 64 * 64;
        ptr = base ? reinterpret_cast<P*>(base + used) : nullptr;
        used += n * sizeof(P);
    };
    auto layout = [&] {
        used = 0;
        Model::layout(config, B, T, capacity, grad_capacity, training, recompute, params, grads, a_, g_, take);
    };
    layout();
    base = static_cast<char*>(arena_ = ops_.alloc_bytes(used));
    layout();
    // Without QK-norm and RoPE, q and k are the projections themselves (k's: layer_acts).
    if (!qk_transformed()) a_.q = a_.qp;
    ops_.zero(params, capacity);
    if (grads) ops_.zero(grads, grad_capacity);
}

template <class S>
template <class Take>
void Model<S>::layout(const ModelConfig& c, int B, int T, size_t capacity, size_t grad_capacity, bool training,
                      Recompute recompute, S*& params, Master*& grads, Activations& a, Gradients& g, Take&& take_as) {
    const size_t L = c.num_hidden_layers, N = size_t(B) * T, C = c.hidden_size;
    const size_t LA = attention_layers(L, recompute), LM = mlp_layers(L, recompute);
    const size_t QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const size_t NH = c.num_attention_heads, NKV = c.num_key_value_heads, ld = logits_stride(c);
    const bool ln = c.norm == Norm::LayerNorm, swiglu = c.mlp == Mlp::SwiGLU;
    const bool tr = c.qk_norm || c.positions == Positions::RoPE;
    const char* kind = nullptr;  // the kind of the buffers that follow (memory_plan_kinds)
    auto take = [&](auto*& ptr, size_t n, bool needed = true) { take_as(ptr, n, kind, needed); };
    kind = "weights";
    take(params, capacity);
    kind = "gradients";
    take(grads, grad_capacity, training);
    kind = "kv_route";
    take(a.tokens, N);
    take(a.targets, N);
    take(a.route, L);
    kind = "activations";
    take(a.resid, (L + 1) * N * C);
    take(a.ln1, LA * N * C);
    take(a.ln1_mean, LA * N, ln);
    take(a.ln1_rstd, LA * N);
    take(a.qp, LA * N * QD);
    take(a.q, LA * N * QD, tr);
    take(a.q_rstd, LA * N * NH, c.qk_norm);
    kind = "kv_route";
    take(a.kp, LA * N * KVD, tr);
    take(a.k, L * N * KVD);
    take(a.k_rstd, L * N * NKV, c.qk_norm);
    take(a.v, L * N * KVD);
    kind = "activations";
    take(a.att, LA * N * QD);
    kind = "attention";
    take(a.lse, LA * N * NH);
    kind = "activations";
    take(a.mid, LA * N * C);
    take(a.ln2, LM * N * C);
    take(a.ln2_mean, LM * N, ln);
    take(a.ln2_rstd, LM * N);
    take(a.fc, LM * N * FF);
    take(a.up, LM * N * FF, swiglu);
    take(a.act, LM * N * FF);
    take(a.lnf, N * C);
    take(a.lnf_mean, N, ln);
    take(a.lnf_rstd, N);
    kind = "logits";
    take(a.logits, N * ld);
    take(a.losses, N);
    kind = "activations";
    take(a.proj, N * C);
    kind = "activation_grads";
    take(g.dresid, N * C, training);
    take(g.dln, N * C, training);
    take(g.datt, N * QD, training);
    take(g.dq, N * QD, training);
    kind = "kv_route";
    take(g.dk, L * N * KVD, training);
    take(g.dv, L * N * KVD, training);
    take(g.dkp, N * KVD, tr && training);
    kind = "activation_grads";
    take(g.dfc, N * FF, training);
    take(g.dup, N * FF, swiglu && training);
    take(g.dact, N * FF, swiglu && training);
}

template <class S>
std::vector<ModelBuffer> Model<S>::buffers(const ModelConfig& c, int B, int T, size_t capacity, bool training,
                                           Recompute recompute, size_t grad_capacity) {
    std::vector<ModelBuffer> out;
    size_t used = 0;
    auto take = [&](auto*& ptr, size_t n, const char* kind, bool needed) {
        ptr = nullptr;
        if (!needed) return;
        const size_t start = used;
        used = (used + 63) / 64 * 64 + n * sizeof(*ptr);
        out.push_back({kind, used - start});
    };
    S* params;
    Master* grads;
    Activations a{};
    Gradients g{};
    capacity = std::max(ParamTable(c).total, capacity);
    layout(c, B, T, capacity, grad_capacity ? grad_capacity : capacity, training, recompute, params, grads, a, g, take);
    return out;
}

template <class S>
Model<S>::~Model() {
    ops_.free_bytes(arena_);
}

template <class S>
typename Model<S>::LayerActs Model<S>::layer_acts(int l) const {
    const ModelConfig& c = config;
    const size_t N = N_, C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const size_t L = c.num_hidden_layers;
    // A buffer kept for one layer holds whichever layer ran last: its one slice.
    const size_t la = attention_layers(L, recompute) == L ? l : 0, lm = mlp_layers(L, recompute) == L ? l : 0;
    auto at = [](auto* base, size_t layer, size_t per_layer) { return base ? base + layer * per_layer : nullptr; };
    const Activations& a = a_;
    S* k = at(a.k, l, N * KVD);
    return {at(a.resid, l, N * C),
            at(a.ln1, la, N * C),
            at(a.ln1_mean, la, N),
            at(a.ln1_rstd, la, N),
            at(a.qp, la, N * QD),
            at(a.q, la, N * QD),
            at(a.q_rstd, la, N * c.num_attention_heads),
            qk_transformed() ? at(a.kp, la, N * KVD) : k,
            k,
            at(a.k_rstd, l, N * c.num_key_value_heads),
            at(a.v, l, N * KVD),
            at(a.att, la, N * QD),
            at(a.lse, la, N * c.num_attention_heads),
            at(a.mid, la, N * C),
            at(a.ln2, lm, N * C),
            at(a.ln2_mean, lm, N),
            at(a.ln2_rstd, lm, N),
            at(a.fc, lm, N * FF),
            at(a.up, lm, N * FF),
            at(a.act, lm, N * FF),
            at(a.resid, l + 1, N * C)};
}

template <class S>
typename Model<S>::NormSlot Model<S>::norm_reading(int l) const {
    if (l == config.num_hidden_layers) return {a_.lnf, a_.lnf_mean, a_.lnf_rstd, table.lnf_w, table.lnf_b};
    const LayerActs a = layer_acts(l);
    return {a.ln1, a.ln1_mean, a.ln1_rstd, table.layers[l].ln1_w, table.layers[l].ln1_b};
}

template <class S>
void Model<S>::norm_forward(const NormSlot& s, const S* inp, int N) {
    const NormArgs<S, Master> a{.N = N,
                                .C = config.hidden_size,
                                .eps = config.rms_norm_eps,
                                .inp = inp,
                                .w = p(s.w),
                                .bias = p(s.b),
                                .out = s.out,
                                .mean = s.mean,
                                .rstd = s.rstd};
    if (config.norm == Norm::LayerNorm)
        ops_.layernorm_forward(a);
    else
        ops_.rmsnorm_forward(a);
}

template <class S>
void Model<S>::residual_norm_forward(const NormSlot& s, S* resid_out, const S* a, const S* b, int N) {
    const NormArgs<S, Master> n{.N = N,
                                .C = config.hidden_size,
                                .eps = config.rms_norm_eps,
                                .inp = a,
                                .w = p(s.w),
                                .bias = p(s.b),
                                .out = s.out,
                                .mean = s.mean,
                                .rstd = s.rstd,
                                .residual = b,
                                .resid_out = resid_out};
    if (config.norm == Norm::LayerNorm)
        ops_.layernorm_forward(n);
    else
        ops_.rmsnorm_forward(n);
}

template <class S>
void Model<S>::norm_backward(S* dinp, const S* dout, const S* inp, size_t w, size_t b, Master* mean, Master* rstd) {
    const NormArgs<S, Master> a{.N = N_,
                                .C = config.hidden_size,
                                .inp = inp,
                                .w = p(w),
                                .mean = mean,
                                .rstd = rstd,
                                .dout = dout,
                                .dinp = dinp,
                                .dw = gp(w),
                                .db = gp(b)};
    if (config.norm == Norm::LayerNorm)
        ops_.layernorm_backward(a);
    else
        ops_.rmsnorm_backward(a);
}

// raw (N, H*HS) -> out: QK-norm, then RoPE (each when the family has it; both in one pass).
template <class S>
void Model<S>::qk_forward(S* out, Master* rstd, const S* raw, size_t norm_w, int H, const Pass& s) {
    const int HS = config.head_dim;
    const bool rope = config.positions == Positions::RoPE;
    const RopeArgs<S, Master> a{.B = B,
                                .T = s.T,
                                .NH = H,
                                .HS = HS,
                                .rope = config.rope,
                                .pos0 = s.pos0,
                                .inp = raw,
                                .out = out,
                                .w = p(norm_w),
                                .rstd = rstd,
                                .eps = config.rms_norm_eps};
    if (config.qk_norm && rope)
        ops_.qk_norm_rope_forward(a);
    else if (config.qk_norm)
        ops_.rmsnorm_forward({.N = B * s.T * H,
                              .C = HS,
                              .eps = config.rms_norm_eps,
                              .inp = raw,
                              .w = p(norm_w),
                              .out = out,
                              .rstd = rstd});
    else
        ops_.rope_forward(a);
}

template <class S>
void Model<S>::qk_backward(S* draw, const S* dout, const S* raw, size_t norm_w, Master* rstd, int H) {
    const int HS = config.head_dim;
    const bool rope = config.positions == Positions::RoPE;
    const RopeArgs<S, Master> a{.B = B,
                                .T = T,
                                .NH = H,
                                .HS = HS,
                                .rope = config.rope,
                                .inp = raw,
                                .w = p(norm_w),
                                .rstd = rstd,
                                .dout = dout,
                                .dinp = draw,
                                .dw = gp(norm_w)};
    if (config.qk_norm && rope) {
        ops_.qk_norm_rope_backward(a);
    } else if (config.qk_norm) {
        ops_.zero(draw, size_t(N_) * H * HS);  // the norm's backward accumulates
        ops_.rmsnorm_backward({.N = N_ * H,
                               .C = HS,
                               .inp = raw,
                               .w = p(norm_w),
                               .rstd = rstd,
                               .dout = dout,
                               .dinp = draw,
                               .dw = gp(norm_w)});
    } else {
        ops_.rope_backward(a);
    }
}

template <class S>
void Model<S>::q_forward(int l, const Pass& s) {
    const LayerParams& w = table.layers[l];
    const LayerActs a = layer_acts(l);
    ops_.linear_forward({.N = B * s.T,
                         .C = config.hidden_size,
                         .OC = config.q_dim(),
                         .inp = a.ln1,
                         .weight = p(w.q_w),
                         .bias = p(w.q_b),
                         .out = a.qp});
    if (qk_transformed()) qk_forward(a.q, a.q_rstd, a.qp, w.q_norm_w, config.num_attention_heads, s);
}

template <class S>
void Model<S>::attention_forward(int l, const Pass& s) {
    const ModelConfig& c = config;
    const LayerParams& w = table.layers[l];
    const int C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim();
    const int NH = c.num_attention_heads, NKV = c.num_key_value_heads, HS = c.head_dim, N = B * s.T;
    const LayerActs a = layer_acts(l);
    // With nothing cached before them, new tokens attend to their own K/V as in training (the
    // tiled tensor-core kernels, where a prompt's first chunk gains most); after, to the cache.
    if (s.cache && s.pos0 > 0)
        ops_.attention_decode({.B = B,
                               .Tq = s.T,
                               .pos0 = s.pos0,
                               .Tmax = s.cache->max_len,
                               .NH = NH,
                               .NKV = NKV,
                               .HS = HS,
                               .kv_slot = s.cache->kv_slot(),
                               .layer = l,
                               .slot_stride = s.cache->slot_stride,
                               .q = a.q,
                               .k_cache = s.cache->k(),
                               .v_cache = s.cache->v(),
                               .out = a.att});
    else
        ops_.attention_forward({.B = B,
                                .T = s.T,
                                .NH = NH,
                                .NKV = NKV,
                                .HS = HS,
                                .kv_src = a_.route,
                                .layer = l,
                                .layer_stride = size_t(N_) * KVD,
                                .q = a.q,
                                .k_all = a_.k,
                                .v_all = a_.v,
                                .out = a.att,
                                .lse = a.lse});
    ops_.linear_forward({.N = N, .C = QD, .OC = C, .inp = a.att, .weight = p(w.o_w), .bias = p(w.o_b), .out = a_.proj});
    residual_norm_forward({a.ln2, a.ln2_mean, a.ln2_rstd, w.ln2_w, w.ln2_b}, a.mid, a.x, a_.proj, N);
}

template <class S>
void Model<S>::mlp_in_forward(int l, int N) {
    const LayerParams& w = table.layers[l];
    const int C = config.hidden_size, FF = config.intermediate_size;
    const LayerActs a = layer_acts(l);
    if (config.mlp == Mlp::Gelu) {
        ops_.linear_gelu_forward({.N = N,
                                  .C = C,
                                  .OC = FF,
                                  .inp = a.ln2,
                                  .weight = p(w.up_w),
                                  .bias = p(w.up_b),
                                  .out = a.act,
                                  .pre = a.fc});
    } else {
        ops_.linear_forward({.N = N, .C = C, .OC = FF, .inp = a.ln2, .weight = p(w.gate_w), .out = a.fc});
        ops_.linear_forward(
            {.N = N, .C = C, .OC = FF, .inp = a.ln2, .weight = p(w.up_w), .bias = p(w.up_b), .out = a.up});
        ops_.swiglu_forward({.n = size_t(N) * FF, .gate = a.fc, .up = a.up, .out = a.act});
    }
}

template <class S>
void Model<S>::layer_forward(int l, const Pass& s) {
    const ModelConfig& c = config;
    const LayerParams& w = table.layers[l];
    const int C = c.hidden_size, KVD = c.kv_dim(), FF = c.intermediate_size, N = B * s.T;
    const LayerActs a = layer_acts(l);

    // a.ln1 = norm1(x) is there already: the previous layer's last residual add made it.
    q_forward(l, s);
    if (route_.is_read(l)) {
        ops_.linear_forward(
            {.N = N, .C = C, .OC = KVD, .inp = a.ln1, .weight = p(w.k_w), .bias = p(w.k_b), .out = a.kp});
        ops_.linear_forward(
            {.N = N, .C = C, .OC = KVD, .inp = a.ln1, .weight = p(w.v_w), .bias = p(w.v_b), .out = a.v});
        if (qk_transformed()) qk_forward(a.k, a.k_rstd, a.kp, w.k_norm_w, c.num_key_value_heads, s);
        if (s.cache) {
            KvCacheWriteArgs<S> kv{.B = B,
                                   .Tq = s.T,
                                   .pos0 = s.pos0,
                                   .Tmax = s.cache->max_len,
                                   .width = s.cache->width,
                                   .cache = s.cache->k_slot(l),
                                   .src = a.k};
            ops_.kv_cache_write(kv);
            kv.cache = s.cache->v_slot(l), kv.src = a.v;
            ops_.kv_cache_write(kv);
        }
    }
    attention_forward(l, s);
    mlp_in_forward(l, N);
    ops_.linear_forward(
        {.N = N, .C = FF, .OC = C, .inp = a.act, .weight = p(w.down_w), .bias = p(w.down_b), .out = a_.proj});
    residual_norm_forward(norm_reading(l + 1), a.out, a.mid, a_.proj, N);
}

// The forward made norm1's and norm2's outputs fused with the residual add before them; the
// plain norm of the stored sum is the same kernel reading the same bits (layers/norm_common.cuh,
// residual_row), so it gives the same outputs and statistics.
template <class S>
void Model<S>::recompute_forward(int l) {
    if (recompute == Recompute::none) return;
    const LayerParams& w = table.layers[l];
    const LayerActs a = layer_acts(l);
    const Pass s{T, 0, nullptr};
    if (recompute == Recompute::layer) {
        norm_forward(norm_reading(l), a.x, N_);
        q_forward(l, s);
        // K and V after QK-norm and RoPE stay stored (readers above need them); the norm's
        // backward needs the projection before it.
        if (route_.is_read(l) && qk_transformed())
            ops_.linear_forward({.N = N_,
                                 .C = config.hidden_size,
                                 .OC = config.kv_dim(),
                                 .inp = a.ln1,
                                 .weight = p(w.k_w),
                                 .bias = p(w.k_b),
                                 .out = a.kp});
        attention_forward(l, s);
    } else {
        norm_forward({a.ln2, a.ln2_mean, a.ln2_rstd, w.ln2_w, w.ln2_b}, a.mid, N_);
    }
    mlp_in_forward(l, N_);
}

template <class S>
void Model<S>::forward_pass(const int* inputs, const Pass& s) {
    const ModelConfig& c = config;
    const int L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size, N = B * s.T;
    for (int i = 0; i < N; i++)
        if (inputs[i] < 0 || inputs[i] >= V)
            throw std::invalid_argument(
                fmt::format("input token {} at position {} is outside the vocabulary (size {})", inputs[i], i, V));
    ops_.upload(a_.tokens, inputs, N);
    const S* wpe = p(table.wpe);
    ops_.embedding_forward({.B = B,
                            .T = s.T,
                            .C = C,
                            .tokens = a_.tokens,
                            .wte = p(table.wte),
                            .wpe = wpe ? wpe + size_t(s.pos0) * C : nullptr,
                            .out = a_.resid});
    norm_forward(norm_reading(0), a_.resid, N);
    for (int l = 0; l < L; l++) layer_forward(l, s);
    ops_.head_forward(
        {.N = N, .C = C, .OC = V, .ld = ld_logits_, .inp = a_.lnf, .weight = p(table.lm_head), .out = a_.logits});
}

template <class S>
void Model<S>::forward_logits(const int* inputs, const Route& route) {
    validate_route(route, config.num_hidden_layers);
    route_ = route;
    ops_.upload(a_.route, route.kv_src.data(), route.num_layers());
    forward_pass(inputs, {T, 0, nullptr});
}

template <class S>
void Model<S>::forward_cached(const int* inputs, int Tq, KvCache<S>& cache) {
    const int L = config.num_hidden_layers, pos0 = cache.length;
    if (Tq < 1 || Tq > T)
        throw std::invalid_argument(
            fmt::format("{} new tokens per sequence: the model takes 1 to {} at a time", Tq, T));
    if (cache.B != B || cache.route.num_layers() != L || cache.width != config.kv_dim())
        throw std::invalid_argument(fmt::format(
            "a KV cache of {} sequences, {} layers and {} K/V values a position for a model of {}, {} and {}", cache.B,
            cache.route.num_layers(), cache.width, B, L, config.kv_dim()));
    if (pos0 + Tq > cache.max_len)
        throw std::invalid_argument(
            fmt::format("the KV cache holds {} positions: {} more after {} do not fit", cache.max_len, Tq, pos0));
    route_ = cache.route;
    if (pos0 == 0) ops_.upload(a_.route, route_.kv_src.data(), L);  // the first chunk's attention reads it
    forward_pass(inputs, {Tq, pos0, &cache});
    cache.length += Tq;
}

template <class S>
std::vector<master_t<S>> Model<S>::logits(int Tq, int t0) const {
    const int V = config.vocab_size, n = Tq - t0;
    // The rows asked for are one block when they are all of each sequence's: one download.
    const int blocks = t0 == 0 ? 1 : B, rows = t0 == 0 ? B * Tq : n;
    std::vector<S> stored(size_t(rows) * ld_logits_);
    std::vector<Master> out(size_t(B) * n * V);
    for (int k = 0; k < blocks; k++) {
        ops_.download(stored.data(), a_.logits + (size_t(k) * Tq + t0) * ld_logits_, stored.size());
        for (size_t r = 0; r < size_t(rows); r++)
            for (int j = 0; j < V; j++) out[(size_t(k) * rows + r) * V + j] = Master(stored[r * ld_logits_ + j]);
    }
    return out;
}

template <class S>
void Model<S>::set_targets(const int* targets) {
    const int V = config.vocab_size;
    n_valid_ = 0;
    for (int i = 0; i < N_; i++) {
        if (targets[i] < -1 || targets[i] >= V)
            throw std::invalid_argument(
                fmt::format("target {} at position {} is outside the vocabulary (size {})", targets[i], i, V));
        n_valid_ += targets[i] >= 0;
    }
    ops_.upload(a_.targets, targets, N_);
}

template <class S>
double Model<S>::mean_loss() {
    std::vector<Master> losses(N_);
    ops_.download(losses.data(), a_.losses, N_);
    double sum = 0;
    for (Master x : losses) sum += double(x);
    return n_valid_ ? sum / double(n_valid_) : 0.0;
}

template <class S>
double Model<S>::forward(const int* inputs, const int* targets, const Route& route) {
    forward_logits(inputs, route);
    if (!targets) return std::numeric_limits<double>::quiet_NaN();
    set_targets(targets);
    ops_.cross_entropy_forward({.N = N_,
                                .V = config.vocab_size,
                                .ld = ld_logits_,
                                .logits = a_.logits,
                                .targets = a_.targets,
                                .losses = a_.losses});
    return mean_loss();
}

template <class S>
void Model<S>::layer_backward(int l) {
    const ModelConfig& c = config;
    const LayerParams& w = table.layers[l];
    const int C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const int NH = c.num_attention_heads, NKV = c.num_key_value_heads, HS = c.head_dim;
    const size_t NKVD = size_t(N_) * KVD, NF = size_t(N_) * FF;
    const LayerActs a = layer_acts(l);
    S* dresid = g_.dresid;  // holds d resid[l+1] on entry, d resid[l] on exit

    // MLP: out = mid + down(act(norm2(mid))). Every activation gradient is written, not added
    // (LayerOps), except dln's second term in SwiGLU and the norm's into dresid.
    if (c.mlp == Mlp::Gelu) {
        ops_.linear_gelu_backward({.N = N_,
                                   .C = FF,
                                   .OC = C,
                                   .inp = a.act,
                                   .weight = p(w.down_w),
                                   .inp_pre = a.fc,
                                   .dout = dresid,
                                   .dinp = g_.dfc,
                                   .dweight = gp(w.down_w),
                                   .dbias = gp(w.down_b)});
        ops_.linear_backward({.N = N_,
                              .C = C,
                              .OC = FF,
                              .inp = a.ln2,
                              .weight = p(w.up_w),
                              .dout = g_.dfc,
                              .dinp = g_.dln,
                              .dweight = gp(w.up_w),
                              .dbias = gp(w.up_b)});
    } else {
        ops_.linear_backward({.N = N_,
                              .C = FF,
                              .OC = C,
                              .inp = a.act,
                              .weight = p(w.down_w),
                              .dout = dresid,
                              .dinp = g_.dact,
                              .dweight = gp(w.down_w),
                              .dbias = gp(w.down_b)});
        ops_.swiglu_backward({.n = NF, .gate = a.fc, .up = a.up, .dout = g_.dact, .dgate = g_.dfc, .dup = g_.dup});
        ops_.linear_backward({.N = N_,
                              .C = C,
                              .OC = FF,
                              .inp = a.ln2,
                              .weight = p(w.gate_w),
                              .dout = g_.dfc,
                              .dinp = g_.dln,
                              .dweight = gp(w.gate_w)});
        ops_.linear_backward({.N = N_,
                              .C = C,
                              .OC = FF,
                              .inp = a.ln2,
                              .weight = p(w.up_w),
                              .dout = g_.dup,
                              .dinp = g_.dln,
                              .accumulate_dinp = true,
                              .dweight = gp(w.up_w),
                              .dbias = gp(w.up_b)});
    }
    norm_backward(dresid, g_.dln, a.mid, w.ln2_w, w.ln2_b, a.ln2_mean, a.ln2_rstd);

    // Attention: mid = x + o_proj(attention(q, k[src], v[src])); dK, dV go to the source, written
    // by its highest reader (the first here) and added to by the others.
    ops_.linear_backward({.N = N_,
                          .C = QD,
                          .OC = C,
                          .inp = a.att,
                          .weight = p(w.o_w),
                          .dout = dresid,
                          .dinp = g_.datt,
                          .dweight = gp(w.o_w),
                          .dbias = gp(w.o_b)});
    if (on_attention_grad) on_attention_grad(l, g_.datt);
    ops_.attention_backward({.B = B,
                             .T = T,
                             .NH = NH,
                             .NKV = NKV,
                             .HS = HS,
                             .kv_src = a_.route,
                             .layer = l,
                             .layer_stride = NKVD,
                             .q = a.q,
                             .k_all = a_.k,
                             .v_all = a_.v,
                             .out = a.att,
                             .lse = a.lse,
                             .dout = g_.datt,
                             .dq = g_.dq,
                             .dk_all = g_.dk,
                             .dv_all = g_.dv,
                             .accumulate_kv = route_.last_reader(route_.kv_src[l]) != l});

    S* dqp = g_.dq;
    if (qk_transformed()) {
        dqp = g_.datt;  // datt is spent
        qk_backward(dqp, g_.dq, a.qp, w.q_norm_w, a.q_rstd, NH);
    }
    ops_.linear_backward({.N = N_,
                          .C = C,
                          .OC = QD,
                          .inp = a.ln1,
                          .weight = p(w.q_w),
                          .dout = dqp,
                          .dinp = g_.dln,
                          .dweight = gp(w.q_w),
                          .dbias = gp(w.q_b)});
    if (route_.is_read(l)) {  // every reader of layer l is at or above l: dK[l], dV[l] are complete
        S* dk = g_.dk + l * NKVD;
        if (qk_transformed()) {
            qk_backward(g_.dkp, dk, a.kp, w.k_norm_w, a.k_rstd, NKV);
            dk = g_.dkp;
        }
        ops_.linear_backward({.N = N_,
                              .C = C,
                              .OC = KVD,
                              .inp = a.ln1,
                              .weight = p(w.k_w),
                              .dout = dk,
                              .dinp = g_.dln,
                              .accumulate_dinp = true,
                              .dweight = gp(w.k_w),
                              .dbias = gp(w.k_b)});
        ops_.linear_backward({.N = N_,
                              .C = C,
                              .OC = KVD,
                              .inp = a.ln1,
                              .weight = p(w.v_w),
                              .dout = g_.dv + l * NKVD,
                              .dinp = g_.dln,
                              .accumulate_dinp = true,
                              .dweight = gp(w.v_w),
                              .dbias = gp(w.v_b)});
    }
    norm_backward(dresid, g_.dln, a.x, w.ln1_w, w.ln1_b, a.ln1_mean, a.ln1_rstd);
}

template <class S>
void Model<S>::backward() {
    const ModelConfig& c = config;
    const int L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size;
    const size_t NC = size_t(N_) * C;
    // The buffer is [embeddings][layer 0]...[layer L-1][final norm, untied head].
    auto layer_begin = [&](int l) { return l < L ? table.layers[l].ln1_w : table.lnf_w; };
    auto open = [&](size_t begin, size_t end) {
        if (grads_window) windows_.push_back({begin, end, grads_window(begin, end)});
    };
    auto final = [&](size_t begin, size_t end) {
        std::erase_if(windows_, [&](const GradWindow& w) { return w.begin == begin; });
        if (on_grads_final) on_grads_final(begin, end);
    };
    const bool tied = table.lm_head < layer_begin(0);  // the head writes the embeddings' gradients first
    if (tied) open(0, layer_begin(0));
    open(table.lnf_w, table.total);
    ops_.head_backward({.N = N_,
                        .C = C,
                        .OC = V,
                        .ld = ld_logits_,
                        .inp = a_.lnf,
                        .weight = p(table.lm_head),
                        .dout = a_.logits,
                        .dinp = g_.dln,
                        .dweight = gp(table.lm_head)});
    ops_.zero(g_.dresid, NC);
    norm_backward(g_.dresid, g_.dln, a_.resid + size_t(L) * NC, table.lnf_w, table.lnf_b, a_.lnf_mean, a_.lnf_rstd);
    final(table.lnf_w, table.total);
    for (int l = L - 1; l >= 0; l--) {
        open(layer_begin(l), layer_begin(l + 1));
        if (l < L - 1) recompute_forward(l);  // the top layer's are still there from the forward
        layer_backward(l);  // every reader of layer l's K/V is at or above l: dK[l], dV[l] are complete
        final(layer_begin(l), layer_begin(l + 1));
    }
    if (!tied) open(0, layer_begin(0));
    ops_.embedding_backward(
        {.B = B, .T = T, .C = C, .tokens = a_.tokens, .dout = g_.dresid, .dwte = gp(table.wte), .dwpe = gp(table.wpe)});
    final(0, layer_begin(0));
}

template <class S>
double Model<S>::forward_backward(const int* inputs, const int* targets, const Route& route, double loss_scale) {
    if (!targets) throw std::invalid_argument("forward_backward needs targets");
    if (!grads) throw std::logic_error("forward_backward on a model built without training buffers");
    const int V = config.vocab_size;
    forward_logits(inputs, route);
    set_targets(targets);
    // A batch whose targets are all skipped has loss 0 and no gradient.
    const double dloss = n_valid_ ? loss_scale / double(n_valid_) : 0.0;
    ops_.fused_classifier({.N = N_,
                           .V = V,
                           .ld = ld_logits_,
                           .targets = a_.targets,
                           .losses = a_.losses,
                           .dloss = Master(dloss),
                           .dlogits = a_.logits});
    backward();
    return mean_loss();  // after backward is queued: reading the losses waits for the device
}

}  // namespace rkv
