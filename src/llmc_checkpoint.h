// llm.c GPT-2 checkpoints (the `.bin` files of karpathy/llm.c), read and written.
//
// The file is a 256 x int32 little-endian header followed by the parameters:
//   header[0] = 20240326 (magic), header[1] = 3 (fp32 parameters) or 5 (bf16 parameters),
//   header[2..7] = maxT, V, L, NH, C, Vp   (Vp: the vocabulary padded, V <= Vp)
// then 16 tensors, each with all layers stacked, in llm.c's order (fill_in_parameter_sizes
// in train_gpt2.c):
//   wte (Vp, C), wpe (maxT, C), ln1w (L, C), ln1b (L, C), qkvw (L, 3C, C), qkvb (L, 3C),
//   attprojw (L, C, C), attprojb (L, C), ln2w (L, C), ln2b (L, C), fcw (L, 4C, C), fcb (L, 4C),
//   fcprojw (L, C, 4C), fcprojb (L, C), lnfw (C), lnfb (C).
// qkvw's rows [0, C) are the query projection, [C, 2C) the key, [2C, 3C) the value, which
// rkv keeps as separate adjacent tensors q_proj, k_proj, v_proj (and likewise for qkvb).
// The padding rows [V, Vp) of wte are dropped on load (llm.c never reads or trains them)
// and written as zeros on save. The head is tied to wte.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/config.h"

namespace rkv {

constexpr int kLlmcCheckpointMagic = 20240326;
constexpr int kLlmcFp32 = 3;  // version: fp32 parameters
constexpr int kLlmcBf16 = 5;  // version: bf16 parameters

struct LlmcCheckpoint {
    ModelConfig config;         // model_type gpt2, vocab_size = V (unpadded)
    std::vector<float> params;  // laid out by ParamTable(config)
    int version = 0;            // as read: 3 or 5
    int padded_vocab_size = 0;  // Vp as read
};

// The GPT-2 config llm.c's header describes: LayerNorm eps 1e-5, GELU (tanh), FF = 4C,
// tied head, biases everywhere, max_position_embeddings = maxT.
ModelConfig llmc_gpt2_config(int maxT, int V, int L, int NH, int C);

// llm.c's padding: V rounded up to a multiple of 128 (50257 -> 50304).
int llmc_padded_vocab(int V);

// True when `path` is a readable file that starts with llm.c's checkpoint magic
// (so a caller can tell an llm.c `.bin` from an rkv checkpoint directory).
bool is_llmc_checkpoint(const std::string& path);

// Reads a version 3 or 5 checkpoint; bf16 values are widened exactly. Throws
// std::runtime_error naming the file and the problem: cannot open, wrong magic,
// unknown version, a header that is not GPT-2 shaped, a size that disagrees with
// the header (truncated or trailing bytes).
LlmcCheckpoint load_llmc_checkpoint(const std::string& path);

// Writes `params` (ParamTable(config) layout) as version 3 (fp32) or 5 (bf16, rounded
// to nearest even). padded_vocab 0 means llmc_padded_vocab(V); padding rows are zero.
// The file appears under `path` only once complete (temporary file in the same
// directory, then rename). Throws std::runtime_error if the config is not something
// llm.c's GPT-2 can represent, the version is not 3 or 5, or the write fails.
void save_llmc_checkpoint(const std::string& path, const ModelConfig& config, const float* params,
                          int version = kLlmcFp32, int padded_vocab = 0);
void save_llmc_checkpoint(const std::string& path, const ModelConfig& config, const std::vector<float>& params,
                          int version = kLlmcFp32, int padded_vocab = 0);

// bf16 conversions as llm.c and PyTorch do them: round to nearest even (NaN stays NaN),
// and the exact widening.
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);

}  // namespace rkv
