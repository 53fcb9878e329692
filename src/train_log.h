// What a run tells: a progress line per step on stdout and JSON Lines events in
// OUT/log.jsonl: {"step":..,"train_loss":..,"lr":..,"grad_norm":..} per update and
// {"step":..,"val_loss":..,"retention":k} per validation.
#pragma once
#include <cstdio>
#include <map>
#include <string>

namespace rkv {

class TrainLog {
public:
    explicit TrainLog(const std::string& path);   // appends; empty path: no file
    // Keeps only the events of steps <= step (step < 0: none), so that a resumed run
    // continues the log of its checkpoint without the steps it will redo.
    static void truncate_after(const std::string& path, long step);
    ~TrainLog();
    TrainLog(const TrainLog&) = delete;
    TrainLog& operator=(const TrainLog&) = delete;

    void train(long step, long steps, double loss, double lr, double grad_norm, double ms, double tokens_per_s);
    void val(long step, int retention, double loss);
    // The loss-versus-KV-size table from the last validation of each retention.
    void print_retention_table(int num_layers) const;

private:
    FILE* f_ = nullptr;
    double total_ms_ = 0;
    long timed_steps_ = 0;
    std::map<int, double> last_val_;              // retention -> loss
    void write(const std::string& line);
};

}  // namespace rkv
