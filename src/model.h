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
//
// K and V of all layers live in one buffer (L, B, T, NKV, HS), so an attention kernel can
// take the route as data. In backward, the layers run top-down: every reader of layer j
// is at or above j, so by the time layer j is reached, dK[j] and dV[j] hold the sum of
// all its readers' contributions and flow into layer j's K/V projections. Layers nobody
// reads compute no K/V and get no W_k, W_v gradient.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "src/config.h"
#include "src/layer_ops.h"
#include "src/params.h"
#include "src/route.h"

namespace rkv {

template <class T>
class Model {
public:
    const ModelConfig config;
    const ParamTable table;
    const int B, Tn;                      // micro-batch shape the buffers are sized for
    const size_t capacity;                // elements of params and grads: table.total, or more
                                          // (zeros) so that ranks can split them evenly
    T* params = nullptr;                  // (capacity)
    T* grads = nullptr;                   // (capacity); backward accumulates into it

    // Called in backward with each layer's d(attention output), (B, T, NH, HS); for tests.
    std::function<void(int layer, const T* datt)> on_attention_grad;

    Model(const ModelConfig& c, LayerOps<T>& ops, int B, int Tn, size_t param_capacity = 0);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // inputs, targets: host arrays (B, T); targets may be null (no loss), -1 skips a token.
    // Returns the mean loss over non-skipped targets.
    double forward(const int* inputs, const int* targets, const Route& route);
    // forward, then backward of loss_scale * loss into grads.
    double forward_backward(const int* inputs, const int* targets, const Route& route, double loss_scale = 1.0);
    void zero_grad() { ops_.zero(grads, table.total); }

    const T* logits() const { return a_.logits; }                                  // (B, T, V)
    const T* k(int l) const { return layer_acts(l).k; }                            // (B, T, NKV, HS)
    const T* v(int l) const { return layer_acts(l).v; }
    const T* q(int l) const { return layer_acts(l).q; }                            // (B, T, NH, HS)
    const T* att(int l) const { return layer_acts(l).att; }
    const T* lse(int l) const { return layer_acts(l).lse; }                        // (B, NH, T)
    const T* dk(int l) const { return g_.dk + size_t(l) * N_ * config.kv_dim(); }  // after backward
    const T* dv(int l) const { return g_.dv + size_t(l) * N_ * config.kv_dim(); }

private:
    LayerOps<T>& ops_;
    const int N_;                         // B * T rows
    Route route_;
    size_t n_valid_ = 0;                  // non-skipped targets of the last forward
    void* arena_ = nullptr;

    struct Activations {
        int* tokens; int* targets;        // (N)
        int* route;                       // (L): the route's kv_src, read by the attention kernels
        T* resid;                         // (L+1, N, C): the residual stream entering each layer, and the last
        T* ln1; T* ln1_mean; T* ln1_rstd; // (L, N, C), (L, N), (L, N)
        T* qp; T* q; T* q_rstd;           // (L, N, QD): projection, after QK-norm and RoPE; (L, N*NH)
        T* kp; T* k; T* k_rstd;           // (L, N, KVD), (L, N, KVD), (L, N*NKV)
        T* v;                             // (L, N, KVD)
        T* att; T* lse;                   // (L, N, QD), (L, B*NH*T)
        T* mid;                           // (L, N, C): residual after attention
        T* ln2; T* ln2_mean; T* ln2_rstd; // (L, N, C), (L, N), (L, N)
        T* fc; T* up; T* act;             // (L, N, FF): GELU input or SwiGLU gate; SwiGLU up; activation
        T* lnf; T* lnf_mean; T* lnf_rstd; // (N, C), (N), (N)
        T* logits; T* losses;             // (N, V), (N)
        T* proj;                          // (N, C) scratch for a projection's output
        T* qk_tmp;                        // (N, QD) scratch between QK-norm and RoPE
    } a_{};
    struct Gradients {
        T* dresid; T* dln;                // (N, C)
        T* datt; T* dq; T* dqk_tmp;       // (N, QD)
        T* dk; T* dv;                     // (L, N, KVD): accumulated over each source's readers
        T* dkp;                           // (N, KVD)
        T* dfc; T* dup; T* dact;          // (N, FF)
        T* dlogits;                       // (N, V)
    } g_{};

