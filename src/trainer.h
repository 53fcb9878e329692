// The training loop of ./train_rkv: data, routes, forward/backward, AdamW, validation at
// every retention, logs, checkpoints and resume.
#pragma once
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
#include "src/train_log.h"
#include "src/train_options.h"

namespace rkv {

// T is the storage type the model runs in: float on the CPU path, bf16 or float
// (src/cuda_ops.h's CudaStorage) on the CUDA path.
template <class T>
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
    const bool lead_;                                 // rank 0
    ModelConfig config_;
    std::string out_;
    long step_ = 0;                                   // updates done
    std::unique_ptr<LayerOps<T>> ops_;            // where the model runs
    std::unique_ptr<Model<T>> model_;
    std::unique_ptr<AdamW<T>> opt_;
    std::unique_ptr<DataLoader> train_, val_;
    std::unique_ptr<RouteSampler> sampler_;
    LrSchedule schedule_;
    std::unique_ptr<TrainLog> log_;
    std::string source_;                              // the model folder the weights came from, if any
    long val_step_ = -1;                              // the last validation: its step and loss per keep-every-k
    std::map<int, double> val_loss_;

    void resolve_data();
    // The weights of --resume, --init or a fresh init; the optimizer's state, on resume.
    void load_weights(const Checkpoint* resumed);
    double train_step();
    double validate(int k);
    void validate_all();
    void save();
    // With --zero 1: this rank's shard of the flat parameter buffer, [shard_ * rank, + shard_).
    size_t shard_ = 0;
    std::vector<float> gather_shards(const std::vector<float>& shard) const;   // (table.total)
    void gather_params();   // with --zero 1, every rank's updated shard of the working copy to all
    nlohmann::json run_identity() const;             // what a resumed run must agree on
    nlohmann::json rkv_block() const;                // config.json's "rkv": routing and validation losses
};

}  // namespace rkv
