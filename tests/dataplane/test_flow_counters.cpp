// Per-tunnel accounting (issue 15) through the real worker: with the per-flow counters on, what a
// gateway's session record says is what the workers forwarded on its flow while it was a member,
// across a flow deleted and made again (its counter slot changes owner after an RCU grace period).
#include <gtest/gtest.h>

#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");

class Records : public SessionSink {
  public:
    std::vector<SessionRecord> records;
    void session_record(const SessionRecord& r) override { records.push_back(r); }
};

DataplaneConfig counting() {
    DataplaneConfig c;
    c.count_flows = true;
    return c;
}

void stream(TestRelay& relay, int packets) {
    for (int i = 0; i < packets; ++i) {
        relay.nic().inject(multicast_frame(S1, G1, 200));
        relay.step(1);
    }
    relay.step();
    relay.nic().sent();
}

}  // namespace

TEST(FlowCounters, SessionRecordsCountWhatTheWorkersForwarded) {
    TestRelay relay("flow_counters", 2, TestRelay::default_engine(), false, counting());
    Records sink;
    relay.dp().control().start_accounting(sink, std::chrono::hours(1), Time{0});
    const Frame join = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    const Frame leave = TestRelay::report(RecordType::block_old_sources, G1, {S1});

    stream(relay, 5);  // nobody joined: no flow, nothing counted for anyone
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(), join));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(), join));
    stream(relay, 7);
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(), leave));
    stream(relay, 3);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(), leave));  // the flow goes
    relay.step(5);                                            // its grace period, its slot back
    ASSERT_EQ(sink.records.size(), 2u);
    EXPECT_EQ(sink.records[0].gateway, gw(2));
    EXPECT_EQ(sink.records[0].packets, 7u);
    EXPECT_EQ(sink.records[1].gateway, gw(1));
    EXPECT_EQ(sink.records[1].packets, 10u);
    // Inner IPv4 + UDP + 200 octets of payload per packet.
    EXPECT_EQ(sink.records[1].octets, 10u * (20 + 8 + 200));

    // The flow made again counts from zero, whichever slot it gets.
    ASSERT_TRUE(relay.join(gw(3), relay.relay_v4(), join));
    stream(relay, 4);
    relay.dp().control().stop_accounting(relay.now());
    ASSERT_EQ(sink.records.size(), 3u);
    EXPECT_EQ(sink.records[2].gateway, gw(3));
    EXPECT_EQ(sink.records[2].packets, 4u);
    EXPECT_EQ(sink.records[2].reason, SessionEnd::relay_stop);
}

// Off (no ipfix.collector): the sets carry no slot and the workers count nothing.
TEST(FlowCounters, OffByDefault) {
    TestRelay relay("flow_counters_off");
    EXPECT_EQ(relay.dp().flows().counters(), nullptr);
}
