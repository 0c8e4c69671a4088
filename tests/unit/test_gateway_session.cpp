// The gateway's protocol (gateway/gateway_session.hpp) against the relay's own engine, in
// memory: discovery, handshake, join, refresh cycles, data delivery, leave, Teardown after a NAT
// rebinding; and DRIAD's AMTRELAY record parsing (RFC 8777).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "common/packet_headers.hpp"
#include "controlplane/relay_engine.hpp"
#include "gateway/driad.hpp"
#include "gateway/gateway_session.hpp"

using namespace amt;

namespace {

const IpAddress relay_ip = *IpAddress::parse("192.0.2.1");
const IpAddress S = *IpAddress::parse("198.51.100.7");
const IpAddress G = *IpAddress::parse("232.1.1.1");

// Wires one GatewaySession to a RelayEngine: what one sends, the other receives.
struct Loop : EngineSink {
    EngineConfig config;
    SecretStore secrets{Time{0}};
    std::unique_ptr<RelayEngine> engine;
    std::unique_ptr<GatewaySession> session;
    UdpEndpoint gateway{*IpAddress::parse("203.0.113.5"), 40000};
    std::vector<std::pair<UdpEndpoint, std::vector<uint8_t>>> to_gateway;
    std::map<FlowKey, std::set<UdpEndpoint>> flows;
    Time now{std::chrono::seconds(10)};
    std::mt19937 rng{1};
    std::unique_ptr<SecretStore> fresh_secrets;
    size_t requests = 0;
    size_t discoveries = 0;
    std::set<IpAddress> unreachable;  // relays that are down: what is sent to them is lost
    // Other relays, by address (the one in `engine` is the one anycast discovery reaches).
    std::map<IpAddress, std::unique_ptr<RelayEngine>> others;

    explicit Loop(SessionConfig sc, bool teardown = false) {
        config.relay_addresses = {relay_ip};
        config.teardown = teardown;
        engine = std::make_unique<RelayEngine>(config, secrets, *this);
        session =
            std::make_unique<GatewaySession>(sc, [this] { return static_cast<uint32_t>(rng()); });
    }
    void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView p) override {
        EXPECT_EQ(to, gateway);
        to_gateway.push_back({from, std::vector<uint8_t>(p.begin(), p.end())});
    }
    void flow_edit(const FlowEdit& e) override {
        if (e.op == FlowOp::add_tunnel) flows[e.key].insert(e.tunnel);
        if (e.op == FlowOp::remove_tunnel) flows[e.key].erase(e.tunnel);
        if (e.op == FlowOp::delete_flow) flows.erase(e.key);
    }
    void upstream_change(const FlowKey&, bool) override {}

    void start() {
        session->start(now);
        run();
    }
    // The relay goes away (what it sent is lost, nothing it is sent arrives) ...
    void relay_down() {
        engine.reset();
        flows.clear();
    }
    // ... and comes back as a new process: no memberships, fresh secrets.
    void relay_up() {
        fresh_secrets = std::make_unique<SecretStore>(now);
        engine = std::make_unique<RelayEngine>(config, *fresh_secrets, *this);
    }
    // Delivers everything in flight, both ways, until quiet; counts Requests sent.
    void run() {
        for (int round = 0; round < 10; ++round) {
            bool moved = false;
            for (const Outgoing& o : session->take_outgoing()) {
                requests += !o.payload.empty() && o.payload[0] == 3;  // Request
                discoveries += !o.payload.empty() && o.payload[0] == 1;
                if (unreachable.count(o.to.ip) > 0) continue;
                RelayEngine* to = engine.get();
                if (const auto other = others.find(o.to.ip); other != others.end())
                    to = other->second.get();
                if (to) to->handle({gateway, o.to, o.payload}, now);
                moved = true;
            }
            for (auto& [from, payload] : std::exchange(to_gateway, {})) {
                session->on_datagram(from, payload, now);
                moved = true;
            }
            if (!moved) return;
        }
    }
    void pass(std::chrono::seconds d) {
        now += d;
        if (engine) engine->advance(now);
        session->advance(now);
        run();
    }
    // The relay at `from` sends one datagram of the (S,G) stream to the gateway.
    void data_from(const IpAddress& from) {
        uint8_t packet[64];
        const uint8_t payload[8] = {};
        const size_t n = build_udp_datagram(packet, {S, 5000}, {G, 5000}, ByteView(payload));
        std::vector<uint8_t> msg(2 + n);
        build_multicast_data(msg, ByteView(packet, n));
        session->on_datagram({from, amt_udp_port}, msg, now);
        run();
    }
    // Seconds pass; the relay holding the flow sends one datagram a second while it does.
    void stream_for(int seconds, const IpAddress& relay) {
        for (int s = 0; s < seconds; ++s) {
            if (receives()) data_from(relay);
            pass(std::chrono::seconds(1));
        }
    }
    bool receives() const {
        const auto f = flows.find({S, G});
        return f != flows.end() && f->second.count(gateway) > 0;
    }
};

