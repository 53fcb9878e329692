// The training loop of ./train_rkv: data, routes, forward/backward, AdamW, validation at
// every retention, logs, checkpoints and resume.
#pragma once
#include <chrono>
#include <climits>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "dist/comm.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "src/checkpoint.h"
#include "src/config.h"
#include "src/layer_ops.h"
#include "src/model.h"
#include "src/route.h"
#include "src/sharded_grads.h"
#include "src/train_log.h"
#include "src/train_options.h"

namespace rkv {

// --resume: fills in o from the run's settings in the newest checkpoint of o.out (state.json's
// "run", see apply_run_settings) and checks that --steps lies beyond the checkpoint's step.
// Throws naming the file, the option or the key.
void resume_options(TrainOptions& o);

// S is the storage type the model runs in: float on the CPU path, bf16 or float
// (src/cuda_ops.h's CudaStorage) on the CUDA path.
template <class S>
class Trainer {
public:
    // Throws on any bad input, naming it. Under mpirun, comm joins the ranks: each trains
    // on its part of every global batch, and rank 0 alone prints, logs and checkpoints.
    Trainer(const TrainOptions& options, Comm& comm);
    // Trains to --steps; returns the exit code: 0, or 128 + signal when SIGINT/SIGTERM
    // stopped it (after writing a checkpoint).
    int run();

private:
    TrainOptions o_;
    Comm& comm_;
    const bool lead_;  // rank 0
    ModelConfig config_;
    std::string out_;
    long step_ = 0;                     // updates done
    std::unique_ptr<LayerOps<S>> ops_;  // where the model runs
    std::unique_ptr<Model<S>> model_;
    std::unique_ptr<AdamW<S>> opt_;
    std::unique_ptr<ShardedGrads<S>> sharded_grads_;  // --zero 2: this rank's gradients, and the windows
    std::unique_ptr<DataLoader> train_, val_;
    std::string train_glob_, val_glob_;   // the shards read (the built-in corpus's by default)
    std::unique_ptr<TrainRoute> routes_;  // --train-route
    LrSchedule schedule_;
    std::unique_ptr<TrainLog> log_;
    // The first step of this process whose weights diverged (trainer.cpp's diverged_loss and
    // kDivergedWeight): after a NaN, its checkpoint and the newer ones are set aside.
    long diverged_from_ = LONG_MAX;
    double wall_s_ = 0;                            // training time of the run before this process
    std::chrono::steady_clock::time_point start_;  // of this process's training
    std::string source_;                           // the model folder the weights came from, if any
    long val_step_ = -1;                           // the last validation: its step and loss per keep-every-k
    std::map<int, double> val_loss_;

    void resolve_data();
    // The weights of --resume, --init or a fresh init; the optimizer's state, on resume.
    void load_weights(const Checkpoint* resumed);
    double train_step();
    double validate(int k);
    void validate_all();
    void save();
    // After a non-finite loss at step bad: the checkpoints of the weights that gave it (step
    // bad - 1) and of all since diverged_from_ are set aside as ckpt_<step>.diverged, so the
    // newest one left is the last good one. Says what was kept.
    std::string keep_good_checkpoints(long bad);
    void print_header() const;
    double wall_s() const {  // training time of the run so far
        return wall_s_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    // With --zero 1 or 2: this rank's shard of the flat parameter buffer, [shard_ * rank, + shard_).
    size_t shard_ = 0;
    // The whole model's fp32 weights, for rank 0's model folder: AdamW's without ZeRO, else
    // the working copy (bf16 storage: its values; the fp32 master is in the ranks' files).
    std::vector<float> model_weights() const;  // (table.total)
    const float* shard_grads() const;          // the summed gradients of this rank's shard (shard_)
    void gather_params();               // with --zero 1 or 2, every rank's updated shard of the working copy to all
    nlohmann::json run_record() const;  // the settings, with the number of ranks
    nlohmann::json rkv_block() const;   // config.json's "rkv": routing and validation losses
};

}  // namespace rkv