    // Layer l's slice of every per-layer activation (null where the family has none).
    struct LayerActs {
        T* x; T* ln1; T* ln1_mean; T* ln1_rstd;
        T* qp; T* q; T* q_rstd;
        T* kp; T* k; T* k_rstd; T* v;
        T* att; T* lse; T* mid;
        T* ln2; T* ln2_mean; T* ln2_rstd;
        T* fc; T* up; T* act; T* out;
    };
    LayerActs layer_acts(int l) const;

    bool qk_transformed() const { return config.qk_norm || config.positions == Positions::RoPE; }
    const T* p(size_t offset) const { return offset == LayerParams::npos ? nullptr : params + offset; }
    T* gp(size_t offset) const { return offset == LayerParams::npos ? nullptr : grads + offset; }

    void norm_forward(T* out, T* mean, T* rstd, const T* inp, size_t w, size_t b);
    void norm_backward(T* dinp, const T* dout, const T* inp, size_t w, size_t b, const T* mean, const T* rstd);
    void qk_forward(T* out, T* rstd, const T* raw, size_t norm_w, int H);
    void qk_backward(T* draw, const T* dout, const T* raw, size_t norm_w, const T* rstd, int H);
    void layer_forward(int l);
    void layer_backward(int l);
    void backward(double loss_scale);
};

// ---------------------------------------------------------------------------------------

template <class T>
Model<T>::Model(const ModelConfig& c, LayerOps<T>& ops, int B_, int Tn_, size_t param_capacity)
    : config(c), table(c), B(B_), Tn(Tn_), capacity(std::max(table.total, param_capacity)), ops_(ops),
      N_(B_ * Tn_) {
    if (B < 1 || Tn < 1) throw std::invalid_argument(fmt::format("batch {} x {} is empty", B, Tn));
    if (Tn > c.max_position_embeddings)
        throw std::invalid_argument(fmt::format("sequence length {} exceeds max_position_embeddings {}", Tn,
                                                c.max_position_embeddings));
    const size_t L = c.num_hidden_layers, N = N_, C = c.hidden_size, V = c.vocab_size;
    const size_t QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const size_t NH = c.num_attention_heads, NKV = c.num_key_value_heads;
    const bool ln = c.norm == Norm::LayerNorm, swiglu = c.mlp == Mlp::SwiGLU, tr = qk_transformed();

    // Two passes over the same list: first count the bytes, then hand out the pointers.
    char* base = nullptr;
    size_t used = 0;
    auto take = [&](auto*& ptr, size_t n, bool needed = true) {
        using P = std::remove_reference_t<decltype(*ptr)>;
        if (!needed) { ptr = nullptr; return; }
        used = (used + 63) / 64 * 64;
        ptr = base ? reinterpret_cast<P*>(base + used) : nullptr;
        used += n * sizeof(P);
    };
    auto layout = [&] {
        used = 0;
        take(params, capacity);
        take(grads, capacity);
        Activations& a = a_;
        take(a.tokens, N); take(a.targets, N); take(a.route, L);
        take(a.resid, (L + 1) * N * C);
        take(a.ln1, L * N * C); take(a.ln1_mean, L * N, ln); take(a.ln1_rstd, L * N);
        take(a.qp, L * N * QD); take(a.q, L * N * QD, tr); take(a.q_rstd, L * N * NH, c.qk_norm);
        take(a.kp, L * N * KVD, tr); take(a.k, L * N * KVD); take(a.k_rstd, L * N * NKV, c.qk_norm);
        take(a.v, L * N * KVD);
        take(a.att, L * N * QD); take(a.lse, L * N * NH);
        take(a.mid, L * N * C);
        take(a.ln2, L * N * C); take(a.ln2_mean, L * N, ln); take(a.ln2_rstd, L * N);
        take(a.fc, L * N * FF); take(a.up, L * N * FF, swiglu); take(a.act, L * N * FF);
        take(a.lnf, N * C); take(a.lnf_mean, N, ln); take(a.lnf_rstd, N);
        take(a.logits, N * V); take(a.losses, N);
        take(a.proj, N * C);
        take(a.qk_tmp, N * QD, c.qk_norm && c.positions == Positions::RoPE);
        Gradients& g = g_;
        take(g.dresid, N * C); take(g.dln, N * C);
        take(g.datt, N * QD); take(g.dq, N * QD); take(g.dqk_tmp, N * QD, c.qk_norm && c.positions == Positions::RoPE);
        take(g.dk, L * N * KVD); take(g.dv, L * N * KVD); take(g.dkp, N * KVD, tr);
        take(g.dfc, N * FF); take(g.dup, N * FF, swiglu); take(g.dact, N * FF);
        take(g.dlogits, N * V);
    };
    layout();
    base = static_cast<char*>(arena_ = ops_.alloc_bytes(used));
    layout();
    if (!tr) {              // without QK-norm and RoPE, q and k are the projections themselves
        a_.q = a_.qp;
        a_.kp = a_.k;
    }
    ops_.zero(params, capacity);
    ops_.zero(grads, capacity);
}

template <class T>
Model<T>::~Model() { ops_.free_bytes(arena_); }

template <class T>
typename Model<T>::LayerActs Model<T>::layer_acts(int l) const {
    const ModelConfig& c = config;
    const size_t N = N_, C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    auto at = [l](T* base, size_t per_layer) { return base ? base + l * per_layer : nullptr; };
    const Activations& a = a_;
    return {at(a.resid, N * C), at(a.ln1, N * C), at(a.ln1_mean, N), at(a.ln1_rstd, N),
            at(a.qp, N * QD), at(a.q, N * QD), at(a.q_rstd, N * c.num_attention_heads),
            at(a.kp, N * KVD), at(a.k, N * KVD), at(a.k_rstd, N * c.num_key_value_heads), at(a.v, N * KVD),
            at(a.att, N * QD), at(a.lse, N * c.num_attention_heads), at(a.mid, N * C),
            at(a.ln2, N * C), at(a.ln2_mean, N), at(a.ln2_rstd, N),
            at(a.fc, N * FF), at(a.up, N * FF), at(a.act, N * FF), at(a.resid, N * C) + N * C};
}

template <class T>
void Model<T>::norm_forward(T* out, T* mean, T* rstd, const T* inp, size_t w, size_t b) {
    const int C = config.hidden_size;
    if (config.norm == Norm::LayerNorm) ops_.layernorm_forward(out, mean, rstd, inp, p(w), p(b), N_, C, config.rms_norm_eps);
    else ops_.rmsnorm_forward(out, rstd, inp, p(w), N_, C, config.rms_norm_eps);
}

template <class T>
void Model<T>::norm_backward(T* dinp, const T* dout, const T* inp, size_t w, size_t b, const T* mean, const T* rstd) {
    const int C = config.hidden_size;
    if (config.norm == Norm::LayerNorm) ops_.layernorm_backward(dinp, gp(w), gp(b), dout, inp, p(w), mean, rstd, N_, C);
    else ops_.rmsnorm_backward(dinp, gp(w), dout, inp, p(w), rstd, N_, C);
}

// raw (N, H*HS) -> out: QK-norm, then RoPE (each when the family has it).
template <class T>
void Model<T>::qk_forward(T* out, T* rstd, const T* raw, size_t norm_w, int H) {
    const int HS = config.head_dim;
    const bool rope = config.positions == Positions::RoPE;
    if (config.qk_norm) {
        T* normed = rope ? a_.qk_tmp : out;
        ops_.rmsnorm_forward(normed, rstd, raw, p(norm_w), N_ * H, HS, config.rms_norm_eps);
        raw = normed;
    }
    if (rope) ops_.rope_forward(out, raw, B, Tn, H, HS, config.rope_theta);
}

template <class T>
void Model<T>::qk_backward(T* draw, const T* dout, const T* raw, size_t norm_w, const T* rstd, int H) {
    const int HS = config.head_dim;
    const bool rope = config.positions == Positions::RoPE;
    const size_t n = size_t(N_) * H * HS;
    if (!config.qk_norm) {
        ops_.rope_backward(draw, dout, B, Tn, H, HS, config.rope_theta);
        return;
    }
    if (rope) {
        ops_.zero(g_.dqk_tmp, n);
        ops_.rope_backward(g_.dqk_tmp, dout, B, Tn, H, HS, config.rope_theta);
        dout = g_.dqk_tmp;
    }
    ops_.rmsnorm_backward(draw, gp(norm_w), dout, raw, p(norm_w), rstd, N_ * H, HS);
}

template <class T>
void Model<T>::layer_forward(int l) {
    const ModelConfig& c = config;
    const LayerParams& w = table.layers[l];
    const int C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const int NH = c.num_attention_heads, NKV = c.num_key_value_heads, HS = c.head_dim;
    const LayerActs a = layer_acts(l);
    const size_t kv_stride = size_t(N_) * KVD;

    norm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.x, w.ln1_w, w.ln1_b);
    ops_.linear_forward(a.qp, a.ln1, p(w.q_w), p(w.q_b), N_, C, QD);
    if (qk_transformed()) qk_forward(a.q, a.q_rstd, a.qp, w.q_norm_w, NH);
    if (route_.is_read(l)) {
        ops_.linear_forward(a.kp, a.ln1, p(w.k_w), p(w.k_b), N_, C, KVD);
        ops_.linear_forward(a.v, a.ln1, p(w.v_w), p(w.v_b), N_, C, KVD);
        if (qk_transformed()) qk_forward(a.k, a.k_rstd, a.kp, w.k_norm_w, NKV);
    }
    ops_.attention_forward(a.att, a.lse, a.q, a_.k, a_.v, a_.route, l, kv_stride, B, Tn, NH, NKV, HS);
    ops_.linear_forward(a_.proj, a.att, p(w.o_w), p(w.o_b), N_, QD, C);
    ops_.residual_forward(a.mid, a.x, a_.proj, size_t(N_) * C);

