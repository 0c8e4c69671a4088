#include "controlplane/reply_budget.hpp"

#include <algorithm>
#include <cmath>

namespace amt {

void ReplyBudget::configure(double per_second, double burst, double reserve) {
    const int64_t interval = std::max<int64_t>(1, std::llround(1e9 / per_second));
    interval_ns_.store(interval, std::memory_order_relaxed);
    depth_ns_.store(static_cast<int64_t>(std::max(1.0, burst)) * interval,
                    std::memory_order_relaxed);
    const double open = std::max(1.0, burst - reserve);
    open_depth_ns_.store(static_cast<int64_t>(open) * interval, std::memory_order_relaxed);
}

BudgetVerdict ReplyBudget::take(Time now, bool known) {
    const int64_t t = now.count();
    const int64_t interval = interval_ns_.load(std::memory_order_relaxed);
    const int64_t limit = (known ? depth_ns_ : open_depth_ns_).load(std::memory_order_relaxed);
    const int64_t open = open_depth_ns_.load(std::memory_order_relaxed);
    int64_t tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
        const int64_t after = std::max(tat, t) + interval;
        // after − t: the replies owed, in time; more than the depth means the bucket is empty.
        if (after - t > limit) return BudgetVerdict::refused;
        if (tat_.compare_exchange_weak(tat, after, std::memory_order_relaxed)) {
            return after - t > open ? BudgetVerdict::granted_from_reserve : BudgetVerdict::granted;
        }
    }
}

}  // namespace amt
