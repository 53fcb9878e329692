#include "src/train_options.h"

#include <cmath>
#include <stdexcept>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "src/devices.h"

namespace rkv {

void add_train_options(CLI::App& app, TrainOptions& o) {
    auto* model = app.add_option("--model", o.model, "model preset (gpt2-124m, gpt2-tiny, llama3-tiny, qwen3-tiny, qwen3-0.6b, qwen3-1.7b)")
                      ->capture_default_str();
    auto* config = app.add_option("--config", o.config_file, "model config.json (Hugging Face field names)")
                       ->check(CLI::ExistingFile)->excludes(model);
    model->excludes(config);
    app.add_option("--init", o.init, "initial weights: an rkv checkpoint directory or an llm.c GPT-2 .bin");
    app.add_option("--train", o.train, "glob of training shards (default: the built-in corpus)");
    app.add_option("--val", o.val, "glob of validation shards (default: the built-in corpus's)");
    app.add_option("-b,--batch", o.batch, "sequences per micro-batch")->capture_default_str();
    app.add_option("-t,--seq-len", o.seq_len, "tokens per sequence")->capture_default_str();
    app.add_option("--grad-accum", o.grad_accum, "micro-batches per update")->capture_default_str();
    app.add_option("--steps", o.steps, "optimizer updates")->capture_default_str();
    app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
    app.add_option("--min-lr-frac", o.min_lr_frac, "final learning rate as a fraction of --lr")->capture_default_str();
    app.add_option("--warmup", o.warmup, "warmup steps (default: 5% of --steps)");
    app.add_option("--schedule", o.schedule, "learning-rate schedule")
        ->check(CLI::IsMember({"constant", "cosine", "linear"}))->capture_default_str();
    app.add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
    app.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
    app.add_option("--eps", o.eps, "AdamW epsilon")->capture_default_str();
    app.add_option("--wd", o.wd, "decoupled weight decay on matrices")->capture_default_str();
    app.add_option("--clip", o.clip, "max global gradient norm (0: off)")->capture_default_str();
    app.add_option("--shuffle", o.shuffle, "shuffle the training batches (0|1)")->capture_default_str();
    app.add_option("--p-own", o.p_own, "probability that a layer attends to its own K/V (1: no routing)")
        ->capture_default_str();
    app.add_option("--seed", o.seed, "seed of the weights, routes and shuffling")->capture_default_str();
    app.add_option("--val-every", o.val_every, "validate every N updates (0: off)")->capture_default_str();
    app.add_option("--val-batches", o.val_batches, "validation micro-batches")->capture_default_str();
    app.add_option("--retention", o.retention, "keep-every-k values validated (1: the full cache)")
        ->delimiter(',')->capture_default_str();
    app.add_option("--ckpt-every", o.ckpt_every, "checkpoint every N updates (0: only at the end)")
        ->capture_default_str();
    app.add_option("--out", o.out, "run folder: log.jsonl and checkpoints (default: runs/out/<model>-<time>)");
    app.add_flag("--resume", o.resume, "continue from the newest checkpoint in --out");
    app.add_option("--device", o.device, "where to train")->check(CLI::IsMember({"cpu", "cuda", "auto"}))
        ->capture_default_str();
    app.add_option("--attention", o.attention,
                   "attention kernel of the CUDA path: auto (wgmma on Hopper in an sm_90a build, else mma), "
                   "wgmma, mma (mma.sync) or plain")
        ->check(CLI::IsMember(attention_names()))->capture_default_str();
    app.add_flag("--profile", o.profile,
                 "print the device time per step of each layer operation, over the steps after the first (CUDA path)");
    app.add_option("--zero", o.zero, "1: shard the optimizer state across ranks (ZeRO-1)")
        ->check(CLI::IsMember({0, 1}))->capture_default_str();
    app.final_callback([&o, model, config] { o.model_given = model->count() || config->count(); });
}

void TrainOptions::validate() const {
    auto require = [](bool ok, const std::string& what) {
        if (!ok) throw std::invalid_argument(what);
    };
    for (auto [name, x] : {std::pair{"--lr", lr}, {"--min-lr-frac", min_lr_frac}, {"--beta1", beta1},
                           {"--beta2", beta2}, {"--eps", eps}, {"--wd", wd}, {"--clip", clip}, {"--p-own", p_own}})
        require(std::isfinite(x), fmt::format("{} must be a finite number, got {}", name, x));
    require(batch > 0, fmt::format("--batch must be positive, got {}", batch));
    require(seq_len > 0, fmt::format("--seq-len must be positive, got {}", seq_len));
    require(grad_accum > 0, fmt::format("--grad-accum must be positive, got {}", grad_accum));
    require(steps > 0, fmt::format("--steps must be positive, got {}", steps));
    require(lr >= 0, fmt::format("--lr must not be negative, got {}", lr));
    require(min_lr_frac >= 0 && min_lr_frac <= 1, fmt::format("--min-lr-frac must be in [0, 1], got {}", min_lr_frac));
    require(warmup_steps() <= steps, fmt::format("--warmup {} exceeds --steps {}", warmup_steps(), steps));
    require(beta1 >= 0 && beta1 < 1, fmt::format("--beta1 must be in [0, 1), got {}", beta1));
    require(beta2 >= 0 && beta2 < 1, fmt::format("--beta2 must be in [0, 1), got {}", beta2));
    require(eps > 0, fmt::format("--eps must be positive, got {}", eps));
    require(wd >= 0, fmt::format("--wd must not be negative, got {}", wd));
    require(clip >= 0, fmt::format("--clip must not be negative, got {}", clip));
    require(p_own >= 0 && p_own <= 1, fmt::format("--p-own must be in [0, 1], got {}", p_own));
    require(val_every >= 0, fmt::format("--val-every must not be negative, got {}", val_every));
    require(val_batches > 0, fmt::format("--val-batches must be positive, got {}", val_batches));
    require(ckpt_every >= 0, fmt::format("--ckpt-every must not be negative, got {}", ckpt_every));
    require(!retention.empty(), "--retention needs at least one k");
    for (int k : retention) require(k >= 1, fmt::format("--retention values must be >= 1, got {}", k));
    require(train.empty() == val.empty() || val.empty(), "--val needs --train");
    require(!resume || !out.empty(), "--resume needs --out");
}

}  // namespace rkv
