#include "controlplane/reply_rate_limiter.hpp"

#include <algorithm>
#include <bit>

namespace amt {

ReplyRateLimiter::ReplyRateLimiter(size_t slots)
    : buckets_(std::bit_ceil(slots)), mask_(std::bit_ceil(slots) - 1) {
    configure(RelayLimits{}.replies_per_second_per_source_ip,
              RelayLimits{}.reply_burst_per_source_ip);
}

void ReplyRateLimiter::configure(double per_second, double burst) {
    per_ns_ = per_second / 1e9;
    burst_ = std::max(1.0, burst);
}

bool ReplyRateLimiter::allow(const IpAddress& source, Time now) {
    Bucket& b = buckets_[std::hash<IpAddress>{}(source)&mask_];
    const uint64_t t = static_cast<uint64_t>(now.count());
    if (b.tokens < 0) {
        b.tokens = burst_;
    } else if (t > b.last_ns) {
        b.tokens = std::min(burst_, b.tokens + static_cast<double>(t - b.last_ns) * per_ns_);
    }
    b.last_ns = std::max(b.last_ns, t);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
}

}  // namespace amt
