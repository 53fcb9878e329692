// Every option of ./train_rkv, with the defaults of a fresh run. Scripts depend on the
// names; the defaults follow the source paper's pre-training (AdamW betas 0.9/0.99,
// weight decay 0.1, warmup over 5% of the steps, then cosine decay).
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace CLI {
class App;
}

namespace rkv {

struct TrainOptions {
    std::string model = "gpt2-tiny";
    std::string config_file;   // --config: a config.json instead of a preset
    bool model_given = false;  // --model or --config appeared on the command line
    std::string init;          // an rkv checkpoint directory or an llm.c GPT-2 .bin
    std::string train, val;    // shard globs; both empty: the built-in corpus
    int batch = 8, seq_len = 128, grad_accum = 1;
    int steps = 600;
    double lr = 2e-3, min_lr_frac = 0.1;
    int warmup = -1;  // -1: 5% of the steps
    std::string schedule = "cosine";
    double beta1 = 0.9, beta2 = 0.99, eps = 1e-8, wd = 0.1, clip = 1.0;
    bool shuffle = true;
    double p_own = 0.5;
    double p_own_final = -1;                 // -1: p_own throughout; else linear from p_own to it (src/route.h)
    bool p_own_given = false;                // --p-own or --p-own-final appeared on the command line
    std::string train_route = "stochastic";  // --train-route: stochastic, keep-every:K, layers:0,3,5
    uint64_t seed = 1337;
    int val_every = 100, val_batches = 16;
    std::vector<int> retention = {1, 2, 3, 4};
    int ckpt_every = 0;  // 0: only at the end and on SIGINT/SIGTERM
    std::string out;     // run folder; empty: runs/out/<model>-<time>
    bool resume = false;
    std::string device = "auto";
    std::string attention = "auto";  // the CUDA path's attention kernel (src/cuda_ops.h)
    bool profile = false;            // print the device time of each layer operation (src/op_profile.h)
    int zero = 0;                    // 1: ZeRO-1, optimizer state sharded across ranks; 2: ZeRO-2, gradients too
    std::string recompute = "none";  // activation recomputation: none, mlp or layer (src/recompute.h)
    std::set<std::string> given;     // the options the command line gave, by long name ("--lr")

    int warmup_steps() const { return warmup >= 0 ? warmup : steps / 20; }
    double p_own_last() const { return p_own_final >= 0 ? p_own_final : p_own; }
    void validate() const;  // throws std::invalid_argument naming the option
};

void add_train_options(CLI::App& app, TrainOptions& o);

// The run's settings: every option that changes what a run computes or logs, by name without
// the dashes ("seq_len"), with --warmup resolved to its number of steps. They are recorded in
// every checkpoint's state.json, OUT/run.json and log.jsonl's first line, and --resume reads
// them back. An option added to TrainOptions that changes the computation belongs in the
// table behind this (train_options.cpp).
nlohmann::json run_settings(const TrainOptions& o);

// --resume: the saved settings (state.json's "run", `file` names it in messages) into o. An
// option the command line gave must have its saved value, except those a resumed run may
// change (--steps, to extend the run; --val-every; --ckpt-every; --recompute); an option it did
// not give takes the saved value (one of those, when the file lacks it: the command line's).
// Throws naming the option and both values, or the missing or malformed key.
void apply_run_settings(TrainOptions& o, const nlohmann::json& saved, const std::string& file);

}  // namespace rkv
