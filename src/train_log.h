// What a run tells: a progress line per step on stdout and JSON Lines events in
// OUT/log.jsonl: first the run's start (or resume) with its settings, version and machine,
// then {"step":..,"train_loss":..,"lr":..,"grad_norm":..,"tokens":..,"wall_s":..,"time":..}
// per update and {"step":..,"val_loss":..,"retention":k} per validation.
#pragma once
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace rkv {

class TrainLog {
public:
    // What is left to do, for the ETA: steps, and a validation pass (batches forward
    // micro-batches over all retentions) every val_every steps and after the last one.
    struct Plan {
        long steps = 0;
        int val_every = 0;  // 0: no validation
        long val_batches = 0;
        int grad_accum = 1;  // micro-batches per step
    };
    struct Step {
        long step, steps;
        double loss, lr, grad_norm, ms, tokens_per_s;
        long tokens;       // seen so far by all ranks
        double wall_s;     // training time of the run so far
        std::string time;  // UTC, ISO 8601
    };

    TrainLog(const std::string& path, const Plan& plan);  // appends; empty path: no file
    // Keeps only the events of steps <= step (step < 0: none) and those without a step (the
    // run's starts), so that a resumed run continues the log of its checkpoint without the
    // steps it will redo.
    static void truncate_after(const std::string& path, long step);
    ~TrainLog();
    TrainLog(const TrainLog&) = delete;
    TrainLog& operator=(const TrainLog&) = delete;

    void event(const nlohmann::json& e);  // one line of log.jsonl
    void train(const Step& s);
    void val(long step, int retention, double loss);
    void validated(double ms);  // one validation pass, all retentions, took ms
    // The loss-versus-KV-size table from the last validation of each retention.
    void print_retention_table(int num_layers) const;
    // Seconds left after step (at least one step logged): the remaining steps at the mean
    // step time, and the remaining validation passes (the one at this step among them) at
    // the mean measured pass, or before any, at the step time per micro-batch for each of
    // their batches.
    double eta_s(long step) const;

private:
    FILE* f_ = nullptr;
    Plan plan_;
    double total_ms_ = 0, val_ms_ = 0;
    long timed_steps_ = 0, val_passes_ = 0;
    std::map<int, double> last_val_;  // retention -> loss
    void write(const std::string& line);
};

}  // namespace rkv
