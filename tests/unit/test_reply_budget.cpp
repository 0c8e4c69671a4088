// The global reply budget (issue 18, item 4): a total cap over all addresses, refilled at its
// rate, with a reserve that only addresses holding an endpoint may use; one for all workers
// (concurrent takers), the known-gateway set, and reloads reaching every responder.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/packet_headers.hpp"
#include "controlplane/handshake_responder.hpp"
#include "controlplane/reply_budget.hpp"
#include "controlplane/reply_guard.hpp"

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

// Several workers take from the one budget at once: a lost update would grant more than the
// burst. All at the same instant, exactly the burst is granted, however the CASes interleave;
// with time moving, never more than burst + rate × (latest − earliest instant used).
TEST(ReplyBudget, ConcurrentTakersNeverExceedTheBound) {
    constexpr int threads = 4;
    constexpr size_t tries = 200'000;
    for (int run = 0; run < 5; ++run) {
        ReplyBudget b;
        b.configure(1000, 20'000, 0);
        const Time t0 = seconds(10);
        std::atomic<size_t> total{0};
        std::atomic<int> ready{0};
        std::vector<std::thread> pool;
        for (int i = 0; i < threads; ++i) {
            pool.emplace_back([&] {
                ready.fetch_add(1);
                while (ready.load() < threads) {
                }
                total.fetch_add(granted(b, t0, false, tries));
            });
        }
        for (std::thread& t : pool)
            t.join();
        EXPECT_EQ(total.load(), 20'000u);
    }
    // Time moving: one clock for all, 1 ns per call, one token per 2 ns: the bucket stays at its
    // edge, where every grant races with the others. Grants ≤ burst + (calls ns) / 2 ns.
    ReplyBudget b;
    b.configure(5e8, 10, 0);
    std::atomic<int64_t> clock{1'000'000'000};
    std::atomic<size_t> total{0};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&] {
            size_t n = 0;
            for (size_t k = 0; k < tries; ++k)
                n += b.take(Time(clock.fetch_add(1)), false) != BudgetVerdict::refused;
            total.fetch_add(n);
        });
    }
    for (std::thread& t : pool)
        t.join();
    const size_t calls = threads * tries;
    EXPECT_LE(total.load(), 10 + calls / 2);
    EXPECT_GE(total.load(), calls / 4) << "the rate itself is granted";
}

TEST(KnownGateways, AddContainsRemove) {
    KnownGateways known(1000);
    const IpAddress a = *IpAddress::parse("198.51.100.1");
    const IpAddress b = *IpAddress::parse("2001:db8::1");
    EXPECT_FALSE(known.contains(a));
    known.add(a);
    known.add(b);
    EXPECT_TRUE(known.contains(a));
    EXPECT_TRUE(known.contains(b));
    known.remove(a);
    EXPECT_FALSE(known.contains(a));
    EXPECT_TRUE(known.contains(b));
    known.remove(b);
    EXPECT_FALSE(known.contains(b));
}

// False positives (spoofed addresses let into the reserve) stay rare at the sized load, and
// there are no false negatives.
// Sized for limits.max_endpoints addresses: 4 slots each, 2 per address.
TEST(KnownGateways, FewFalsePositivesNoFalseNegatives) {
    auto false_positive_share = [](KnownGateways& known, uint32_t in) {
        for (uint32_t i = 0; i < in; ++i)
            known.add(IpAddress::v4(0x0a000000u + i));
        for (uint32_t i = 0; i < in; ++i)
            EXPECT_TRUE(known.contains(IpAddress::v4(0x0a000000u + i)));
        size_t hits = 0;
        for (uint32_t i = 0; i < 100'000; ++i)
            hits += known.contains(IpAddress::v4(0x64400000u + i));
        return static_cast<double>(hits) / 100'000;
    };
    // The usual case: far fewer gateway addresses than max_endpoints (1 per 10 here): ~0.1%.
    KnownGateways sparse(100'000);
    EXPECT_LT(false_positive_share(sparse, 10'000), 0.01);
    // Every endpoint from its own address: (1 − e^(−2n/m))² ≈ 15% at m = 4n (here m = 4.2n).
    KnownGateways full(1'000'000);
    EXPECT_LT(false_positive_share(full, 1'000'000), 0.2);
}

namespace {
struct CountingSink : ReplySink {
    size_t replies = 0;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView) override { ++replies; }
};

const UdpEndpoint relay4{*IpAddress::parse("192.0.2.1"), amt_udp_port};

// Requests from `count` addresses starting at `first` (one each).
size_t answered(HandshakeResponder& r, uint32_t first, uint32_t count, Time now) {
    CountingSink sink;
    uint8_t req[8];
    build_request(req, {.nonce = 1});
    for (uint32_t i = 0; i < count; ++i)
        r.respond({{IpAddress::v4(first + i), 40000}, relay4, ByteView(req)}, now, sink);
    return sink.replies;
}
}  // namespace

// Two responders (two workers) on one ReplyGuard: the burst is the relay's, not each one's.
TEST(ReplyGuard, RespondersShareOneBudget) {
    EngineConfig config;
    config.relay_addresses = {relay4.ip};
    config.limits.replies_per_second = 1;
    config.limits.reply_burst = 30;
    config.limits.reply_reserve_percent = 0;
    SecretStore secrets(Time{0});
    ReplyGuard guard(config.limits);
    HandshakeResponder a(config, secrets, guard), b(config, secrets, guard);
    const Time t = seconds(10);
    EXPECT_EQ(answered(a, 0x64400000u, 20, t) + answered(b, 0x64500000u, 20, t), 30u);
}

// configure() (SIGHUP) reaches a responder built before it: per-address burst and global budget.
TEST(ReplyGuard, ReloadReachesExistingResponders) {
    EngineConfig config;
    config.relay_addresses = {relay4.ip};
    config.limits.replies_per_second_per_source_ip = 1e-3;
    config.limits.reply_burst_per_source_ip = 2;
    SecretStore secrets(Time{0});
    ReplyGuard guard(config.limits);
    HandshakeResponder r(config, secrets, guard);
    const Time t = seconds(10);
    CountingSink sink;
    uint8_t req[8];
    build_request(req, {.nonce = 1});
    const Datagram one{{*IpAddress::parse("198.51.100.1"), 40000}, relay4, ByteView(req)};
    const Datagram two{{*IpAddress::parse("198.51.100.2"), 40000}, relay4, ByteView(req)};
    for (int i = 0; i < 5; ++i)
        r.respond(one, t, sink);
    EXPECT_EQ(sink.replies, 2u);
    config.limits.reply_burst_per_source_ip = 4;
    guard.configure(config.limits);
    for (int i = 0; i < 5; ++i)
        r.respond(two, t, sink);
    EXPECT_EQ(sink.replies, 6u) << "the new per-address burst";
    config.limits.replies_per_second_per_source_ip = 1e9;
    config.limits.replies_per_second = 1;
    config.limits.reply_burst = 3;
    config.limits.reply_reserve_percent = 0;
    guard.configure(config.limits);
    // A second later: the replies above, owed at the old rate, are paid back by then.
    EXPECT_EQ(answered(r, 0x64400000u, 10, t + seconds(1)), 3u) << "the new global burst";
}
