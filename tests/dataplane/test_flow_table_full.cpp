// Issue 18 item 2: the flow table exhausted from one address. Before: two endpoints of one
// address filled a 4,096-entry table, and a legitimate gateway that joined afterwards was shown
// as joined but received nothing, forever (after the attacker left, after its own refresh), and
// nothing was logged. Here on a 64-entry table: the flow budget per address keeps one address
// from filling it, and a flow that found it full is published as soon as a slot is free again;
// the operator sees it in amtctl groups (forwarding), the metrics and the log.
#include <gtest/gtest.h>

#include "dataplane/daemon/flow_refusal_log.hpp"
#include "dataplane/daemon/relay_control.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "harness.hpp"

using namespace amt;
using namespace amt::test;
using json = nlohmann::ordered_json;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");

DataplaneConfig small_table() {
    DataplaneConfig c;
    c.flow_table_size = 64;
    return c;
}

// `count` sources in 198.51.100.0/24 for `group`: as many (S,G) flows.
Frame flood_report(const IpAddress& group, uint32_t count = 64) {
    std::vector<IpAddress> sources;
    for (uint32_t i = 1; i <= count; ++i)
        sources.push_back(IpAddress::v4(0xc6336400u + i));
    return TestRelay::report(RecordType::allow_new_sources, group, sources);
}

IpAddress flood_group(int i) {
    return IpAddress::v4(0xe8020000u + static_cast<uint32_t>(i));  // 232.2.0.i
}

// AMT Data frames the relay sent to `gateway` since the last call.
size_t data_to(TestRelay& relay, const UdpEndpoint& gateway) {
    size_t n = 0;
    for (const Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        MessageType t;
        n += r.ok && r.udp.dst == gateway &&
             peek_message_type(r.udp.payload, t) == ParseError::ok &&
             t == MessageType::multicast_data;
    }
    return n;
}

size_t replicas_of_one_packet(TestRelay& relay, const UdpEndpoint& gateway) {
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, G1, 200));
    relay.step();
    return data_to(relay, gateway);
}

json flow_row(RelayControl& control, TestRelay& relay, const FlowKey& key) {
    const json all = control.handle({{"command", "groups"}, {"limit", 1000}}, relay.now());
    for (const json& g : all["groups"]) {
        if (g["source"] == key.source.to_string() && g["group"] == key.group.to_string()) return g;
    }
    ADD_FAILURE() << "no such flow in amtctl groups";
    return json::object();
}

double gauge(RelayMetrics& metrics, const std::string& name) {
    for (const prometheus::MetricFamily& f : metrics.Collect()) {
        if (f.name == name) return f.metric.at(0).gauge.value + f.metric.at(0).counter.value;
    }
    ADD_FAILURE() << "no metric " << name;
    return -1;
}

}  // namespace

