// ./convert_checkpoint: moves a model between llm.c's .bin format (GPT-2), rkv checkpoints and
// Hugging Face model folders (src/hf_model.h), which transformers' from_pretrained loads.
//   convert_checkpoint gpt2_124M.bin runs/gpt2                  llm.c -> model folder
//   convert_checkpoint runs/x hf/x --hf --dtype bf16             a run's newest checkpoint -> model folder (bf16)
//   convert_checkpoint runs/x/ckpt_00000600 x.bin [--bf16]       rkv -> llm.c (version 3 fp32, 5 bf16)
// The input is a model folder (Hugging Face or an rkv checkpoint), a run folder (its newest
// checkpoint) or an llm.c .bin. A folder written carries the input folder's tokenizer files,
// generation config and config.json's "rkv" block.
#include <cstdio>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "src/checkpoint.h"
#include "src/hf_model.h"
#include "src/llmc_checkpoint.h"

int main(int argc, char** argv) {
    CLI::App app{"convert a model between llm.c's .bin, rkv checkpoints and Hugging Face model folders"};
    std::string in, out, dtype = "f32";
    bool bf16 = false, hf = false;
    app.add_option("input", in, "a model folder, a run folder (its newest checkpoint) or an llm.c .bin")->required();
    app.add_option("output", out, "a .bin path (llm.c) or a model folder")->required();
    app.add_flag("--hf", hf, "write a Hugging Face model folder (what a non-.bin output is anyway)");
    app.add_option("--dtype", dtype, "weights of the output: f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
    app.add_flag("--bf16", bf16, "the same as --dtype bf16 (llm.c: version 5 instead of 3)");
    CLI11_PARSE(app, argc, argv);
    try {
        if (hf && out.ends_with(".bin"))
            throw std::invalid_argument(fmt::format("{}: --hf writes a folder, not an llm.c .bin", out));
        const rkv::Dtype d = bf16 ? rkv::Dtype::BF16 : rkv::parse_dtype(dtype);
        rkv::Checkpoint ck = rkv::load_model_weights(in);
        const int llmc_version = d == rkv::Dtype::BF16 ? rkv::kLlmcBf16 : rkv::kLlmcFp32;
        if (out.ends_with(".bin"))
            rkv::save_llmc_checkpoint(out, ck.config, ck.params, llmc_version);
        else
            rkv::save_model_folder(out, ck.config, ck.params.data(), {d, ck.source, {}});
        fmt::print("{} -> {} ({} parameters, {})\n", in, out, ck.params.size(), rkv::dtype_name(d));
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "convert_checkpoint: error: {}\n", e.what());
        return 1;
    }
}
