// AdamW over the parameter table: per-tensor weight decay (matrices only, unless
// embeddings are asked for), global-norm gradient clipping, state m and v in fp32 in the
// memory of the layer implementation (host or device). The update itself is
// ref::adamw_update (ref/adamw.h) or its kernel.
//
// The weights: with S = float the parameter buffer is the fp32 truth. With S = bf16 it is
// a working copy, and AdamW keeps the fp32 master weights of its shard beside m and v;
// each step updates the master exactly as the fp32 update would and rounds it
// stochastically into the working copy.
//
// An AdamW may own a shard of the parameters, elements [begin, begin + size) of the flat
// buffer (ZeRO-1: each rank keeps m and v of its shard only and updates only it).
#pragma once
#include <vector>

#include "src/layer_ops.h"
#include "src/params.h"

namespace rkv {

struct AdamWConfig {
    double beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
    double weight_decay = 0.1;
    bool decay_embeddings = false;
    double clip = 1.0;  // max global gradient norm; 0 = off
};

// set_weights uploads the fp32 weights to the device through a buffer of at most this many
// floats (64 MiB), when the storage type needs a cast (src/memory_plan.cpp counts it).
constexpr size_t kStagingElements = size_t(16) << 20;

template <class S>
class AdamW {
public:
    // The whole table by default; a shard may reach past table.total (padding).
    AdamW(const ParamTable& table, const AdamWConfig& config, LayerOps<S>& ops, size_t begin = 0, size_t size = 0);
    ~AdamW();
    AdamW(const AdamW&) = delete;
    AdamW& operator=(const AdamW&) = delete;

    // Sum of squares of the shard's gradients (size; element i is the flat buffer's begin + i),
    // the same every run; over all shards it is the squared global norm.
    double grad_sq(const float* shard_grads);
    // One update of the shard at 1-based step t; norm is the global gradient norm, which
    // decides the clipping. params is the whole buffer, shard_grads the shard's (size).
    void step(S* params, const float* shard_grads, double lr, long t, double norm);

    // Weights in fp32 on the host: set from the whole table (table.total), which makes the
    // working copy of the whole buffer and the master of the shard (the shard's working
    // copy as step t left it, t > 0 on resume); read for the shard.
    void set_weights(S* params, const std::vector<float>& whole, long t = 0);
    std::vector<float> weights(const S* params) const;  // (size)

    // The shard's m and v on the host (size elements), for checkpoints, and set from them
    // (src/checkpoint.h's load_optimizer reads any shard of a checkpoint).
    std::vector<float> m() const;
    std::vector<float> v() const;
    void set_state(const std::vector<float>& m, const std::vector<float>& v);
    // The shard's fp32 master (size elements), when the storage keeps one: then the shard's
    // working copy becomes what step t's rounding made of it (t > 0), as set_weights does.
    void set_master(S* params, const std::vector<float>& master, long t);

private:
    const ParamTable& table_;
    AdamWConfig config_;
    LayerOps<S>& ops_;
    size_t begin_, size_;
    float* m_;                 // (size)
    float* v_;                 // (size)
    float* master_ = nullptr;  // (size), when S is not float

    // dst (size) = the shard's part of whole (table.total), zeros past its end.
    void upload_shard(float* dst, const std::vector<float>& whole);
    // The shard's working copy as step t's rounding made it of the master.
    void round_shard(S* params, long t);
    // Calls f(tensor, lo, hi) for each tensor's part [lo, hi) inside the shard.
    template <class F>
    void for_each_piece(F f) const;
};

}  // namespace rkv