    norm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.ln2_w, w.ln2_b);
    const size_t NF = size_t(N_) * FF;
    if (c.mlp == Mlp::Gelu) {
        ops_.linear_forward(a.fc, a.ln2, p(w.up_w), p(w.up_b), N_, C, FF);
        ops_.gelu_forward(a.act, a.fc, NF);
    } else {
        ops_.linear_forward(a.fc, a.ln2, p(w.gate_w), nullptr, N_, C, FF);
        ops_.linear_forward(a.up, a.ln2, p(w.up_w), p(w.up_b), N_, C, FF);
        ops_.swiglu_forward(a.act, a.fc, a.up, NF);
    }
    ops_.linear_forward(a_.proj, a.act, p(w.down_w), p(w.down_b), N_, FF, C);
    ops_.residual_forward(a.out, a.mid, a_.proj, size_t(N_) * C);
}

template <class T>
double Model<T>::forward(const int* inputs, const int* targets, const Route& route) {
    const ModelConfig& c = config;
    const int L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size;
    validate_route(route, L);
    route_ = route;
    for (int i = 0; i < N_; i++)
        if (inputs[i] < 0 || inputs[i] >= V)
            throw std::invalid_argument(fmt::format("input token {} at position {} is outside the vocabulary (size {})",
                                                    inputs[i], i, V));
    ops_.upload(a_.tokens, inputs, N_);
    ops_.upload(a_.route, route.kv_src.data(), L);
    ops_.embedding_forward(a_.resid, a_.tokens, p(table.wte), p(table.wpe), B, Tn, C);
    for (int l = 0; l < L; l++) layer_forward(l);
    norm_forward(a_.lnf, a_.lnf_mean, a_.lnf_rstd, a_.resid + size_t(L) * N_ * C, table.lnf_w, table.lnf_b);
    ops_.linear_forward(a_.logits, a_.lnf, p(table.lm_head), nullptr, N_, C, V);
    if (!targets) return std::numeric_limits<double>::quiet_NaN();

    n_valid_ = 0;
    for (int i = 0; i < N_; i++) {
        if (targets[i] < -1 || targets[i] >= V)
            throw std::invalid_argument(fmt::format("target {} at position {} is outside the vocabulary (size {})",
                                                    targets[i], i, V));
        n_valid_ += targets[i] >= 0;
    }
    ops_.upload(a_.targets, targets, N_);
    ops_.cross_entropy_forward(a_.losses, a_.logits, a_.targets, N_, V);
    std::vector<T> losses(N_);
    ops_.download(losses.data(), a_.losses, N_);
    double sum = 0;
    for (T x : losses) sum += double(x);
    return n_valid_ ? sum / double(n_valid_) : 0.0;
}

