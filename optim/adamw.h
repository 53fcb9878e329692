// AdamW over the parameter table: per-tensor weight decay (matrices only, unless
// embeddings are asked for), global-norm gradient clipping, state m and v in fp32.
// The update itself is ref::adamw_update (ref/adamw.h).
#pragma once
#include <vector>

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
    AdamW(const ParamTable& table, const AdamWConfig& config);

    // Global L2 norm of grads (table.total), accumulated in double in a fixed order.
    static double grad_norm(const float* grads, size_t n);
    // One update at 1-based step t; norm is grad_norm(grads), which decides the clipping.
    void step(float* params, const float* grads, double lr, long t, double norm);

    std::vector<float> m, v;        // (table.total)

private:
    const ParamTable& table_;
    AdamWConfig config_;
};

}  // namespace rkv
