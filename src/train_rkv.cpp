// ./train_rkv: trains a transformer with stochastic KV routing (README.md lists the options).
// Under mpirun each rank trains on its part of every batch (data parallelism).
#include <cstdio>
#include <exception>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dist/comm.h"
#include "src/devices.h"
#include "src/storage.h"
#include "src/trainer.h"

namespace {

template <class T>
int train(const rkv::TrainOptions& options, rkv::Comm& comm) {
    rkv::Trainer<T> trainer(options, comm);
    return trainer.run();
}

}  // namespace

int main(int argc, char** argv) {
    rkv::TrainOptions options;
    CLI::App app{"rkv: train a transformer with stochastic KV routing (R-CLA)"};
    rkv::add_train_options(app, options);
    CLI11_PARSE(app, argc, argv);
    std::unique_ptr<rkv::Comm> comm;
    try {
        // The run records where it computed: cpu or cuda, never auto.
        options.device = rkv::uses_cuda(options.device) ? "cuda" : "cpu";
        if (options.resume) rkv::resume_options(options);   // the run's own settings, as it was started
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
