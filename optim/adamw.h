// AdamW over the parameter table: per-tensor weight decay (matrices only, unless
// embeddings are asked for), global-norm gradient clipping, state m and v in fp32 in the
// memory of the layer implementation (host or device). The update itself is
// ref::adamw_update (ref/adamw.h) or its kernel.
#pragma once
#include <vector>

#include "src/layer_ops.h"
#include "src/params.h"

namespace rkv {

struct AdamWConfig {
    double beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
    double weight_decay = 0.1;
    bool decay_embeddings = false;
    double clip = 1.0;              // max global gradient norm; 0 = off
};

class AdamW {
public:
    AdamW(const ParamTable& table, const AdamWConfig& config, LayerOps<float>& ops);
    ~AdamW();
    AdamW(const AdamW&) = delete;
    AdamW& operator=(const AdamW&) = delete;

    // Global L2 norm of grads (table.total), the same every run.
    double grad_norm(const float* grads);
    // One update at 1-based step t; norm is grad_norm(grads), which decides the clipping.
    void step(float* params, const float* grads, double lr, long t, double norm);

    // m and v on the host, for checkpoints.
    std::vector<float> m() const;
    std::vector<float> v() const;
    void set_state(const std::vector<float>& m, const std::vector<float>& v);

private:
    const ParamTable& table_;
    AdamWConfig config_;
    LayerOps<float>& ops_;
    float* m_;                      // (table.total)
    float* v_;                      // (table.total)
};

}  // namespace rkv
