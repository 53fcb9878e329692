// The ETA of a run's progress line, from its inputs: the step times and validation passes
// logged so far, and the plan of what remains.
#include <catch2/catch.hpp>

#include "src/train_log.h"

using namespace rkv;

namespace {
TrainLog::Step step_of(long step, long steps, double ms) {
    return {.step = step,
            .steps = steps,
            .loss = 1,
            .lr = 0,
            .grad_norm = 0,
            .ms = ms,
            .tokens_per_s = 0,
            .tokens = 0,
            .wall_s = 0,
            .time = ""};
}
}  // namespace

TEST_CASE("the ETA counts the validation passes ahead", "[train_log]") {
    // 4 steps of 2 micro-batches, 64 validation batches every 2 steps: passes at 2 and 4.
    TrainLog log("", {.steps = 4, .val_every = 2, .val_batches = 64, .grad_accum = 2});
    log.validated(1000);           // step 0's pass took 1 s
    log.train(step_of(1, 4, 10));  // 3 steps and 2 passes remain
    CHECK(log.eta_s(1) == Approx((3 * 10 + 2 * 1000) / 1000.0));
    log.train(step_of(2, 4, 30));  // mean step 20 ms; the pass at 2 still to come
    CHECK(log.eta_s(2) == Approx((2 * 20 + 2 * 1000) / 1000.0));
    log.validated(3000);           // mean pass 2 s
    log.train(step_of(3, 4, 20));  // 1 step and the pass at 4
    CHECK(log.eta_s(3) == Approx((1 * 20 + 1 * 2000) / 1000.0));
    log.train(step_of(4, 4, 20));
    CHECK(log.eta_s(4) == Approx(2000 / 1000.0));  // only the last pass
}

TEST_CASE("before any pass the ETA prices one at the step time per micro-batch", "[train_log]") {
    TrainLog log("", {.steps = 4, .val_every = 2, .val_batches = 64, .grad_accum = 2});
    log.train(step_of(1, 4, 10));  // 5 ms per micro-batch: a pass of 64 batches is 320 ms
    CHECK(log.eta_s(1) == Approx((3 * 10 + 2 * 320) / 1000.0));
}

TEST_CASE("the last step is validated even off the period", "[train_log]") {
    // 5 steps, every 2: passes at 2, 4 and 5.
    TrainLog log("", {.steps = 5, .val_every = 2, .val_batches = 1, .grad_accum = 1});
    log.validated(100);
    log.train(step_of(1, 5, 10));
    CHECK(log.eta_s(1) == Approx((4 * 10 + 3 * 100) / 1000.0));
    log.train(step_of(2, 5, 10));
    CHECK(log.eta_s(2) == Approx((3 * 10 + 3 * 100) / 1000.0));
    log.train(step_of(3, 5, 10));
    CHECK(log.eta_s(3) == Approx((2 * 10 + 2 * 100) / 1000.0));
    log.train(step_of(5, 5, 10));
    CHECK(log.eta_s(5) == Approx((0 * 10 + 1 * 100) / 1000.0));
}

TEST_CASE("without validation the ETA is the steps alone", "[train_log]") {
    TrainLog log("", {.steps = 10, .val_every = 0, .val_batches = 64, .grad_accum = 1});
    log.train(step_of(1, 10, 50));
    CHECK(log.eta_s(1) == Approx(9 * 50 / 1000.0));
}
