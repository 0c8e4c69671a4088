// Per-tunnel accounting (issue 15): the SessionLedger driven by the real RelayEngine. Gateways
// do the handshake and send Updates and Teardowns; the engine's flow edits go to the ledger (as
// the control thread passes them on), the flows' counters are what the test says the dataplane
// forwarded, and the records that come out are checked: one per session, with its tunnel, flow,
// interval, the packets the flow carried meanwhile and why it ended.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/igmp_mld.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/relay_engine.hpp"
#include "controlplane/session_ledger.hpp"

using namespace amt;

namespace {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;
using std::chrono::seconds;

IpAddress ip(const char* text) {
    return IpAddress::parse(text).value();
}

const UdpEndpoint relay4{ip("192.0.2.1"), amt_udp_port};
const UdpEndpoint gw_a{ip("198.51.100.10"), 40000};
const UdpEndpoint gw_b{ip("198.51.100.20"), 40001};
const IpAddress s1 = ip("203.0.113.1");
const IpAddress s2 = ip("203.0.113.2");
const IpAddress ssm = ip("232.1.1.1");
const IpAddress asm_group = ip("239.1.1.1");
const FlowKey s1g{s1, ssm};
const FlowKey s2g{s2, ssm};
const FlowKey star_g{ip("0.0.0.0"), asm_group};
const Time wall = seconds(1'700'000'000);  // Unix time at the steady clock's zero

// The dataplane's per-flow counters, as the test sets them.
class TestCounts : public FlowCountSource {
  public:
    std::map<FlowKey, FlowCount> counts;
    FlowCount flow_count(const FlowKey& key) const override {
        const auto it = counts.find(key);
        return it == counts.end() ? FlowCount{} : it->second;
    }
    // `packets` more of 1000 octets each on `key`.
    void forward(const FlowKey& key, uint64_t packets) {
        counts[key].packets += packets;
        counts[key].octets += packets * 1000;
    }
};

// The control thread's wiring: engine edits go to the ledger first.
class LedgerSink : public EngineSink, public SessionSink {
  public:
    SessionLedger* ledger = nullptr;
    Time* now = nullptr;
    std::vector<Bytes> replies;
    std::vector<SessionRecord> records;

    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView payload) override {
        replies.emplace_back(payload.begin(), payload.end());
    }
    void flow_edit(const FlowEdit& e) override { ledger->flow_edit(e, *now); }
    void upstream_change(const FlowKey&, bool) override {}
    void session_record(const SessionRecord& r) override { records.push_back(r); }
};

class SessionLedgerTest : public ::testing::Test {
  protected:
    SessionLedgerTest() : secrets(Time{0}) {
        config.relay_addresses = {relay4.ip};
        config.secret_rotation = Seconds{7200};
        config.membership_timeout = Seconds{30};
        config.query_interval = Seconds{10};
        config.teardown = true;
        sink.ledger = &ledger;
        sink.now = &now;
    }

    RelayEngine& engine() {
        if (!engine_) engine_.emplace(config, secrets, sink);
        return *engine_;
    }

    // Request → Query; returns the nonce and MAC the Update must carry.
    std::pair<uint32_t, ResponseMac> handshake(const UdpEndpoint& gw) {
        Bytes req(request_size);
        build_request(req, {.nonce = ++nonce_});
        sink.replies.clear();
        engine().handle({gw, relay4, req}, now);
        MembershipQuery q;
        EXPECT_EQ(sink.replies.size(), 1u);
        EXPECT_EQ(parse_membership_query(sink.replies.back(), q), ParseError::ok);
        return {q.nonce, q.mac};
    }

    void update(const UdpEndpoint& gw, RecordType type, const IpAddress& group,
                std::vector<IpAddress> sources) {
        Bytes inner(1500);
        ReportBuilder b(inner, Family::ipv4, ip("0.0.0.0"));
        EXPECT_TRUE(b.add_record(type, group, sources));
        inner.resize(b.finish());
        const auto [nonce, mac] = handshake(gw);
        Bytes msg(update_fixed_size + inner.size());
        build_membership_update(msg, mac, nonce, inner);
        engine().handle({gw, relay4, msg}, now);
    }

