// OpProfile on the CUDA path: a CUDA event on the stream before and after each timed call, and
// the elapsed times summed per operation name when collect() reads them. Recording an event
// does not wait for the device, so profiling adds no synchronization inside a step; collect()
// waits for the last event.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cuda/compat.cuh"
#include "src/op_profile.h"

namespace rkv {

class EventProfile final : public OpProfile {
public:
    // Times the scope it lives in under `name` (a string literal), when profiling is on.
    class Scope {
    public:
        Scope(EventProfile* profile, const char* name) : profile_(profile) {
            if (profile_) at_ = profile_->start(name);
        }
        ~Scope() {
            if (profile_) profile_->stop(at_);
        }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

    private:
        EventProfile* profile_;
        size_t at_ = 0;
    };

    explicit EventProfile(cudaStream_t stream) : stream_(stream) {}
    ~EventProfile() override {
        for (const Call& c : calls_) free_.insert(free_.end(), {c.start, c.stop});
        for (cudaEvent_t e : free_) cudaEventDestroy(e);
    }
    EventProfile(const EventProfile&) = delete;
    EventProfile& operator=(const EventProfile&) = delete;

    Scope time(const char* name) { return Scope(on_ ? this : nullptr, name); }

    void enable(bool on) override { on_ = on; }
    void collect() override {
        if (calls_.empty()) return;
        cuda_check(cudaEventSynchronize(calls_.back().stop));
        for (const Call& c : calls_) {
            float ms = 0;
            cuda_check(cudaEventElapsedTime(&ms, c.start, c.stop));
            OpTotal& t = totals_[c.name];
            t.name = c.name;
            t.calls++;
            t.ms += ms;
            free_.insert(free_.end(), {c.start, c.stop});
        }
        calls_.clear();
    }
    std::vector<OpTotal> totals() const override {
        std::vector<OpTotal> out;
        for (const auto& [name, t] : totals_) out.push_back(t);
        std::sort(out.begin(), out.end(), [](const OpTotal& a, const OpTotal& b) { return a.ms > b.ms; });
        return out;
    }

private:
    struct Call {
        const char* name;
        cudaEvent_t start, stop;
    };

    cudaEvent_t event() {
        cudaEvent_t e;
        if (free_.empty()) {
            cuda_check(cudaEventCreate(&e));
        } else {
            e = free_.back();
            free_.pop_back();
        }
        return e;
    }
    size_t start(const char* name) {
        calls_.push_back({name, event(), event()});
        cuda_check(cudaEventRecord(calls_.back().start, stream_));
        return calls_.size() - 1;
    }
    // From a destructor, maybe while an exception unwinds: an error here (the device's, sticky)
    // is left for collect() to report.
    void stop(size_t at) noexcept { cudaEventRecord(calls_[at].stop, stream_); }

    cudaStream_t stream_;
    bool on_ = false;
    std::vector<Call> calls_;        // recorded, not yet collected
    std::vector<cudaEvent_t> free_;  // created, reusable
    std::map<std::string, OpTotal> totals_;
};

}  // namespace rkv
