// Validation loss under a route (DESIGN.md section 1, "Inference"): the number train_rkv logs
// at every retention and eval_rkv reports for a checkpoint, computed by this one function so
// the two are the same for the same weights and data.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "dist/comm.h"
#include "src/model.h"
#include "src/route.h"

namespace rkv {

// The number of targets that carry loss (not -1) in a micro-batch: losses are means over these,
// whatever their spread over micro-batches and ranks.
inline double loss_tokens(const std::vector<int32_t>& targets) {
    return double(std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; }));
}

// The mean loss over the targets that carry loss in the first `batches` micro-batches of `val`
// (from its start), the model's B x T each, under `route`; under mpirun the ranks share the batches (batches must be a
// multiple of comm.world(), each rank's loader serving its part) and every rank gets the mean.
template <class S>
double validation_loss(Model<S>& model, DataLoader& val, const Route& route, int batches, Comm& comm);

}  // namespace rkv
