// Validation loss under a route (DESIGN.md section 1, "Inference"): the number train_rkv logs
// at every retention and eval_rkv reports for a checkpoint, computed by this one function so
// the two are the same for the same weights and data.
#pragma once
#include "data/loader.h"
#include "dist/comm.h"
#include "src/model.h"
#include "src/route.h"

namespace rkv {

// The mean loss over the first `batches` micro-batches of `val` (from its start), the model's
// B x Tn each, under `route`; under mpirun the ranks share the batches (batches must be a
// multiple of comm.world(), each rank's loader serving its part) and every rank gets the mean.
template <class T>
double validation_loss(Model<T>& model, DataLoader& val, const Route& route, int batches, Comm& comm);

}  // namespace rkv