SessionConfig ssm_channel() {
    SessionConfig c;
    c.channels = {{S, G}};
    return c;
}

// One SSM channel, Requests straight to the relay (no discovery).
SessionConfig direct_to_relay() {
    SessionConfig c = ssm_channel();
    c.relay = relay_ip;
    return c;
}

}  // namespace

TEST(GatewaySession, DiscoversHandshakesAndJoins) {
    Loop loop(ssm_channel());
    loop.config.discovery_addresses = {*IpAddress::parse("192.52.193.1")};
    loop.start();
    EXPECT_EQ(loop.session->state(), SessionState::joined);
    ASSERT_TRUE(loop.session->relay().has_value());
    EXPECT_EQ(*loop.session->relay(), relay_ip);
    EXPECT_EQ(loop.session->qqic(), 125);
    EXPECT_TRUE(loop.receives());
}

TEST(GatewaySession, RefreshCyclesKeepTheTunnelPastTheMembershipTimeout) {
    Loop loop(direct_to_relay());
    loop.start();
    ASSERT_TRUE(loop.receives());
    for (int i = 0; i < 12; ++i)
        loop.pass(std::chrono::seconds(60));  // 720 s > 270 s timeout
    EXPECT_TRUE(loop.receives());
    // Cycles start at the first check past each QQIC (steps of 60 s): 180, 360, 540, 720 s.
    EXPECT_GE(loop.session->queries(), 5u) << "a new Request/Query every QQIC";
}

TEST(GatewaySession, DeliversOnlyWhatItJoined) {
    Loop loop(direct_to_relay());
    size_t delivered = 0;
    loop.session->on_data = [&](ByteView) { ++delivered; };
    loop.start();
    auto data = [&](const IpAddress& src) {
        std::vector<uint8_t> inner(28 + 10), msg(2 + inner.size());
        build_udp_datagram(inner, {src, 5000}, {G, 5000}, std::vector<uint8_t>(10, 1));
        build_multicast_data(msg, inner);
        loop.session->on_datagram({relay_ip, amt_udp_port}, msg, loop.now);
    };
    data(S);
    data(*IpAddress::parse("198.51.100.99"));  // another source: not ours
    loop.session->on_datagram({*IpAddress::parse("192.0.2.99"), amt_udp_port},
                              std::vector<uint8_t>{6, 0}, loop.now);
    EXPECT_EQ(delivered, 1u);
    EXPECT_EQ(loop.session->channel_packets(), std::vector<uint64_t>{1});
}

TEST(GatewaySession, CountsDataPerChannel) {
    SessionConfig c;
    c.relay = relay_ip;
    const IpAddress g2 = *IpAddress::parse("232.1.1.2");
    c.channels = {{S, G}, {S, g2}, {IpAddress::v4(0), *IpAddress::parse("239.1.1.1")}};
    Loop loop(c);
    loop.start();
    auto data = [&](const IpAddress& group) {
        std::vector<uint8_t> inner(28 + 10), msg(2 + inner.size());
        build_udp_datagram(inner, {S, 5000}, {group, 5000}, std::vector<uint8_t>(10, 1));
        build_multicast_data(msg, inner);
        loop.session->on_datagram({relay_ip, amt_udp_port}, msg, loop.now);
    };
    data(g2);
    data(g2);
    data(*IpAddress::parse("239.1.1.1"));
    EXPECT_EQ(loop.session->channel_packets(), (std::vector<uint64_t>{0, 2, 1}));
    EXPECT_EQ(loop.session->data_packets(), 3u);
}