    void teardown(const UdpEndpoint& gw, const UdpEndpoint& from) {
        const auto [nonce, mac] = handshake(gw);
        Bytes msg(teardown_size);
        build_teardown(msg, {.mac = mac, .nonce = nonce, .gateway = gw});
        engine().handle({from, relay4, msg}, now);
    }

    // The engine's and the ledger's timers in 100 ms steps, as the control thread runs them.
    void advance_by(Time d) {
        const Time until = now + d;
        while (now < until) {
            now += milliseconds(100);
            engine().advance(now);
            ledger.advance(now);
        }
    }

    int64_t ms(Time t) const { return unix_ms(t + wall); }

    EngineConfig config;
    SecretStore secrets;
    TestCounts counts;
    LedgerSink sink;
    Time now = seconds(100);
    SessionLedger ledger{counts, sink, seconds(60), wall};
    std::optional<RelayEngine> engine_;
    uint32_t nonce_ = 0;
};

TEST_F(SessionLedgerTest, JoinThenLeaveIsOneRecordWithTheTunnelFlowAndCounts) {
    counts.forward(s1g, 500);  // before the join: not this tunnel's
    const Time joined = now;
    update(gw_a, RecordType::allow_new_sources, ssm, {s1});
    EXPECT_EQ(ledger.sessions(), 1u);
    EXPECT_TRUE(sink.records.empty()) << "a join reports nothing yet";
    advance_by(seconds(5));
    counts.forward(s1g, 1234);
    const Time left = now;
    update(gw_a, RecordType::block_old_sources, ssm, {s1});
    ASSERT_EQ(sink.records.size(), 1u);
    const SessionRecord& r = sink.records[0];
    EXPECT_EQ(r.gateway, gw_a);
    EXPECT_EQ(r.relay, relay4);
    EXPECT_EQ(r.flow, s1g);
    EXPECT_EQ(r.start_ms, ms(joined));
    EXPECT_EQ(r.end_ms, ms(left));
    EXPECT_EQ(r.packets, 1234u);
    EXPECT_EQ(r.octets, 1'234'000u);
    EXPECT_EQ(r.reason, SessionEnd::leave);
    EXPECT_EQ(ledger.sessions(), 0u);
    counts.forward(s1g, 10);
    advance_by(seconds(120));
    EXPECT_EQ(sink.records.size(), 1u) << "nothing after the leave";
}

TEST_F(SessionLedgerTest, RefreshKeepsTheSessionOpen) {
    update(gw_a, RecordType::allow_new_sources, ssm, {s1});
    for (int i = 0; i < 4; ++i) {
        advance_by(seconds(10));
        counts.forward(s1g, 100);
        update(gw_a, RecordType::mode_is_include, ssm, {s1});  // the periodic refresh
    }
    EXPECT_TRUE(sink.records.empty());
    EXPECT_EQ(ledger.sessions(), 1u);
    update(gw_a, RecordType::block_old_sources, ssm, {s1});
    ASSERT_EQ(sink.records.size(), 1u);
    EXPECT_EQ(sink.records[0].packets, 400u);
}

TEST_F(SessionLedgerTest, ExpiryEndsEverySessionOfTheSilentGateway) {
    update(gw_a, RecordType::allow_new_sources, ssm, {s1, s2});
    update(gw_b, RecordType::allow_new_sources, ssm, {s1});
    counts.forward(s1g, 70);
    counts.forward(s2g, 30);
    advance_by(seconds(20));
    update(gw_b, RecordType::mode_is_include, ssm, {s1});  // b keeps refreshing, a does not
    advance_by(seconds(11));
    ASSERT_EQ(sink.records.size(), 2u);
    for (const SessionRecord& r : sink.records) {
        EXPECT_EQ(r.gateway, gw_a);
        EXPECT_EQ(r.reason, SessionEnd::expiry);
        EXPECT_EQ(r.packets, r.flow == s1g ? 70u : 30u);
    }
    EXPECT_EQ(ledger.sessions(), 1u) << "b's session runs on";
}

TEST_F(SessionLedgerTest, TeardownEndsTheOldEndpointsSessions) {
    update(gw_a, RecordType::allow_new_sources, ssm, {s1});
    counts.forward(s1g, 9);
    teardown(gw_a, UdpEndpoint{ip("198.51.100.99"), 50000});
    ASSERT_EQ(sink.records.size(), 1u);
    EXPECT_EQ(sink.records[0].gateway, gw_a);
    EXPECT_EQ(sink.records[0].reason, SessionEnd::teardown);
    EXPECT_EQ(sink.records[0].packets, 9u);
}

TEST_F(SessionLedgerTest, LongSessionsAreReportedEveryActiveTimeout) {
    update(gw_a, RecordType::allow_new_sources, ssm, {s1});
    const Time joined = now;
    for (int i = 0; i < 15; ++i) {  // 150 s of traffic, 10 packets a second
        advance_by(seconds(10));
        counts.forward(s1g, 100);
        update(gw_a, RecordType::mode_is_include, ssm, {s1});
    }
    // Reports at 60 s and 120 s (each at most a sweep period, 6 s, late), nothing ends.
    ASSERT_EQ(sink.records.size(), 2u);
    uint64_t reported = 0;
    int64_t previous_end = ms(joined);
    for (const SessionRecord& r : sink.records) {
        EXPECT_EQ(r.reason, SessionEnd::active);
        EXPECT_EQ(r.start_ms, previous_end) << "intervals follow each other";
        EXPECT_GE(r.end_ms - r.start_ms, 60'000);
        EXPECT_LE(r.end_ms - r.start_ms, 66'000);
        previous_end = r.end_ms;
        reported += r.packets;
    }
    update(gw_a, RecordType::block_old_sources, ssm, {s1});
    ASSERT_EQ(sink.records.size(), 3u);
    EXPECT_EQ(sink.records[2].reason, SessionEnd::leave);
    EXPECT_EQ(sink.records[2].start_ms, previous_end);
    EXPECT_EQ(reported + sink.records[2].packets, 1500u) << "every packet in exactly one record";
}

TEST_F(SessionLedgerTest, RelayStopEndsEverySession) {
    update(gw_a, RecordType::allow_new_sources, ssm, {s1});
    update(gw_b, RecordType::change_to_exclude, asm_group, {});
    counts.forward(s1g, 5);
    counts.forward(star_g, 6);
    ledger.stop(now);
    ASSERT_EQ(sink.records.size(), 2u);
    for (const SessionRecord& r : sink.records) {
        EXPECT_EQ(r.reason, SessionEnd::relay_stop);
        EXPECT_EQ(r.packets, r.gateway == gw_a ? 5u : 6u);
        EXPECT_EQ(r.flow, r.gateway == gw_a ? s1g : star_g);
    }
    EXPECT_EQ(ledger.sessions(), 0u);
}

// An ASM member of (*,G) is also a member of every (S,G) entry another gateway's INCLUDE made:
// S's packets are forwarded (and counted) there. When that entry goes, so does the session on it.
TEST_F(SessionLedgerTest, StarGMemberAccountsSourcesThatHaveTheirOwnEntry) {
    update(gw_b, RecordType::change_to_exclude, asm_group, {});
    const FlowKey s1_asm{s1, asm_group};
    update(gw_a, RecordType::allow_new_sources, asm_group, {s1});
    EXPECT_EQ(ledger.sessions(), 3u) << "b on (*,G) and (S1,G), a on (S1,G)";
    counts.forward(s1_asm, 40);
    counts.forward(star_g, 2);
    update(gw_a, RecordType::block_old_sources, asm_group, {s1});  // (S1,G) goes
    ASSERT_EQ(sink.records.size(), 2u);
    for (const SessionRecord& r : sink.records) {
        EXPECT_EQ(r.flow, s1_asm);
        EXPECT_EQ(r.packets, 40u);
        EXPECT_EQ(r.reason, SessionEnd::leave);
    }
    EXPECT_EQ(ledger.sessions(), 1u) << "b's (*,G) session runs on";
}

}  // namespace
