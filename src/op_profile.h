// The time each layer operation takes (train_rkv --profile): an implementation of LayerOps
// that can measure it offers this interface (LayerOps::profile); the CUDA path does, with
// CUDA events (src/event_profile.h).
#pragma once

#include <string>
#include <vector>

namespace rkv {

struct OpTotal {
    std::string name;  // the LayerOps method
    long calls = 0;
    double ms = 0;
};

class OpProfile {
public:
    virtual ~OpProfile() = default;
    // Whether the operations called from now on are timed.
    virtual void enable(bool on) = 0;
    // Waits for the timed operations to finish and adds their times to the totals.
    virtual void collect() = 0;
    // The totals so far, most time first.
    virtual std::vector<OpTotal> totals() const = 0;
};

}  // namespace rkv