template <class T>
void Model<T>::layer_backward(int l) {
    const ModelConfig& c = config;
    const LayerParams& w = table.layers[l];
    const int C = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), FF = c.intermediate_size;
    const int NH = c.num_attention_heads, NKV = c.num_key_value_heads, HS = c.head_dim;
    const size_t NC = size_t(N_) * C, NQ = size_t(N_) * QD, NKVD = size_t(N_) * KVD, NF = size_t(N_) * FF;
    const LayerActs a = layer_acts(l);
    T* dresid = g_.dresid;    // holds d resid[l+1] on entry, d resid[l] on exit

    // MLP: out = mid + down(act(norm2(mid)))
    ops_.zero(g_.dact, NF);
    ops_.linear_backward(g_.dact, gp(w.down_w), gp(w.down_b), dresid, a.act, p(w.down_w), N_, FF, C);
    ops_.zero(g_.dfc, NF);
    ops_.zero(g_.dln, NC);
    if (c.mlp == Mlp::Gelu) {
        ops_.gelu_backward(g_.dfc, g_.dact, a.fc, NF);
        ops_.linear_backward(g_.dln, gp(w.up_w), gp(w.up_b), g_.dfc, a.ln2, p(w.up_w), N_, C, FF);
    } else {
        ops_.zero(g_.dup, NF);
        ops_.swiglu_backward(g_.dfc, g_.dup, g_.dact, a.fc, a.up, NF);
        ops_.linear_backward(g_.dln, gp(w.gate_w), nullptr, g_.dfc, a.ln2, p(w.gate_w), N_, C, FF);
        ops_.linear_backward(g_.dln, gp(w.up_w), gp(w.up_b), g_.dup, a.ln2, p(w.up_w), N_, C, FF);
    }
    norm_backward(dresid, g_.dln, a.mid, w.ln2_w, w.ln2_b, a.ln2_mean, a.ln2_rstd);

    // Attention: mid = x + o_proj(attention(q, k[src], v[src])); dK, dV go to the source.
    ops_.zero(g_.datt, NQ);
    ops_.linear_backward(g_.datt, gp(w.o_w), gp(w.o_b), dresid, a.att, p(w.o_w), N_, QD, C);
    if (on_attention_grad) on_attention_grad(l, g_.datt);
    ops_.zero(g_.dq, NQ);
    ops_.attention_backward(g_.dq, g_.dk, g_.dv, g_.datt, a.q, a_.k, a_.v, a.att, a.lse, a_.route, l, NKVD, B, Tn,
                            NH, NKV, HS);

    ops_.zero(g_.dln, NC);
    T* dqp = g_.dq;
    if (qk_transformed()) {
        dqp = g_.datt;    // datt is spent; dqk_tmp is qk_backward's own scratch
        ops_.zero(dqp, NQ);
        qk_backward(dqp, g_.dq, a.qp, w.q_norm_w, a.q_rstd, NH);
    }
    ops_.linear_backward(g_.dln, gp(w.q_w), gp(w.q_b), dqp, a.ln1, p(w.q_w), N_, C, QD);
    if (route_.is_read(l)) {     // every reader of layer l is at or above l: dK[l], dV[l] are complete
        T* dk = g_.dk + l * NKVD;
        if (qk_transformed()) {
            ops_.zero(g_.dkp, NKVD);
            qk_backward(g_.dkp, dk, a.kp, w.k_norm_w, a.k_rstd, NKV);
            dk = g_.dkp;
        }
        ops_.linear_backward(g_.dln, gp(w.k_w), gp(w.k_b), dk, a.ln1, p(w.k_w), N_, C, KVD);
        ops_.linear_backward(g_.dln, gp(w.v_w), gp(w.v_b), g_.dv + l * NKVD, a.ln1, p(w.v_w), N_, C, KVD);
    }
    norm_backward(dresid, g_.dln, a.x, w.ln1_w, w.ln1_b, a.ln1_mean, a.ln1_rstd);
}

