// Model configuration: one struct for GPT-2, Llama 3, Mistral and Qwen3 (DESIGN.md section 2).
// It reads and writes Hugging Face config.json (DESIGN.md section 5): both layouts transformers
// writes (4.x: top-level rope_theta and rope_scaling; 5.x: rope_parameters), GPT-2's own field
// names, and what it writes loads in transformers as the same model.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ref/rope.h"

namespace rkv {

enum class Norm { LayerNorm, RMSNorm };  // LayerNorm has a bias, RMSNorm does not
enum class Positions { Learned, RoPE };  // absolute embedding table vs rotary
enum class Mlp { Gelu, SwiGLU };         // up -> gelu(tanh) -> down vs down(silu(gate) * up)

struct ModelConfig {
    std::string model_type = "gpt2";  // "gpt2", "llama", "mistral" or "qwen3"
    int vocab_size = 0;
    int hidden_size = 0;          // C
    int intermediate_size = 0;    // MLP width
    int num_hidden_layers = 0;    // L
    int num_attention_heads = 0;  // NH
    int num_key_value_heads = 0;  // NKV; NH % NKV == 0 (GQA)
    int head_dim = 0;             // HS; NH * HS need not equal C (Qwen3)
    double rms_norm_eps = 1e-5;   // epsilon of the model's norm, LayerNorm included
    RopeParams rope;              // rope_theta and the rope scaling (ref/rope.h)
    bool tie_word_embeddings = true;
    int max_position_embeddings = 0;  // longest sequence; rows of the position table
    // What tells the families apart: set by the family (model_type), never by a config file.
    Norm norm = Norm::LayerNorm;
    Positions positions = Positions::Learned;
    Mlp mlp = Mlp::Gelu;
    bool qk_norm = false;         // per-head RMSNorm on q and k before RoPE
    bool attention_bias = false;  // biases on q, k, v, o projections
    bool mlp_bias = false;        // biases on the MLP projections

    int q_dim() const { return num_attention_heads * head_dim; }
    int kv_dim() const { return num_key_value_heads * head_dim; }

    // Throws std::invalid_argument naming the offending field.
    void validate() const;
};

// Presets by name: gpt2-124m, gpt2-tiny, llama3-tiny, qwen3-tiny, qwen3-0.6b, qwen3-1.7b.
ModelConfig preset(const std::string& name);
std::vector<std::string> preset_names();

// The Hugging Face config.json of the model: architectures, model_type, the family's own field
// names (GPT-2's n_embd, n_layer ...), RoPE in both layouts (rope_theta + rope_scaling, and
// rope_parameters) and the weights' dtype ("float32", "bfloat16" or "float16") as dtype and
// torch_dtype. rkv's checkpoints hold fp32 weights, hence the default.
nlohmann::json to_json(const ModelConfig& c, const std::string& dtype = "float32");
// Reads either layout. Sizes are checked as 64-bit integers against limits before anything is
// sized from them. A field that changes the computation in a way rkv does not implement (another
// rope_type or activation, a sliding window that would apply, a bias the family lacks,
// quantization ...) is refused with an std::invalid_argument naming it and its value; fields
// that do not change the math (token ids, dtype, initializer_range ...) are ignored. Missing
// fields take transformers' defaults for the family, except the sizes, which are required.
ModelConfig config_from_json(const nlohmann::json& j);
ModelConfig load_config(const std::string& path);

}  // namespace rkv
