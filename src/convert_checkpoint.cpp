// ./convert_checkpoint: moves a GPT-2 between llm.c's .bin format and rkv's checkpoint
// directory (model.safetensors + config.json).
//   convert_checkpoint gpt2_124M.bin runs/gpt2        llm.c -> rkv
//   convert_checkpoint runs/x/ckpt_00000600 x.bin     rkv -> llm.c (fp32; --bf16 for version 5)
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "src/checkpoint.h"
#include "src/llmc_checkpoint.h"

int main(int argc, char** argv) {
    CLI::App app{"convert a GPT-2 between llm.c's .bin and an rkv checkpoint directory"};
    std::string in, out;
    bool bf16 = false;
    app.add_option("input", in, "an llm.c .bin or an rkv checkpoint directory")->required();
    app.add_option("output", out, "a .bin path (llm.c) or a directory (rkv)")->required();
    app.add_flag("--bf16", bf16, "write llm.c version 5 (bf16) instead of 3 (fp32)");
    CLI11_PARSE(app, argc, argv);
    try {
        rkv::Checkpoint ck = rkv::load_model_weights(in);
        const rkv::ModelConfig& config = ck.config;
        const std::vector<float>& params = ck.params;
        if (out.ends_with(".bin")) rkv::save_llmc_checkpoint(out, config, params, bf16 ? rkv::kLlmcBf16 : rkv::kLlmcFp32);
        else rkv::save_model(out, config, params.data());
        fmt::print("{} -> {} ({} parameters)\n", in, out, params.size());
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "convert_checkpoint: error: {}\n", e.what());
        return 1;
    }
}
