#include "src/params.h"

#include <fmt/format.h>
#include <cmath>
#include <stdexcept>

#include "src/philox.h"

namespace rkv {

size_t TensorInfo::numel() const {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    return n;
}

ParamTable::ParamTable(const ModelConfig& c) {
    c.validate();
    const int64_t V = c.vocab_size, C = c.hidden_size, FF = c.intermediate_size;
    const int64_t QD = c.q_dim(), KVD = c.kv_dim(), HS = c.head_dim;
    auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind) {
        TensorInfo t{std::move(name), std::move(shape), total, kind};
        total += t.numel();
        tensors.push_back(std::move(t));
        return tensors.back().offset;
    };
    const bool ln = c.norm == Norm::LayerNorm;

    wte = add("model.embed_tokens.weight", {V, C}, ParamKind::Embedding);
    if (c.positions == Positions::Learned)
        wpe = add("model.embed_positions.weight", {c.max_position_embeddings, C}, ParamKind::Embedding);
    for (int l = 0; l < c.num_hidden_layers; l++) {
        const std::string p = fmt::format("model.layers.{}.", l);
        LayerParams lp;
        lp.ln1_w = add(p + "input_layernorm.weight", {C}, ParamKind::Norm);
        if (ln) lp.ln1_b = add(p + "input_layernorm.bias", {C}, ParamKind::Bias);
        lp.q_w = add(p + "self_attn.q_proj.weight", {QD, C}, ParamKind::Matrix);
        lp.k_w = add(p + "self_attn.k_proj.weight", {KVD, C}, ParamKind::Matrix);
        lp.v_w = add(p + "self_attn.v_proj.weight", {KVD, C}, ParamKind::Matrix);
        if (c.attention_bias) {
            lp.q_b = add(p + "self_attn.q_proj.bias", {QD}, ParamKind::Bias);
            lp.k_b = add(p + "self_attn.k_proj.bias", {KVD}, ParamKind::Bias);
            lp.v_b = add(p + "self_attn.v_proj.bias", {KVD}, ParamKind::Bias);
        }
        if (c.qk_norm) {
            lp.q_norm_w = add(p + "self_attn.q_norm.weight", {HS}, ParamKind::Norm);
            lp.k_norm_w = add(p + "self_attn.k_norm.weight", {HS}, ParamKind::Norm);
        }
        lp.o_w = add(p + "self_attn.o_proj.weight", {C, QD}, ParamKind::Matrix);
        if (c.attention_bias) lp.o_b = add(p + "self_attn.o_proj.bias", {C}, ParamKind::Bias);
        lp.ln2_w = add(p + "post_attention_layernorm.weight", {C}, ParamKind::Norm);
        if (ln) lp.ln2_b = add(p + "post_attention_layernorm.bias", {C}, ParamKind::Bias);
        if (c.mlp == Mlp::SwiGLU) lp.gate_w = add(p + "mlp.gate_proj.weight", {FF, C}, ParamKind::Matrix);
        lp.up_w = add(p + "mlp.up_proj.weight", {FF, C}, ParamKind::Matrix);
        if (c.mlp_bias) lp.up_b = add(p + "mlp.up_proj.bias", {FF}, ParamKind::Bias);
        lp.down_w = add(p + "mlp.down_proj.weight", {C, FF}, ParamKind::Matrix);
        if (c.mlp_bias) lp.down_b = add(p + "mlp.down_proj.bias", {C}, ParamKind::Bias);
        layers.push_back(lp);
    }
    lnf_w = add("model.norm.weight", {C}, ParamKind::Norm);
    if (ln) lnf_b = add("model.norm.bias", {C}, ParamKind::Bias);
    lm_head = c.tie_word_embeddings ? wte : add("lm_head.weight", {V, C}, ParamKind::Matrix);
}

const TensorInfo& ParamTable::find(const std::string& name) const {
    for (auto& t : tensors)
        if (t.name == name) return t;
    throw std::out_of_range(fmt::format("no parameter tensor named '{}'", name));
}

bool decays(const TensorInfo& t, bool decay_embeddings) {
    return t.kind == ParamKind::Matrix || (decay_embeddings && t.kind == ParamKind::Embedding);
}

void init_params(float* params, const ParamTable& table, const ModelConfig& c, uint64_t seed) {
    const float residual_scale = 1.0f / std::sqrt(2.0f * float(c.num_hidden_layers));
    for (size_t i = 0; i < table.tensors.size(); i++) {
        const TensorInfo& t = table.tensors[i];
        float* w = params + t.offset;
        const size_t n = t.numel();
        if (t.kind == ParamKind::Norm) {
            std::fill(w, w + n, 1.0f);
        } else if (t.kind == ParamKind::Bias) {
            std::fill(w, w + n, 0.0f);
        } else {
            const bool residual = t.name.ends_with("o_proj.weight") || t.name.ends_with("down_proj.weight");
            const float std = 0.02f * (residual ? residual_scale : 1.0f);
            // Stream i starts at 2^40 * i: far beyond any tensor's size, so streams never overlap.
            philox_normal(w, n, seed, uint64_t(i) << 40, 0.0f, std);
        }
    }
}

}  // namespace rkv
