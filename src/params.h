// The parameters live in one contiguous buffer described by a table of named tensors.
// The same table drives initialisation, checkpoints (safetensors names and shapes),
// the optimizer (which tensors get weight decay) and sharding across ranks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/config.h"

namespace rkv {

enum class ParamKind { Matrix, Embedding, Norm, Bias };

struct TensorInfo {
    std::string name;            // Hugging Face style, e.g. "model.layers.3.self_attn.k_proj.weight"
    std::vector<int64_t> shape;  // row-major
    size_t offset = 0;           // in elements from the start of the buffer
    ParamKind kind = ParamKind::Matrix;
    size_t numel() const;
};

// Element offsets of one layer's tensors; npos marks a tensor the family does not have.
// q_proj, k_proj, v_proj are adjacent (and so are their biases), so a GPU path may treat
// them as one fused (q_dim + 2 kv_dim, C) matrix and still skip K/V by using only its first rows.
struct LayerParams {
    static constexpr size_t npos = SIZE_MAX;
    size_t ln1_w = npos, ln1_b = npos;          // (C)
    size_t q_w = npos, k_w = npos, v_w = npos;  // (q_dim, C), (kv_dim, C), (kv_dim, C)
    size_t q_b = npos, k_b = npos, v_b = npos;  // (q_dim), (kv_dim), (kv_dim)
    size_t q_norm_w = npos, k_norm_w = npos;    // (HS)
    size_t o_w = npos, o_b = npos;              // (C, q_dim), (C)
    size_t ln2_w = npos, ln2_b = npos;          // (C)
    size_t gate_w = npos;                       // (FF, C), SwiGLU only
    size_t up_w = npos, up_b = npos;            // (FF, C), (FF)
    size_t down_w = npos, down_b = npos;        // (C, FF), (C)
};

struct ParamTable {
    std::vector<TensorInfo> tensors;
    size_t total = 0;                             // elements in the buffer
    size_t wte = 0;                               // (V, C)
    size_t wpe = LayerParams::npos;               // (maxT, C), learned positions only
    std::vector<LayerParams> layers;              // (L)
    size_t lnf_w = 0, lnf_b = LayerParams::npos;  // (C)
    size_t lm_head = 0;                           // (V, C); equals wte when tied

    explicit ParamTable(const ModelConfig& c);
    const TensorInfo& find(const std::string& name) const;  // throws naming the tensor
};

// Weight decay applies to matrices only: embeddings, norms and biases are excluded
// unless asked for.
bool decays(const TensorInfo& t, bool decay_embeddings);

// GPT-2 style initialisation, deterministic in `seed`: N(0, 0.02) for matrices and
// embeddings, scaled by 1/sqrt(2L) for the projections that write into the residual
// stream (o_proj, down_proj); norm weights 1, biases 0. Each tensor draws from its own
// Philox stream, so adding a tensor never changes the others.
void init_params(float* params, const ParamTable& table, const ModelConfig& c, uint64_t seed);

}  // namespace rkv
