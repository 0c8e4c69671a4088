// The operator's view of a relay running on ring ports: Prometheus metrics must agree with the
// traffic the test sends, and the control socket's commands (status, tunnels, groups, drain,
// secret rotation) must act on the running dataplane.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <map>

#include "dataplane/daemon/relay_control.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "harness.hpp"

using namespace amt;
using namespace amt::test;
using json = nlohmann::ordered_json;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");
const IpAddress G2 = *IpAddress::parse("232.1.1.2");
const IpAddress ASM_G = *IpAddress::parse("239.1.2.3");

// One sample of a scrape: the family's name and the sample's labels.
struct Scrape {
    std::vector<prometheus::MetricFamily> families;

    explicit Scrape(const RelayMetrics& m) : families(m.Collect()) {}

    // Sum of the family's samples whose labels include every pair of `match`.
    double sum(const std::string& name, const std::map<std::string, std::string>& match = {}) {
        for (const prometheus::MetricFamily& f : families) {
            if (f.name != name) continue;
            double total = 0;
            for (const prometheus::ClientMetric& m : f.metric) {
                size_t hits = 0;
                for (const auto& l : m.label)
                    hits += match.count(l.name) != 0 && match.at(l.name) == l.value;
                if (hits != match.size()) continue;
                total += f.type == prometheus::MetricType::Counter     ? m.counter.value
                         : f.type == prometheus::MetricType::Histogram ? m.histogram.sample_count
                                                                       : m.gauge.value;
            }
            return total;
        }
        ADD_FAILURE() << "no metric family " << name;
        return -1;
    }
};

bool query_has_l_flag(TestRelay& relay, const UdpEndpoint& gateway) {
    uint8_t req[8];
    build_request(req, {.nonce = 99, .flags = 0});
    relay.nic().inject(
        udp_frame(relay.relay_mac(), router_mac, gateway, relay.relay_v4(), ByteView(req)));
    relay.step();
    for (const Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        MembershipQuery q;
        if (r.ok && parse_membership_query(r.udp.payload, q) == ParseError::ok) return q.l_flag;
    }
    ADD_FAILURE() << "no Membership Query came back";
    return false;
}

}  // namespace

TEST(Operations, MetricsAgreeWithTheTraffic) {
    TestRelay relay("ops_metrics");
    RelayMetrics metrics(relay.dp());
    constexpr int gateways = 3, packets = 10;
    for (int i = 1; i <= gateways; ++i) {
        ASSERT_TRUE(relay.join(gw(i), relay.relay_v4(),
                               TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    }
    relay.nic().sent();
    for (int i = 0; i < packets; ++i)
        relay.nic().inject(multicast_frame(S1, G1, 500));
    // Input the relay does not replicate, each counted under its reason: TTL 1, a link-local
    // group (the kernel's, but this relay has no exception port), a flow nobody joined.
    relay.nic().inject(multicast_frame(S1, G1, 100, 1));
    relay.nic().inject(multicast_frame(S1, *IpAddress::parse("224.0.0.5"), 100));
    relay.nic().inject(multicast_frame(S1, G2, 100));
    relay.step();
    relay.dp().control().update_gauges();

    Scrape s(metrics);
    EXPECT_EQ(s.sum("amt_multicast_packets_total"), packets);
    EXPECT_EQ(s.sum("amt_replicas_total"), packets * gateways) << "packets in × fan-out";
    EXPECT_EQ(s.sum("amt_dropped_packets_total", {{"reason", "ttl_expired"}}), 1);
    EXPECT_EQ(s.sum("amt_dropped_packets_total", {{"reason", "exception_unavailable"}}), 1);
    EXPECT_EQ(s.sum("amt_dropped_packets_total", {{"reason", "no_flow"}}), 1);
    EXPECT_EQ(s.sum("amt_messages_total", {{"type", "request"}, {"direction", "received"}}),
              gateways);
    EXPECT_EQ(s.sum("amt_messages_total", {{"type", "membership_query"}, {"direction", "sent"}}),
              gateways);
    EXPECT_EQ(
        s.sum("amt_messages_total", {{"type", "membership_update"}, {"direction", "received"}}),
        gateways);
    EXPECT_EQ(s.sum("amt_endpoints"), gateways);
    EXPECT_EQ(s.sum("amt_flows"), 1);
    EXPECT_EQ(s.sum("amt_mac_failures_total"), 0);
    EXPECT_GE(s.sum("amt_flow_publish_latency_seconds"), 1) << "the join was published";
    EXPECT_GE(s.sum("amt_port_rx_packets_total", {{"port", "downstream"}}),
              gateways * 2 + packets + 3);

    // The exposition text is what Prometheus parses: every family has TYPE and HELP.
    const std::string text = prometheus::TextSerializer().Serialize(s.families);
    EXPECT_NE(text.find("# TYPE amt_replicas_total counter"), std::string::npos);
    EXPECT_NE(text.find("# TYPE amt_flow_publish_latency_seconds histogram"), std::string::npos);
    EXPECT_NE(text.find("amt_flow_publish_latency_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
}

TEST(Operations, BadUpdateMacIsCountedAsAMacFailure) {
    TestRelay relay("ops_mac");
    RelayMetrics metrics(relay.dp());
    uint8_t update[256];
    const Frame report = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    const size_t n = build_membership_update(update, ResponseMac{1, 2, 3, 4, 5, 6}, 7, report);
    relay.nic().inject(
        udp_frame(relay.relay_mac(), router_mac, gw(1), relay.relay_v4(), ByteView(update, n)));
    relay.step();
    Scrape s(metrics);
    EXPECT_EQ(s.sum("amt_mac_failures_total"), 1);
    EXPECT_EQ(s.sum("amt_dropped_packets_total", {{"reason", "mac_mismatch"}}), 1);
}

TEST(Operations, StatusTunnelsAndGroups) {
    TestRelay relay("ops_status");
    RelayControl control(relay.dp(), {});
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_exclude, ASM_G, {})));

    const json status = control.handle({{"command", "status"}}, relay.now());
    EXPECT_EQ(status["endpoints"], 2);
    EXPECT_EQ(status["flows"], 2);
    EXPECT_EQ(status["draining"], false);

    const json all = control.handle({{"command", "tunnels"}}, relay.now());
    EXPECT_EQ(all["total"], 2);
    const json one = control.handle({{"command", "tunnels"}, {"group", "232.1.1.1"}}, relay.now());
    ASSERT_EQ(one["total"], 1);
    EXPECT_EQ(one["tunnels"][0]["gateway"], gw(1).to_string());
    EXPECT_EQ(one["tunnels"][0]["groups"][0]["mode"], "include");
    EXPECT_EQ(one["tunnels"][0]["groups"][0]["sources"][0], "198.51.100.7");
    EXPECT_GT(one["tunnels"][0]["expires_in_seconds"].get<double>(), 0);
    const json limited = control.handle({{"command", "tunnels"}, {"limit", 1}}, relay.now());
    EXPECT_EQ(limited["total"], 2);
    EXPECT_EQ(limited["tunnels"].size(), 1u);

    const json answer = control.handle({{"command", "groups"}}, relay.now());
    EXPECT_EQ(answer["total"], 2);
    const json& groups = answer["groups"];
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0]["source"], "*");
    EXPECT_EQ(groups[0]["group"], "239.1.2.3");
    EXPECT_EQ(groups[1]["source"], "198.51.100.7");
    EXPECT_EQ(groups[1]["tunnels"], 1);

    EXPECT_THROW(control.handle({{"command", "tunnels"}, {"group", "10.0.0.1"}}, relay.now()),
                 std::invalid_argument);
    EXPECT_EQ(control.handle({{"command", "groups"}, {"limit", 1}}, relay.now())["groups"].size(),
              1u);
    for (const json& bad : {json(-1), json(1e30), json("abc"), json(1'000'000)}) {
        EXPECT_THROW(control.handle({{"command", "tunnels"}, {"limit", bad}}, relay.now()),
                     std::invalid_argument)
            << bad;
    }
    EXPECT_THROW(control.handle({{"command", "reboot"}}, relay.now()), std::invalid_argument);
}