// Without budgets that stop them (here as large as the table), two gateways fill the table (32 +
// 64 flows for 64 entries); a legitimate join finds it full: not forwarding, and amtctl, the
// metrics and the log say so. When one of them leaves and its slots are freed, the waiting flow is
// published without any change of its own, and its gateway receives.
TEST(FlowTableFull, AFlowThatFoundTheTableFullIsPublishedWhenASlotIsFree) {
    EngineConfig engine = TestRelay::default_engine();
    engine.limits.max_flows_per_source_ip = engine.limits.max_flows_per_endpoint = 64;
    TestRelay relay("full_retry", 1, engine, false, small_table());
    RelayControl control(relay.dp(), {});
    RelayMetrics metrics(relay.dp());
    FlowRefusalLog log;
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(), flood_report(flood_group(1), 32)));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(), flood_report(flood_group(2))));
    FlowPublisher& publisher = relay.dp().control().publisher();
    ASSERT_GT(publisher.publish_failures(), 0u) << "the table must be full for this test";

    const UdpEndpoint viewer = gw(3);
    const Frame join = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    ASSERT_TRUE(relay.join(viewer, relay.relay_v4(), join));
    EXPECT_EQ(replicas_of_one_packet(relay, viewer), 0u);
    json row = flow_row(control, relay, {S1, G1});
    EXPECT_EQ(row["forwarding"], false) << "joined upstream, but not forwarding";
    EXPECT_EQ(row["joined_upstream"], true);
    relay.dp().control().update_gauges();
    EXPECT_GE(gauge(metrics, "amt_flows_unpublished"), 1);
    EXPECT_EQ(control.handle({{"command", "status"}}, relay.now())["flows_unpublished"],
              publisher.unpublished());
    const std::vector<FlowRefusalLog::Line> full = log.since_last(relay.dp());
    ASSERT_EQ(full.size(), 1u);
    EXPECT_TRUE(full[0].warning);
    EXPECT_NE(full[0].text.find("flow table full (dataplane.flow_table_size = 64)"),
              std::string::npos)
        << full[0].text;

    ASSERT_TRUE(relay.join(viewer, relay.relay_v4(), join));  // its refresh: still no room
    EXPECT_EQ(replicas_of_one_packet(relay, viewer), 0u);

    const uint64_t failures = publisher.publish_failures();
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_include, flood_group(2), {})));
    relay.step(5);  // delete, RCU grace period, reclaim, retry
    EXPECT_EQ(replicas_of_one_packet(relay, viewer), 1u);
    EXPECT_EQ(flow_row(control, relay, {S1, G1})["forwarding"], true);
    EXPECT_EQ(publisher.unpublished(), 0u);
    EXPECT_EQ(publisher.publish_failures(), failures) << "a flow is counted once, not per retry";
    relay.dp().control().update_gauges();
    EXPECT_EQ(gauge(metrics, "amt_flows_unpublished"), 0);
    const std::vector<FlowRefusalLog::Line> recovered = log.since_last(relay.dp());
    ASSERT_EQ(recovered.size(), 1u);
    EXPECT_FALSE(recovered[0].warning);
    EXPECT_NE(recovered[0].text.find("every flow forwards again"), std::string::npos);
    EXPECT_TRUE(log.since_last(relay.dp()).empty()) << "nothing new, nothing logged";
}

// The attack itself: two endpoints of one address, each at 2 groups × 64 sources, against a
// 64-entry table whose budget per address is 16. The address gets 16 flows, the table never
// fills, a later gateway's join forwards at once, and the log names the address that was cut.
TEST(FlowTableFull, TheBudgetPerAddressKeepsOneAddressFromFillingTheTable) {
    EngineConfig engine = TestRelay::default_engine();
    engine.limits.max_flows_per_source_ip = 16;
    TestRelay relay("full_budget", 1, engine, false, small_table());
    FlowRefusalLog log;
    const UdpEndpoint first{gw(1).ip, 50001}, second{gw(1).ip, 50002};
    for (const UdpEndpoint& attacker : {first, second}) {
        for (int g = 1; g <= 2; ++g)
            ASSERT_TRUE(relay.join(attacker, relay.relay_v4(), flood_report(flood_group(g))));
    }
    const FlowPublisher& publisher = relay.dp().control().publisher();
    EXPECT_EQ(publisher.flows(), 16u);
    EXPECT_EQ(publisher.publish_failures(), 0u);

    const UdpEndpoint viewer = gw(3);
    ASSERT_TRUE(relay.join(viewer, relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    EXPECT_EQ(replicas_of_one_packet(relay, viewer), 1u);

    const auto& dropped = relay.dp().control().engine().counters().dropped;
    EXPECT_EQ(dropped[static_cast<size_t>(DropReason::source_ip_flow_limit)].value(), 4u)
        << "one per record cut";
    const std::vector<FlowRefusalLog::Line> lines = log.since_last(relay.dp());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].text.find("4 membership change(s) cut"), std::string::npos) << lines[0].text;
    EXPECT_NE(lines[0].text.find(second.to_string()), std::string::npos) << lines[0].text;
    EXPECT_NE(lines[0].text.find("limits.max_flows_per_source_ip = 16"), std::string::npos)
        << lines[0].text;
    EXPECT_TRUE(log.since_last(relay.dp()).empty());
}
