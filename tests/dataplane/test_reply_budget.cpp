// The relay's global reply budget across workers (issue 18, item 4): one budget for the whole
// relay whatever the number of workers, its reserve for gateways that hold an endpoint, and a
// reload (SIGHUP) that reaches the workers' limits.
#include <gtest/gtest.h>

#include <chrono>

#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");

// A spoofed source: 100.64.x.y, a different address for every i.
UdpEndpoint spoofed(uint32_t i) {
    return {IpAddress::v4(0x64400000u + i), static_cast<uint16_t>(1024 + i % 60000)};
}

Frame request_frame(const TestRelay& relay, const UdpEndpoint& from, uint32_t nonce) {
    uint8_t req[8];
    build_request(req, {.nonce = nonce, .flags = 0});
    return udp_frame(relay.relay_mac(), router_mac, from, relay.relay_v4(), ByteView(req));
}

// Membership Queries among `frames`, in total and to `to`.
struct QueryCount {
    size_t total = 0;
    size_t to_gateway = 0;
};
QueryCount queries(const std::vector<Frame>& frames, const UdpEndpoint& to = {}) {
    QueryCount c;
    for (const Frame& f : frames) {
        const Received r = parse_frame(f);
        MembershipQuery q;
        if (!r.ok || parse_membership_query(r.udp.payload, q) != ParseError::ok) continue;
        ++c.total;
        c.to_gateway += r.udp.dst == to;
    }
    return c;
}

uint64_t dropped(Dataplane& dp, DropReason reason) {
    uint64_t n = 0;
    for (size_t i = 0; i < dp.worker_count(); ++i)
        n += dp.worker(i).responder().counters().dropped[static_cast<size_t>(reason)].value();
    return n;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Spoofed Requests from 400 addresses on both workers' queues: the Queries the relay sends in
// total stay within burst + rate × elapsed (with a budget per worker it was twice the burst), the
// open part stops at burst − reserve, and a gateway that holds an endpoint still gets its Query
// from the reserve while the flood goes on.
TEST(DataplaneReplyBudget, OneBudgetForAllWorkersAndItsReserveForKnownGateways) {
    EngineConfig engine = TestRelay::default_engine();
    engine.limits.replies_per_second = 0.01;  // no refill to speak of during the test
    engine.limits.reply_burst = 40;
    engine.limits.reply_reserve_percent = 25;  // 10 tokens only known gateways may take
    const auto t0 = std::chrono::steady_clock::now();
    TestRelay relay("budget2", 2, engine);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();

    constexpr uint32_t flood = 400;
    uint32_t injected = 0;
    for (int round = 0; round < 4; ++round) {
        for (uint32_t i = 0; i < flood / 4; ++i, ++injected)
            relay.nic().inject(request_frame(relay, spoofed(injected), injected),
                               static_cast<uint16_t>(injected % 2));
        relay.step(4);
    }
    const QueryCount spoofed_queries = queries(relay.nic().sent());
    // The known gateway, on both workers' queues, during the flood.
    relay.nic().inject(request_frame(relay, gw(1), 7), 0);
    relay.nic().inject(request_frame(relay, spoofed(flood), flood), 0);
    relay.step(2);
    relay.nic().inject(request_frame(relay, gw(1), 8), 1);
    relay.step(2);
    const QueryCount after = queries(relay.nic().sent(), gw(1));
    const double elapsed = seconds_since(t0);

    const double rate = engine.limits.replies_per_second;
    const double open = engine.limits.reply_burst * 0.75;
    // The join's Query took one token; unknown addresses stop at the reserve.
    EXPECT_LE(static_cast<double>(spoofed_queries.total), open - 1 + rate * elapsed);
    EXPECT_GE(spoofed_queries.total, static_cast<size_t>(open) - 1);
    EXPECT_EQ(after.to_gateway, 2u) << "the known gateway is answered from the reserve";
    EXPECT_EQ(after.total, 2u) << "the unknown address is not";
    EXPECT_LE(static_cast<double>(1 + spoofed_queries.total + after.total),
              engine.limits.reply_burst + rate * elapsed)
        << "replies over both workers within the one budget";
    EXPECT_GE(dropped(relay.dp(), DropReason::reply_budget_exhausted),
              flood + 1 - spoofed_queries.total);
    EXPECT_EQ(dropped(relay.dp(), DropReason::reply_reserve_exhausted), 0u);
    for (size_t i = 0; i < 2; ++i)
        EXPECT_GT(relay.dp()
                      .worker(i)
                      .responder()
                      .counters()
                      .dropped[static_cast<size_t>(DropReason::reply_budget_exhausted)]
                      .value(),
                  0u)
            << "worker " << i << " refused too: both draw on the same budget";
}

// A reload (what SIGHUP does: the control thread's engine reconfigured) reaches the workers:
// their per-address buckets and the global budget take the new limits at their next burst.
TEST(DataplaneReplyBudget, ReloadReachesTheWorkersLimits) {
    EngineConfig engine = TestRelay::default_engine();
    engine.limits.replies_per_second_per_source_ip = 1e-3;
    engine.limits.reply_burst_per_source_ip = 3;
    TestRelay relay("budget_reload", 2, engine);
    const UdpEndpoint a = spoofed(1), b = spoofed(2);
    for (uint32_t i = 0; i < 10; ++i)
        relay.nic().inject(request_frame(relay, a, i), 1);
    relay.step();
    EXPECT_EQ(queries(relay.nic().sent()).total, 3u) << "the start-up per-address burst";

    engine.limits.reply_burst_per_source_ip = 8;
    relay.dp().control().engine().reconfigure(engine);
    for (uint32_t i = 0; i < 10; ++i)
        relay.nic().inject(request_frame(relay, b, i), 1);
    relay.step();
    EXPECT_EQ(queries(relay.nic().sent()).total, 8u) << "worker 1 took the reloaded burst";

    // The global budget too: 2 more replies for the whole relay, whichever worker answers.
    engine.limits.replies_per_second = 1;
    engine.limits.reply_burst = 2;
    engine.limits.reply_reserve_percent = 0;
    relay.dp().control().engine().reconfigure(engine);
    for (uint32_t i = 0; i < 6; ++i)
        relay.nic().inject(request_frame(relay, spoofed(10 + i), i), static_cast<uint16_t>(i % 2));
    relay.step();
    EXPECT_LE(queries(relay.nic().sent()).total, 3u);  // 2 + at most one refilled
    EXPECT_GE(dropped(relay.dp(), DropReason::reply_budget_exhausted), 3u);
}
