// The global reply budget (issue 18, item 4): a total cap over all addresses, refilled at its
// rate, with a reserve that only addresses holding an endpoint may use.
#include <gtest/gtest.h>

#include "controlplane/reply_budget.hpp"

using namespace amt;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
size_t granted(ReplyBudget& b, Time now, bool known, size_t tries) {
    size_t n = 0;
    for (size_t i = 0; i < tries; ++i)
        n += b.take(now, known) != BudgetVerdict::refused;
    return n;
}
}  // namespace

// The burst is granted at once, then nothing until tokens come back at the rate.
TEST(ReplyBudget, CapsTotalRepliesAndRefillsAtItsRate) {
    ReplyBudget b;
    b.configure(1000, 50, 0);
    const Time t0 = seconds(10);
    EXPECT_EQ(granted(b, t0, false, 200), 50u);
    EXPECT_EQ(b.take(t0, false), BudgetVerdict::refused);
    EXPECT_EQ(granted(b, t0 + milliseconds(10), false, 200), 10u);  // 1000/s × 10 ms
    EXPECT_EQ(granted(b, t0 + seconds(5), false, 200), 50u);        // never more than the burst
}

// Unknown addresses stop at burst − reserve; addresses holding an endpoint get the rest, and the
// refill goes to them first while unknown ones keep the bucket down to the reserve.
TEST(ReplyBudget, ReserveIsKeptForKnownAddresses) {
    ReplyBudget b;
    b.configure(1000, 50, 20);
    const Time t0 = seconds(10);
    EXPECT_EQ(granted(b, t0, false, 200), 30u);
    EXPECT_EQ(b.take(t0, true), BudgetVerdict::granted_from_reserve);
    EXPECT_EQ(granted(b, t0, true, 200), 19u);
    EXPECT_EQ(b.take(t0, true), BudgetVerdict::refused);
    // 10 ms refill: 10 tokens, below the reserve: only known addresses get them.
    const Time t1 = t0 + milliseconds(10);
    EXPECT_EQ(granted(b, t1, false, 200), 0u);
    EXPECT_EQ(granted(b, t1, true, 200), 10u);
}

// Reconfiguring (SIGHUP) applies to the next reply.
TEST(ReplyBudget, ReconfigureTakesEffect) {
    ReplyBudget b;
    const Time t0 = seconds(10);
    b.configure(1000, 5, 0);
    EXPECT_EQ(granted(b, t0, false, 100), 5u);
    b.configure(1000, 100, 0);
    EXPECT_EQ(granted(b, t0, false, 200), 95u);
}
