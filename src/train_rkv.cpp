// ./train_rkv: trains a transformer with stochastic KV routing (README.md lists the options).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "src/trainer.h"

int main(int argc, char** argv) {
    rkv::TrainOptions options;
    CLI::App app{"rkv: train a transformer with stochastic KV routing (R-CLA)"};
    rkv::add_train_options(app, options);
    CLI11_PARSE(app, argc, argv);
    try {
        rkv::Trainer trainer(options);
        return trainer.run();
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "train_rkv: error: {}\n", e.what());
        return 1;
    }
}