// The relay restarts while the gateway is joined: the refresh Request goes unanswered, so the
// gateway retransmits (more often than every QQIC, never less often) and joins the new relay
// process by itself.
TEST(GatewaySession, RejoinsARestartedRelay) {
    Loop loop(direct_to_relay());
    loop.config.query_interval = std::chrono::seconds(20);
    loop.relay_up();
    loop.start();
    ASSERT_TRUE(loop.receives());
    EXPECT_EQ(loop.session->qqic(), 20);
    loop.relay_down();
    const size_t before = loop.requests;
    for (int s = 0; s < 60; ++s)
        loop.pass(std::chrono::seconds(1));
    // At 20 s the refresh, then 1 s later the first retransmission, then backoff capped at 20 s.
    EXPECT_GE(loop.requests - before, 4u) << "retransmits an unanswered refresh";
    EXPECT_LE(loop.requests - before, 20u) << "with backoff";
    EXPECT_EQ(loop.session->state(), SessionState::joined) << "a configured relay is kept";
    loop.relay_up();
    for (int s = 0; s < 21 && !loop.receives(); ++s)
        loop.pass(std::chrono::seconds(1));
    EXPECT_TRUE(loop.receives()) << "joined the new relay within one QQIC";
    EXPECT_EQ(loop.engine->memberships().endpoint_count(), 1u);
}

// A discovered relay that stops answering is given up for a new discovery (RFC 7450 §5.2.3.5.3).
TEST(GatewaySession, RediscoversWhenADiscoveredRelayStopsAnswering) {
    Loop loop(ssm_channel());
    loop.config.query_interval = std::chrono::seconds(10);
    loop.relay_up();
    loop.start();
    ASSERT_EQ(loop.session->state(), SessionState::joined);
    const size_t discoveries = loop.discoveries;
    loop.relay_down();
    for (int s = 0; s < 120 && loop.discoveries == discoveries; ++s)
        loop.pass(std::chrono::seconds(1));
    EXPECT_GT(loop.discoveries, discoveries) << "discovery started again";
    EXPECT_EQ(loop.session->state(), SessionState::discovering);
    loop.session->stop(loop.now);  // no relay to leave: nothing to send, no crash
    EXPECT_TRUE(loop.session->take_outgoing().empty());
}

namespace {
const IpAddress relay_b = *IpAddress::parse("192.0.2.2");

// Relay A (relay_ip) serves the gateway's stream, found through anycast discovery; then A dies
// and anycast reaches relay B instead (its route withdrawn). A's engine is kept aside, as its
// state file would keep its tunnels.
void fail_over_to_b(Loop& loop) {
    loop.start();
    ASSERT_EQ(loop.session->relay(), relay_ip);
    loop.stream_for(10, relay_ip);
    ASSERT_GT(loop.session->data_packets(), 5u);
    loop.unreachable.insert(relay_ip);
    loop.others[relay_ip] = std::move(loop.engine);
    loop.flows.clear();
    loop.config.relay_addresses = {relay_b};
    loop.relay_up();
}
}  // namespace

// RFC 7450 §5.2.3.5.3 / RFC 8777 §3.3.4.1: a stream that stops on a tunnel to a dead relay is
// noticed in seconds, not at the next refresh (QQIC 125 s), and discovery finds the next relay.
TEST(GatewaySession, ADeadRelaysSilenceLeadsToTheNextRelayWithinSeconds) {
    Loop loop(ssm_channel());
    fail_over_to_b(loop);
    int seconds = 0;
    while (seconds < 60 && !(loop.session->relay() == relay_b && loop.receives())) {
        loop.stream_for(1, relay_b);
        ++seconds;
    }
    // 4 s of silence, then a Request and 2 retransmissions (1 s, 1-2 s, 1-2 s), then discovery.
    EXPECT_LE(seconds, 10) << "joined relay B " << seconds << " s after relay A died";
    EXPECT_GE(seconds, 4) << "not before the data timeout";
    EXPECT_EQ(loop.session->relays_given_up(), 1u);
    EXPECT_EQ(loop.session->state(), SessionState::joined);
}

TEST(GatewaySession, WithoutTheDataTimeoutOnlyTheRefreshNoticesADeadRelay) {
    SessionConfig c = ssm_channel();
    c.data_timeout = std::chrono::seconds(0);
    Loop loop(c);
    fail_over_to_b(loop);
    loop.stream_for(60, relay_b);
    EXPECT_EQ(loop.session->relay(), relay_ip) << "still waiting for its refresh at 125 s";
    EXPECT_EQ(loop.session->relays_given_up(), 0u);
}

