// ./train_rkv: trains a transformer with stochastic KV routing (README.md lists the options).
// Under mpirun each rank trains on its part of every batch (data parallelism).
#include <cstdio>
#include <exception>
#include <memory>
#include <type_traits>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "dist/comm.h"
#include "src/checkpoint.h"
#include "src/devices.h"
#include "src/memory_plan.h"
#include "src/storage.h"
#include "src/trainer.h"

namespace {

template <class S>
int train(const rkv::TrainOptions& options, rkv::Comm& comm) {
    rkv::Trainer<S> trainer(options, comm);
    return trainer.run();
}

// --plan: the memory a rank of this run would need, and what fits (src/memory_plan.h).
int plan(const rkv::TrainOptions& o, int ranks, const std::string& gpu_mem, bool json) {
    o.validate();
    rkv::PlanSettings s;
    s.config = !o.config_file.empty() ? rkv::load_config(o.config_file)
               : !o.init.empty()      ? rkv::ModelWeights(o.init).config()
                                      : rkv::preset(o.model);
    if (o.seq_len > s.config.max_position_embeddings)
        throw std::invalid_argument(fmt::format("--seq-len {} exceeds the model's max_position_embeddings {}",
                                                o.seq_len, s.config.max_position_embeddings));
    s.batch = o.batch;
    s.seq_len = o.seq_len;
    s.grad_accum = o.grad_accum;
    s.zero = o.zero;
    s.recompute = rkv::parse_recompute(o.recompute);
    s.ranks = ranks;
    s.gpu_bytes = rkv::parse_bytes(gpu_mem);
    // The storage a GPU build of this source would use (bf16 unless RKV_FP32): a build without
    // the CUDA path plans the GPU run it cannot make itself.
#if RKV_FP32
    s.fp32_storage = true;
#endif
    if (json)
        fmt::print("{}\n", rkv::plan_json(s).dump());
    else
        fmt::print("{}", rkv::plan_text(s));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    rkv::TrainOptions options;
    CLI::App app{"rkv: train a transformer with stochastic KV routing (R-CLA)"};
    rkv::add_train_options(app, options);
    bool plan_only = false, json = false;
    int plan_ranks = 1;
    std::string plan_gpu_mem = "80GB";
    auto* plan_flag =
        app.add_flag("--plan", plan_only, "print the device and host memory a rank needs and what fits; no training");
    app.add_option("--plan-ranks", plan_ranks, "--plan: the number of ranks (GPUs) of the run")
        ->check(CLI::Range(1, 1 << 20))
        ->capture_default_str()
        ->needs(plan_flag);
    app.add_option("--plan-gpu-mem", plan_gpu_mem, "--plan: each GPU's memory (80GB, 80GiB, 141GB)")
        ->capture_default_str()
        ->needs(plan_flag);
    app.add_flag("--json", json, "--plan: print the plan as one JSON line")->needs(plan_flag);
    CLI11_PARSE(app, argc, argv);
    if (plan_only) try {
            return plan(options, plan_ranks, plan_gpu_mem, json);
        } catch (const std::exception& e) {
            fmt::print(stderr, "train_rkv: error: {}\n", e.what());
            return 1;
        }
    std::unique_ptr<rkv::Comm> comm;
    try {
        // The run records where it computed: cpu or cuda, never auto.
        options.device = rkv::uses_cuda(options.device) ? "cuda" : "cpu";
        if (options.resume) rkv::resume_options(options);  // the run's own settings, as it was started
        const bool cuda = rkv::uses_cuda(options.device);
        comm = rkv::make_comm(cuda);
        return cuda ? train<rkv::CudaStorage>(options, *comm) : train<float>(options, *comm);
    } catch (const std::exception& e) {
        const std::string message = fmt::format("train_rkv: error: {}", e.what());
        // With other ranks waiting in a collective, only ending the whole job is safe.
        if (comm && comm->world() > 1) comm->abort(1, message);
        std::fflush(stdout);
        fmt::print(stderr, "{}\n", message);
        return 1;
    }
}