template <class T>
void Model<T>::backward(double loss_scale) {
    const ModelConfig& c = config;
    const int L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size;
    const size_t NC = size_t(N_) * C, NKVD = size_t(N_) * c.kv_dim();
    ops_.zero(g_.dlogits, size_t(N_) * V);
    if (n_valid_) ops_.cross_entropy_backward(g_.dlogits, a_.logits, a_.targets, T(loss_scale / double(n_valid_)), N_, V);
    ops_.zero(g_.dln, NC);
    ops_.linear_backward(g_.dln, gp(table.lm_head), nullptr, g_.dlogits, a_.lnf, p(table.lm_head), N_, C, V);
    ops_.zero(g_.dresid, NC);
    norm_backward(g_.dresid, g_.dln, a_.resid + size_t(L) * NC, table.lnf_w, table.lnf_b, a_.lnf_mean, a_.lnf_rstd);
    ops_.zero(g_.dk, size_t(L) * NKVD);
    ops_.zero(g_.dv, size_t(L) * NKVD);
    for (int l = L - 1; l >= 0; l--) layer_backward(l);
    ops_.embedding_backward(gp(table.wte), gp(table.wpe), g_.dresid, a_.tokens, B, Tn, C);
}

template <class T>
double Model<T>::forward_backward(const int* inputs, const int* targets, const Route& route, double loss_scale) {
    if (!targets) throw std::invalid_argument("forward_backward needs targets");
    const double loss = forward(inputs, targets, route);
    backward(loss_scale);
    return loss;
}

}  // namespace rkv
