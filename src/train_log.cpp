#include "src/train_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/file_io.h"
#include "src/route.h"

namespace rkv {

TrainLog::TrainLog(const std::string& path, const Plan& plan) : plan_(plan) {
    if (path.empty()) return;
    f_ = std::fopen(path.c_str(), "a");
    if (!f_) throw std::runtime_error(fmt::format("{}: cannot open the log: {}", path, std::strerror(errno)));
}

void TrainLog::truncate_after(const std::string& path, long step) {
    if (std::filesystem::exists(path)) check_regular_file(path);  // a FIFO would block the read
    std::string kept, line;
    std::ifstream in(path);
    while (step >= 0 && std::getline(in, line)) {
        const auto event = nlohmann::json::parse(line, nullptr, false);
        if (!event.is_object()) continue;  // a line cut short by a crash
        if (!event.contains("step") || (event["step"].is_number() && event["step"] <= step)) kept += line + "\n";
    }
    write_text_atomic(path, kept);
}

TrainLog::~TrainLog() {
    if (f_) std::fclose(f_);
}

void TrainLog::write(const std::string& line) {
    if (!f_) return;
    std::fputs(line.c_str(), f_);
    std::fputc('\n', f_);
    std::fflush(f_);
}

void TrainLog::event(const nlohmann::json& e) { write(e.dump()); }

double TrainLog::eta_s(long step) const {
    const double step_ms = total_ms_ / timed_steps_;
    double passes = 0;
    if (plan_.val_every > 0)  // validation steps in [step, steps]: multiples of val_every, and the last
        passes = double(plan_.steps / plan_.val_every - (step - 1) / plan_.val_every) +
                 (plan_.steps % plan_.val_every != 0 ? 1 : 0);
    const double pass_ms = val_passes_ ? val_ms_ / val_passes_ : step_ms / plan_.grad_accum * plan_.val_batches;
    return (step_ms * double(plan_.steps - step) + pass_ms * passes) / 1000.0;
}

void TrainLog::train(const Step& s) {
    total_ms_ += s.ms;
    timed_steps_++;
    const double eta = eta_s(s.step);
    const std::string eta_text =
        eta < 60 ? fmt::format("{:.1f}s", eta) : fmt::format("{}m{:02d}s", long(eta) / 60, long(eta) % 60);
    fmt::print("step {:>{}}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.1f} ms | {:.0f} tok/s | eta {}\n", s.step,
               fmt::formatted_size("{}", s.steps), s.steps, s.loss, s.lr, s.grad_norm, s.ms, s.tokens_per_s, eta_text);
    std::fflush(stdout);
    write(nlohmann::json{{"step", s.step},
                         {"train_loss", s.loss},
                         {"lr", s.lr},
                         {"grad_norm", s.grad_norm},
                         {"tokens", s.tokens},
                         {"wall_s", std::round(s.wall_s * 1000) / 1000},
                         {"time", s.time}}
              .dump());
}

void TrainLog::validated(double ms) {
    val_ms_ += ms;
    val_passes_++;
}

void TrainLog::val(long step, int retention, double loss) {
    last_val_[retention] = loss;
    fmt::print("step {} | val loss {:.4f} | retention 1/{}\n", step, loss, retention);
    write(nlohmann::json{{"step", step}, {"val_loss", loss}, {"retention", retention}}.dump());
}

void TrainLog::print_retention_table(int num_layers) const {
    if (last_val_.empty()) return;
    const double full = last_val_.count(1) ? last_val_.at(1) : last_val_.begin()->second;
    fmt::print("\nvalidation loss per KV-cache retention ({} layers)\n", num_layers);
    fmt::print("  {:>8}  {:>13}  {:>9}  {:>9}\n", "keep 1/k", "cached layers", "val loss", "vs full");
    for (auto [k, loss] : last_val_) {
        const int kept = int(keep_every(num_layers, k).kept_layers().size());
        fmt::print("  {:>8}  {:>6}/{:<6}  {:>9.4f}  {:>+9.4f}\n", fmt::format("1/{}", k), kept, num_layers, loss,
                   loss - full);
    }
}

}  // namespace rkv