// A configured relay (--relay) is not given up; after the probe it is asked with the usual
// backoff (capped at QQIC), not every 2 s while it is down.
TEST(GatewaySession, AConfiguredRelayThatDiesIsProbedThenRetriedWithBackoff) {
    Loop loop(direct_to_relay());
    loop.start();
    loop.stream_for(10, relay_ip);
    loop.relay_down();
    const size_t before = loop.requests;
    for (int s = 0; s < 120; ++s)
        loop.pass(std::chrono::seconds(1));
    EXPECT_GE(loop.requests - before, 4u) << "the probe and its retransmissions, then retries";
    EXPECT_LE(loop.requests - before, 12u) << "with backoff, not every 1-2 s for two minutes";
    EXPECT_EQ(loop.session->relay(), relay_ip);
    EXPECT_EQ(loop.session->relays_given_up(), 0u);
    loop.relay_up();
    for (int s = 0; s < 130 && !loop.receives(); ++s)
        loop.pass(std::chrono::seconds(1));
    EXPECT_TRUE(loop.receives()) << "joined the relay again when it came back";
}

// A relay that answers is alive: a quiet source costs one Request, not one every few seconds.
TEST(GatewaySession, AQuietSourceOnALiveRelayIsAskedOnceAndKept) {
    Loop loop(ssm_channel());
    loop.start();
    loop.stream_for(10, relay_ip);
    const size_t before = loop.requests;
    for (int s = 0; s < 60; ++s)
        loop.pass(std::chrono::seconds(1));  // the source is quiet; the relay is up
    EXPECT_EQ(loop.requests - before, 1u) << "one probe after 4 s, answered";
    EXPECT_EQ(loop.session->relay(), relay_ip);
    EXPECT_TRUE(loop.receives());
    EXPECT_EQ(loop.session->relays_given_up(), 0u);
    loop.stream_for(10, relay_ip);  // flowing again: the next silence is asked about again
    for (int s = 0; s < 10; ++s)
        loop.pass(std::chrono::seconds(1));
    EXPECT_EQ(loop.requests - before, 2u);
}

// Relay A comes back with its state file, so it serves the gateway's old tunnel again although
// the gateway is joined to B: the gateway leaves A with the nonce and MAC A last accepted.
TEST(GatewaySession, LeavesAFormerRelayThatRestoredItsOldTunnel) {
    Loop loop(ssm_channel());
    fail_over_to_b(loop);
    loop.stream_for(15, relay_b);
    ASSERT_EQ(loop.session->relay(), relay_b);
    RelayEngine& a = *loop.others[relay_ip];
    ASSERT_EQ(a.memberships().endpoint_count(), 1u) << "A kept the old tunnel";
    loop.unreachable.erase(relay_ip);  // A is back
    loop.data_from(relay_ip);
    EXPECT_EQ(a.memberships().endpoint_count(), 0u) << "A was told the gateway left";
    EXPECT_EQ(loop.session->stale_leaves(), 1u);
    loop.data_from(relay_ip);  // more of A's data within the second: no second leave
    EXPECT_EQ(loop.session->stale_leaves(), 1u);
    EXPECT_EQ(loop.session->relay(), relay_b) << "the tunnel stays on B";
    EXPECT_EQ(loop.engine->memberships().endpoint_count(), 1u);
}

TEST(GatewaySession, LeaveOnStopEndsTheStreamAtOnce) {
    Loop loop(direct_to_relay());
    loop.start();
    ASSERT_TRUE(loop.receives());
    loop.session->stop(loop.now);
    loop.run();
    EXPECT_FALSE(loop.receives());
    EXPECT_EQ(loop.engine->memberships().endpoint_count(), 0u);
}

TEST(GatewaySession, TeardownAfterNatRebindingRemovesTheOldEndpoint) {
    Loop loop(direct_to_relay(), /*teardown=*/true);
    loop.start();
    ASSERT_TRUE(loop.receives());
    const UdpEndpoint old = loop.gateway;
    loop.gateway.port = 40001;  // the NAT gave the gateway a new port
    loop.pass(std::chrono::seconds(130));
    EXPECT_TRUE(loop.receives()) << "the new endpoint receives";
    const FlowKey sg{S, G};
    EXPECT_EQ(loop.flows[sg].count(old), 0u) << "the old one was torn down, not left to expire";
    EXPECT_EQ(loop.engine->memberships().endpoint_count(), 1u);
}

