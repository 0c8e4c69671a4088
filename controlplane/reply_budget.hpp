// The relay's global budget for replies (Advertisements and Queries), shared by every thread that
// answers (issue 18, item 4). The per-source-IP buckets (ReplyRateLimiter) stop one address from
// being flooded with replies, but not a flood of Requests spread over many spoofed addresses:
// every one would be answered, 48 octets out per 8 in. This bucket caps the total.
//
// A GCRA token bucket in one atomic (the theoretical arrival time): lock-free, a CAS per granted
// reply, a plain load per refusal, so a flood that is refused does not bounce the cache line.
// The last `reserve` tokens are kept for addresses that already hold an endpoint: during a flood
// from unknown addresses, established gateways still get their refresh Queries.
#pragma once

#include <atomic>
#include <cstdint>

#include "controlplane/engine_config.hpp"

namespace amt {

enum class BudgetVerdict : uint8_t { granted, granted_from_reserve, refused };

class ReplyBudget {
  public:
    ReplyBudget() { configure(1e9, 1e9, 0); }
    // Any thread; takes effect for the next reply. reserve < burst (validate() checks it).
    void configure(double per_second, double burst, double reserve);

    // One reply at `now`. `known`: the destination holds an endpoint, so the reserve is open to
    // it. Called by several workers at once.
    BudgetVerdict take(Time now, bool known);

  private:
    std::atomic<int64_t> tat_{0};            // when the bucket will be full again (ns)
    std::atomic<int64_t> interval_ns_{1};    // per reply
    std::atomic<int64_t> depth_ns_{1};       // burst × interval
    std::atomic<int64_t> open_depth_ns_{1};  // (burst − reserve) × interval: unknown addresses
};

}  // namespace amt
