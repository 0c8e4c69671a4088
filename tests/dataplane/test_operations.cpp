// The operator's view of a relay running on ring ports: Prometheus metrics must agree with the
// traffic the test sends, and the control socket's commands (status, tunnels, groups, drain,
// secret rotation) must act on the running dataplane.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <map>

#include "dataplane/daemon/relay_control.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "harness.hpp"
#include "scrape.hpp"

using namespace amt;
using namespace amt::test;
using json = nlohmann::ordered_json;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");
const IpAddress G2 = *IpAddress::parse("232.1.1.2");
const IpAddress ASM_G = *IpAddress::parse("239.1.2.3");

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

namespace {

// A Membership Update datagram whose encapsulated IPv4 header is rebuilt from `report` with
// `ttl`, destination `dst` and IP options `options` (IGMP message unchanged).
Frame with_inner_ipv4(const Frame& report, uint8_t ttl, const IpAddress& dst, Frame options) {
    const size_t ihl = size_t{report[0] & 0x0fu} * 4;
    const ByteView igmp(report.data() + ihl, report.size() - ihl);
    Frame out(ipv4_header_size + options.size() + igmp.size());
    write_ipv4_header(out, {.total_length = static_cast<uint16_t>(out.size()),
                            .ttl = ttl,
                            .protocol = ip_proto_igmp,
                            .src = 0,
                            .dst = dst.v4_value(),
                            .options = ByteView(options)});
    std::copy(igmp.begin(), igmp.end(), out.begin() + ipv4_header_size + options.size());
    return out;
}

const Frame router_alert = {0x94, 0x04, 0x00, 0x00};
const IpAddress igmpv3_routers = *IpAddress::parse("224.0.0.22");

}  // namespace

// Issue 18, item 5: one dropped packet, one reason. Bad AMT input used to count once in a worker
// reason (amt_bad_type, amt_malformed_udp) and again under its parse or protocol reason, and
// amtctl status summed both. Now the drop counters rise by exactly the packets sent, per kind.
TEST(Operations, EachDroppedPacketCountsOnceUnderOneReason) {
    TestRelay relay("ops_one_reason");
    RelayMetrics metrics(relay.dp());
    RelayControl control(relay.dp(), {});
    const auto frame = [&](Frame payload) {
        return udp_frame(relay.relay_mac(), router_mac, gw(1), relay.relay_v4(), ByteView(payload));
    };
    Frame request(8);
    build_request(request, {.nonce = 7, .flags = 0});
    Frame bad_checksum = frame(request);
    bad_checksum[ethernet_header_size + ipv4_header_size + 7] ^= 0x01;
    Frame advertisement(12);
    build_advertisement(advertisement, {.nonce = 7, .relay = relay.relay_v4().ip});
    const std::vector<std::pair<std::string, Frame>> kinds = {
        {"bad_udp_checksum", bad_checksum},
        {"bad_version", frame({0x13, 0, 0, 0, 0, 0, 0, 7})},
        {"unknown_type", frame({0x08, 0, 0, 0, 0, 0, 0, 7})},
        {"empty_message", frame({})},
        {"truncated_message", frame({0x03, 0, 0, 0})},
        {"unexpected_message_type", frame(advertisement)},
    };
    constexpr int n = 7;
    for (const auto& [reason, bad] : kinds) {
        Scrape before(metrics);
        const json status_before = control.handle({{"command", "status"}}, relay.now());
        for (int i = 0; i < n; ++i)
            relay.nic().inject(bad);
        relay.step();
        Scrape after(metrics);
        const json status_after = control.handle({{"command", "status"}}, relay.now());
        EXPECT_EQ(after.sum("amt_dropped_packets_total", {{"reason", reason}}) -
                      before.sum("amt_dropped_packets_total", {{"reason", reason}}),
                  n)
            << reason;
        EXPECT_EQ(after.sum("amt_dropped_packets_total") - before.sum("amt_dropped_packets_total"),
                  n)
            << reason << ": every drop counted once, under one reason";
        EXPECT_EQ(status_after["dropped"].get<int>() - status_before["dropped"].get<int>(), n)
            << reason << ": amtctl status";
        EXPECT_EQ(status_after["dropped"].get<double>(), after.sum("amt_dropped_packets_total"))
            << "amtctl status sums the drop family";
    }
}