TEST(GatewaySession, AnySourceChannelJoinsStarG) {
    SessionConfig c;
    c.relay = relay_ip;
    c.channels = {{IpAddress::v4(0), *IpAddress::parse("239.1.2.3")}};
    Loop loop(c);
    loop.start();
    const auto f = loop.flows.find({IpAddress::v4(0), *IpAddress::parse("239.1.2.3")});
    ASSERT_NE(f, loop.flows.end());
    EXPECT_EQ(f->second.count(loop.gateway), 1u);
}

TEST(GatewaySession, RetriesWithBackoffThenRediscovers) {
    Loop loop(ssm_channel());
    loop.session->start(loop.now);
    auto first = loop.session->take_outgoing();
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].to, (UdpEndpoint{*IpAddress::parse("192.52.193.1"), amt_udp_port}));
    EXPECT_NE(load_be32(first[0].payload.data() + 4), 0u) << "Discovery nonce is never zero";
    size_t sent = 0;
    for (int s = 0; s < 600; ++s) {
        loop.now += std::chrono::seconds(1);
        loop.session->advance(loop.now);
        sent += loop.session->take_outgoing().size();
    }
    EXPECT_GE(sent, 5u) << "keeps trying";
    EXPECT_LE(sent, 40u) << "with backoff, not every second";
}

TEST(Driad, ReverseNamesHaveNoAmtLabel) {
    EXPECT_EQ(reverse_dns_name(*IpAddress::parse("198.51.100.12")), "12.100.51.198.in-addr.arpa");
    EXPECT_EQ(reverse_dns_name(*IpAddress::parse("2001:db8::1")),
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(Driad, RdataOfEveryRelayType) {
    const std::vector<uint8_t> v4 = {10, 0x01, 203, 0, 113, 15};
    auto r = parse_amtrelay_rdata(v4);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->precedence, 10);
    EXPECT_FALSE(r->discovery_optional);
    EXPECT_EQ(r->address, IpAddress::parse("203.0.113.15"));
    std::vector<uint8_t> v6 = {5, 0x82};
    const auto a6 = *IpAddress::parse("2001:db8::15");
    v6.insert(v6.end(), a6.canonical16().begin(), a6.canonical16().end());
    r = parse_amtrelay_rdata(v6);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->discovery_optional);
    EXPECT_EQ(r->address, a6);
    const std::vector<uint8_t> name = {1,   0x83, 5,   'r', 'e', 'l', 'a', 'y', 7,
                                       'e', 'x',  'a', 'm', 'p', 'l', 'e', 0};
    r = parse_amtrelay_rdata(name);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->name, "relay.example");
    EXPECT_EQ(r->type, 3);
    EXPECT_TRUE(parse_amtrelay_rdata(std::vector<uint8_t>{0, 0}).has_value()) << "type 0: no relay";
    EXPECT_FALSE(parse_amtrelay_rdata(std::vector<uint8_t>{0, 1, 1, 2, 3}).has_value())
        << "short IPv4";
    EXPECT_FALSE(parse_amtrelay_rdata(std::vector<uint8_t>{0, 3, 0xc0, 0x0c}).has_value())
        << "compressed names are not allowed";
    EXPECT_FALSE(parse_amtrelay_rdata(std::vector<uint8_t>{0, 9}).has_value()) << "undefined type";
}

TEST(Driad, AnswerRecordsSortedByPrecedence) {
    // A DNS response with one question and two AMTRELAY answers (names compressed to the question).
    std::vector<uint8_t> m = {0x12, 0x34, 0x81, 0x80, 0,   1,   0,   2,    0,    0,   0,
                              0,    2,    '1',  '2',  7,   'i', 'n', '-',  'a',  'd', 'd',
                              'r',  4,    'a',  'r',  'p', 'a', 0,   0x01, 0x04, 0,   1};
    for (auto [prec, last] : {std::pair{20, 2}, std::pair{10, 1}}) {
        const std::vector<uint8_t> rr = {0xc0,
                                         0x0c,
                                         0x01,
                                         0x04,
                                         0,
                                         1,
                                         0,
                                         0,
                                         0x0e,
                                         0x10,
                                         0,
                                         6,
                                         static_cast<uint8_t>(prec),
                                         0x01,
                                         192,
                                         0,
                                         2,
                                         static_cast<uint8_t>(last)};
        m.insert(m.end(), rr.begin(), rr.end());
    }
    const auto records = parse_amtrelay_answer(m);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].precedence, 10);
    EXPECT_EQ(records[0].address, IpAddress::parse("192.0.2.1"));
    EXPECT_EQ(records[1].address, IpAddress::parse("192.0.2.2"));
}