TEST(Operations, DrainSetsTheLFlagAndKeepsJoinedGateways) {
    TestRelay relay("ops_drain");
    RelayMetrics metrics(relay.dp());
    RelayControl control(relay.dp(), {});
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    EXPECT_FALSE(query_has_l_flag(relay, gw(2)));

    control.handle({{"command", "drain"}, {"state", "on"}}, relay.now());
    relay.step();
    EXPECT_TRUE(query_has_l_flag(relay, gw(2))) << "new gateways are told to go elsewhere";
    EXPECT_EQ(Scrape(metrics).sum("amt_draining"), 1);
    relay.nic().inject(multicast_frame(S1, G1, 200));
    relay.step();
    size_t data = 0;
    for (const Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        data += r.ok && r.udp.dst == gw(1);
    }
    EXPECT_EQ(data, 1u) << "the joined gateway keeps its stream while draining";

    control.handle({{"command", "drain"}, {"state", "off"}}, relay.now());
    relay.step();
    EXPECT_FALSE(query_has_l_flag(relay, gw(2)));
    EXPECT_EQ(Scrape(metrics).sum("amt_draining"), 0);
    EXPECT_THROW(control.handle({{"command", "drain"}, {"state", "maybe"}}, relay.now()),
                 std::invalid_argument);
}

TEST(Operations, SecretRotationKeepsHandshakesInFlightAndIsCounted) {
    TestRelay relay("ops_secret");
    RelayMetrics metrics(relay.dp());
    RelayControl control(relay.dp(), {});
    // A Query's MAC made under the old secret...
    uint8_t req[8];
    build_request(req, {.nonce = 5, .flags = 0});
    relay.nic().inject(
        udp_frame(relay.relay_mac(), router_mac, gw(1), relay.relay_v4(), ByteView(req)));
    relay.step();
    MembershipQuery q;
    bool got_query = false;
    for (const Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        got_query |= r.ok && parse_membership_query(r.udp.payload, q) == ParseError::ok;
    }
    ASSERT_TRUE(got_query);
    const uint64_t before = relay.dp().secrets().generation();
    const json r = control.handle({{"command", "secret-rotate"}}, relay.now());
    EXPECT_EQ(r["generation"], before + 1);
    // ...still opens the tunnel after the operator's rotation (previous secret, 2×QI).
    uint8_t update[256];
    const Frame report = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    const size_t n = build_membership_update(update, q.mac, q.nonce, report);
    relay.nic().inject(
        udp_frame(relay.relay_mac(), router_mac, gw(1), relay.relay_v4(), ByteView(update, n)));
    relay.step();
    EXPECT_EQ(relay.dp().control().engine().memberships().endpoint_count(), 1u);
    Scrape s(metrics);
    EXPECT_EQ(s.sum("amt_secret_rotations_total"), 1);
    EXPECT_EQ(s.sum("amt_mac_fallback_accepted_total", {{"via", "previous_secret"}}), 1);
}