// Issue 18, item 5: records of an accepted Update that are ignored are not dropped packets: they
// count in amt_ignored_records_total, once per record (here: bad sources and the source limit in
// one record, a record over the group limit with bad sources), never in the drop family.
TEST(Operations, IgnoredRecordsAreNotDroppedPackets) {
    EngineConfig engine = TestRelay::default_engine();
    engine.limits.max_sources_per_group = 1;
    engine.limits.max_groups_per_endpoint = 1;
    TestRelay relay("ops_ignored_records", 1, engine);
    RelayMetrics metrics(relay.dp());
    Frame buf(1500);
    ReportBuilder b(buf, Family::ipv4);
    const IpAddress loopback = *IpAddress::parse("127.0.0.1"),
                    S2 = *IpAddress::parse("198.51.100.8");
    b.add_record(RecordType::allow_new_sources, G1, std::vector<IpAddress>{S1, S2, loopback});
    b.add_record(RecordType::allow_new_sources, G2, std::vector<IpAddress>{S1, loopback});
    buf.resize(b.finish());
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(), buf));
    relay.dp().control().update_gauges();
    Scrape s(metrics);
    EXPECT_EQ(s.sum("amt_dropped_packets_total"), 0) << "the Update was accepted";
    EXPECT_EQ(s.sum("amt_ignored_records_total", {{"reason", "source_limit"}}), 1);
    EXPECT_EQ(s.sum("amt_ignored_records_total", {{"reason", "group_limit"}}), 1);
    EXPECT_EQ(s.sum("amt_ignored_records_total"), 2) << "one reason per record";
    EXPECT_EQ(s.sum("amt_flows"), 1);
}

// Issue 18, item 6 (checklist §8.4): Updates whose inner header lacks the Router Alert, has a TTL
// other than 1 or an unexpected destination are accepted (the gateway joins) and counted by
// anomaly; a correct one counts nothing; a Router Alert of 3 octets is a malformed option.
TEST(Operations, InnerHeaderAnomaliesAreAcceptedAndCounted) {
    const Frame good = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    struct Case {
        std::string anomaly;  // "" = none expected
        Frame report;
    };
    const std::vector<Case> cases = {
        {"", with_inner_ipv4(good, 1, igmpv3_routers, router_alert)},
        {"missing_router_alert", with_inner_ipv4(good, 1, igmpv3_routers, {})},
        {"missing_router_alert", with_inner_ipv4(good, 1, igmpv3_routers, {0, 0, 0, 0})},  // VLC
        {"ttl_not_1", with_inner_ipv4(good, 64, igmpv3_routers, router_alert)},
        {"unexpected_destination", with_inner_ipv4(good, 1, G1, router_alert)},
    };
    int i = 0;
    for (const Case& c : cases) {
        TestRelay relay("ops_anomaly" + std::to_string(i++));
        RelayMetrics metrics(relay.dp());
        ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(), c.report));
        relay.dp().control().update_gauges();
        Scrape s(metrics);
        EXPECT_EQ(s.sum("amt_flows"), 1) << c.anomaly << ": accepted";
        EXPECT_EQ(s.sum("amt_accepted_anomalies_total"), c.anomaly.empty() ? 0 : 1) << c.anomaly;
        if (!c.anomaly.empty()) {
            EXPECT_EQ(s.sum("amt_accepted_anomalies_total", {{"anomaly", c.anomaly}}), 1);
        }
        EXPECT_EQ(s.sum("amt_dropped_packets_total"), 0) << c.anomaly;
    }

    TestRelay relay("ops_anomaly_ra3");
    RelayMetrics metrics(relay.dp());
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           with_inner_ipv4(good, 1, igmpv3_routers, {0x94, 0x03, 0x00, 0x00})));
    relay.dp().control().update_gauges();
    Scrape s(metrics);
    EXPECT_EQ(s.sum("amt_dropped_packets_total", {{"reason", "inner_bad_option"}}), 1)
        << "Router Alert of length 3: strict IPv4 options";
    EXPECT_EQ(s.sum("amt_flows"), 0);
}
