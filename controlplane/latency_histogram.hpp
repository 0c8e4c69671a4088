// A latency histogram written by one thread (the control thread) and read at scrape time by the
// metrics exporter: fixed buckets, relaxed single-writer counters, no locks.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "controlplane/protocol_counters.hpp"

namespace amt {

class LatencyHistogram {
  public:
    // Upper bounds in seconds: 10 µs .. 1 s, dense around the 1 ms publish batch.
    static constexpr std::array<double, 12> bounds = {1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                                      2e-3, 5e-3, 1e-2, 5e-2,   0.1,  1.0};

    void observe(std::chrono::nanoseconds d) {
        const double s = static_cast<double>(d.count()) * 1e-9;
        size_t i = 0;
        while (i < bounds.size() && s > bounds[i])
            ++i;
        buckets_[i].add();  // the last slot is +Inf
        sum_ns_.add(static_cast<uint64_t>(d.count() > 0 ? d.count() : 0));
    }

    // Non-cumulative count of bucket i (i == bounds.size() is +Inf).
    uint64_t bucket(size_t i) const { return buckets_[i].value(); }
    double sum_seconds() const { return static_cast<double>(sum_ns_.value()) * 1e-9; }

  private:
    std::array<Counter, bounds.size() + 1> buckets_;
    Counter sum_ns_;
};

}  // namespace amt
