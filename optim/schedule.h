// Learning-rate schedules over `steps` updates, step counted from 0:
//   constant: lr
//   cosine / linear: linear warmup from lr / warmup to lr over `warmup` steps, then decay
//   to the floor lr * min_lr_frac at the last step, along a half cosine or a line.
#pragma once
#include <string>

namespace rkv {

enum class Schedule { Constant, Cosine, Linear };

Schedule parse_schedule(const std::string& name);  // throws naming the bad value

struct LrSchedule {
    Schedule kind = Schedule::Cosine;
    double lr = 1e-3;
    double min_lr_frac = 0.1;
    int warmup = 0;
    int steps = 1;

    double at(int step) const;
};

}  // namespace rkv
