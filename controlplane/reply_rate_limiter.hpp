// Token buckets per source IP for the relay's replies (Advertisement, Query), which are larger
// than the messages that trigger them (checklist §2.11). A fixed, direct-mapped table: memory is
// bounded whatever the number of sources, nothing is allocated per packet, and two sources that
// share a slot share a bucket (the cost of a collision is a little less throughput for both).
#pragma once

#include <cstdint>
#include <vector>

#include "common/ip_address.hpp"
#include "controlplane/engine_config.hpp"

namespace amt {

class ReplyRateLimiter {
  public:
    explicit ReplyRateLimiter(size_t slots = 65536);
    void configure(double per_second, double burst);
    // Takes one token from `source`'s bucket; false when it is empty.
    bool allow(const IpAddress& source, Time now);

  private:
    struct Bucket {
        uint64_t last_ns = 0;
        double tokens = -1;  // < 0: never used, starts full
    };
    std::vector<Bucket> buckets_;
    size_t mask_;
    double per_ns_ = 0;
    double burst_ = 0;
};

}  // namespace amt
