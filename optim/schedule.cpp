#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rkv {

Schedule parse_schedule(const std::string& name) {
    if (name == "constant") return Schedule::Constant;
    if (name == "cosine") return Schedule::Cosine;
    if (name == "linear") return Schedule::Linear;
    throw std::invalid_argument("unknown schedule '" + name + "' (constant, cosine, linear)");
}

double LrSchedule::at(int step) const {
    if (kind == Schedule::Constant) return lr;
    if (step < warmup) return lr * double(step + 1) / warmup;
    const double floor = lr * min_lr_frac;
    const int decay_steps = std::max(1, steps - 1 - warmup);
    const double progress = std::clamp(double(step - warmup) / decay_steps, 0.0, 1.0);
    const double coeff = kind == Schedule::Cosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
    return floor + coeff * (lr - floor);
}

}  // namespace rkv
