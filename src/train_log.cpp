#include "src/train_log.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/file_io.h"
#include "src/route.h"

namespace rkv {

TrainLog::TrainLog(const std::string& path) {
    if (path.empty()) return;
    f_ = std::fopen(path.c_str(), "a");
    if (!f_) throw std::runtime_error(fmt::format("{}: cannot open the log: {}", path, std::strerror(errno)));
}

void TrainLog::truncate_after(const std::string& path, long step) {
    std::string kept, line;
    std::ifstream in(path);
    while (step >= 0 && std::getline(in, line)) {
        const auto event = nlohmann::json::parse(line, nullptr, false);
        if (!event.is_discarded() && event.value("step", step + 1) <= step) kept += line + "\n";
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

void TrainLog::train(long step, long steps, double loss, double lr, double grad_norm, double ms, double tokens_per_s) {
    total_ms_ += ms;
    timed_steps_++;
    const double eta_s = total_ms_ / timed_steps_ * double(steps - step) / 1000.0;
    fmt::print("step {:>{}}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.1f} ms | {:.0f} tok/s | eta {}m{:02d}s\n",
               step, fmt::formatted_size("{}", steps), steps, loss, lr, grad_norm, ms, tokens_per_s,
               long(eta_s) / 60, long(eta_s) % 60);
    std::fflush(stdout);
    write(nlohmann::json{{"step", step}, {"train_loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}}.dump());
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
