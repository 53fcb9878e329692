// Model configuration: one struct for GPT-2, Llama 3 and Qwen3 (DESIGN.md section 2).
// Field names follow Hugging Face config.json so a config file reads the same here and there.
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace rkv {

enum class Norm { LayerNorm, RMSNorm };        // LayerNorm has a bias, RMSNorm does not
enum class Positions { Learned, RoPE };        // absolute embedding table vs rotary
enum class Mlp { Gelu, SwiGLU };               // up -> gelu(tanh) -> down vs down(silu(gate) * up)

struct ModelConfig {
    std::string model_type = "gpt2";           // "gpt2", "llama" or "qwen3"
    int vocab_size = 0;
    int hidden_size = 0;                       // C
    int intermediate_size = 0;                 // MLP width
    int num_hidden_layers = 0;                 // L
    int num_attention_heads = 0;               // NH
    int num_key_value_heads = 0;               // NKV; NH % NKV == 0 (GQA)
    int head_dim = 0;                          // HS; NH * HS need not equal C (Qwen3)
    double rms_norm_eps = 1e-5;                // epsilon of the model's norm, LayerNorm included
    double rope_theta = 10000.0;
    bool tie_word_embeddings = true;
    int max_position_embeddings = 0;           // longest sequence; rows of the position table
    // What tells the families apart.
    Norm norm = Norm::LayerNorm;
    Positions positions = Positions::Learned;
    Mlp mlp = Mlp::Gelu;
    bool qk_norm = false;                      // per-head RMSNorm on q and k before RoPE
    bool attention_bias = false;               // biases on q, k, v, o projections
    bool mlp_bias = false;                     // biases on the MLP projections

    int q_dim() const { return num_attention_heads * head_dim; }
    int kv_dim() const { return num_key_value_heads * head_dim; }

    // Throws std::invalid_argument naming the offending field.
    void validate() const;
};

// Presets by name: gpt2-124m, gpt2-tiny, llama3-tiny, qwen3-tiny, qwen3-0.6b, qwen3-1.7b.
ModelConfig preset(const std::string& name);
std::vector<std::string> preset_names();

nlohmann::json to_json(const ModelConfig& c);
// Unknown keys are ignored (HF configs carry many); missing family keys default from model_type.
ModelConfig config_from_json(const nlohmann::json& j);
ModelConfig load_config(const std::string& path);

}  // namespace rkv
