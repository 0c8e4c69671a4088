// The relay protocol engine against checklist §2 (relay requirements), §3.2 (gateway quirks),
// §4 (IGMPv3/MLDv2 state), §6 (negative cases) and §8 (project decisions). Every test drives
// RelayEngine directly: bytes with their outer addresses and a synthetic clock go in; replies,
// forwarding-table edits and upstream events come out through a recording EngineSink, which also
// replays the edits into a model table so that the resulting forwarding can be asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/checksum.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/relay_engine.hpp"

namespace amt {
// gtest finds these by ADL; static so that no other test file's definitions can collide.
[[maybe_unused]] static void PrintTo(const IpAddress& a, std::ostream* os) {
    *os << a.to_string();
}
[[maybe_unused]] static void PrintTo(const UdpEndpoint& e, std::ostream* os) {
    *os << e.to_string();
}
[[maybe_unused]] static void PrintTo(const FlowKey& k, std::ostream* os) {
    *os << "(" << (k.any_source() ? std::string("*") : k.source.to_string()) << ","
        << k.group.to_string() << ")";
}
[[maybe_unused]] static void PrintTo(DropReason r, std::ostream* os) {
    *os << to_string(r);
}
}  // namespace amt

using namespace amt;

namespace {

using Bytes = std::vector<uint8_t>;
using std::chrono::milliseconds;
using std::chrono::seconds;

IpAddress ip(const char* text) {
    const std::optional<IpAddress> a = IpAddress::parse(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(IpAddress{});
}

UdpEndpoint ep(const char* text, uint16_t port) {
    return {ip(text), port};
}

IpAddress any_source(const IpAddress& group) {
    return group.is_v4() ? ip("0.0.0.0") : ip("::");
}

// Addresses used throughout (documentation prefixes; the anycast ones of RFC 7450 §7.1).
const UdpEndpoint relay4 = ep("192.0.2.1", amt_udp_port);
const UdpEndpoint relay6 = ep("2001:db8::1", amt_udp_port);
const UdpEndpoint anycast4 = ep("192.52.193.1", amt_udp_port);
const UdpEndpoint anycast6 = ep("2001:3::1", amt_udp_port);
const UdpEndpoint gw4 = ep("198.51.100.10", 40000);
const UdpEndpoint gw4b = ep("198.51.100.20", 40000);
const UdpEndpoint gw6 = ep("2001:db8:100::10", 40000);
const IpAddress asm4 = ip("239.1.1.1");
const IpAddress asm4b = ip("239.1.1.2");
const IpAddress asm4c = ip("239.1.1.3");
const IpAddress ssm4 = ip("232.1.1.1");
const IpAddress ssm4b = ip("232.1.1.2");
const IpAddress asm6 = ip("ff0e::1234");
const IpAddress ssm6 = ip("ff3e::8000:1");
const IpAddress s1 = ip("203.0.113.1");
const IpAddress s2 = ip("203.0.113.2");
const IpAddress s3 = ip("203.0.113.3");
const IpAddress s4 = ip("203.0.113.4");
const IpAddress s6a = ip("2001:db8:5::1");
const IpAddress s6b = ip("2001:db8:5::2");

struct Reply {
    UdpEndpoint from;
    UdpEndpoint to;
    Bytes payload;
};

// Records everything the engine emits, and replays the flow edits and upstream events into a
// model of the forwarding table and of the upstream joins, failing on any inconsistent edit
// (a flow created twice, a tunnel added to a missing flow, a leave without a join...).
class RecordingSink : public EngineSink {
  public:
    std::vector<Reply> replies;
    std::vector<FlowEdit> edits;
    std::vector<std::pair<FlowKey, bool>> upstream_events;
    std::map<FlowKey, std::set<UdpEndpoint>> table;
    std::set<FlowKey> joined;

    void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) override {
        replies.push_back({from, to, Bytes(payload.begin(), payload.end())});
    }

    void flow_edit(const FlowEdit& e) override {
        edits.push_back(e);
        const auto it = table.find(e.key);
        switch (e.op) {
            case FlowOp::create_flow:
                EXPECT_EQ(it, table.end()) << "flow created twice";
                table[e.key];
                break;
            case FlowOp::delete_flow:
                EXPECT_NE(it, table.end()) << "deleting a missing flow";
                table.erase(e.key);
                break;
            case FlowOp::add_tunnel:
                ASSERT_NE(it, table.end()) << "tunnel added to a missing flow";
                EXPECT_TRUE(it->second.insert(e.tunnel).second) << "tunnel added twice";
                break;
            case FlowOp::remove_tunnel:
                ASSERT_NE(it, table.end()) << "tunnel removed from a missing flow";
                EXPECT_EQ(it->second.erase(e.tunnel), 1u) << "removing a missing tunnel";
                break;
        }
    }

    void upstream_change(const FlowKey& key, bool join) override {
        upstream_events.emplace_back(key, join);
        if (join) {
            EXPECT_TRUE(joined.insert(key).second) << "joined twice";
        } else {
            EXPECT_EQ(joined.erase(key), 1u) << "left without a join";
        }
    }

    // The tunnels a packet from `source` to `group` reaches: (S,G) if present, else (*,G), as
    // the dataplane looks them up (checklist §2.10).
    std::set<UdpEndpoint> receivers(const IpAddress& source, const IpAddress& group) const {
        auto it = table.find({source, group});
        if (it == table.end()) it = table.find({any_source(group), group});
        return it == table.end() ? std::set<UdpEndpoint>{} : it->second;
    }

    size_t count_edits(FlowOp op) const {
        return static_cast<size_t>(
            std::count_if(edits.begin(), edits.end(), [&](const FlowEdit& e) { return e.op == op; }));
    }

    void clear_events() {
        replies.clear();
        edits.clear();
        upstream_events.clear();
    }
};

struct Credentials {
    ResponseMac mac{};
    uint32_t nonce = 0;
};

struct Rec {
    RecordType type;
    IpAddress group;
    std::vector<IpAddress> sources;
};

// A v3 (IGMP) or v2 (MLD) report datagram, as a gateway encapsulates it.
Bytes report(Family family, const std::vector<Rec>& records) {
    Bytes buf(1500);
    ReportBuilder b(buf, family);
    for (const Rec& r : records)
        EXPECT_TRUE(b.add_record(r.type, r.group, r.sources));
    buf.resize(b.finish());
    return buf;
}

Bytes report(const std::vector<Rec>& records) {
    return report(records.empty() ? Family::ipv4 : records.front().group.family(), records);
}

// IGMPv2 Report/Leave or MLDv1 Report/Done for `group`, from the unspecified inner source.
Bytes v1v2(ReportKind kind, const IpAddress& group) {
    Bytes buf(128);
    buf.resize(build_v1v2_message(buf, kind, group, any_source(group)));
    EXPECT_FALSE(buf.empty());
    return buf;
}

Bytes request_msg(uint32_t nonce, uint8_t flags = 0) {
    Bytes buf(request_size);
    EXPECT_EQ(build_request(buf, {.nonce = nonce, .flags = flags}), request_size);
    return buf;
}

Bytes discovery_msg(uint32_t nonce) {
    Bytes buf(discovery_size);
    EXPECT_EQ(build_discovery(buf, {.nonce = nonce}), discovery_size);
    return buf;
}

Bytes update_msg(const Credentials& c, const Bytes& inner) {
    Bytes buf(update_fixed_size + inner.size());
    EXPECT_EQ(build_membership_update(buf, c.mac, c.nonce, inner), buf.size());
    return buf;
}

// A Teardown carrying the old endpoint's fields; `mapped` writes the Gateway IP as
// ::ffff:a.b.c.d instead of the IPv4-compatible ::a.b.c.d the codec emits.
Bytes teardown_msg(const Credentials& c, const UdpEndpoint& old_gateway, bool mapped = false) {
    Bytes buf(teardown_size);
    EXPECT_EQ(build_teardown(buf, {.mac = c.mac, .nonce = c.nonce, .gateway = old_gateway}),
              teardown_size);
    if (mapped) buf[24] = buf[25] = 0xff;
    return buf;
}

class RelayEngineTest : public ::testing::Test {
  protected:
    RelayEngineTest() {
        config.relay_addresses = {relay4.ip, relay6.ip};
        config.secret_rotation = Seconds{7200};  // tests rotate explicitly unless they say so
    }

    // Built on first use, so that a test can change `config` first.
    RelayEngine& engine() {
        if (!engine_) engine_.emplace(config, secrets, sink);
        return *engine_;
    }

    void deliver(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) {
        engine().handle({from, to, payload}, now);
    }

    // Runs the engine's timers up to `t` in 100 ms steps, as the control thread does.
    void advance_to(Time t) {
        while (now < t) {
            now = std::min<Time>(now + milliseconds(100), t);
            engine().advance(now);
        }
    }
    void advance_by(Time d) { advance_to(now + d); }

    // Sends a Request and returns the MAC and nonce of the Query it got back (checklist §2.3).
    Credentials handshake(const UdpEndpoint& gw, const UdpEndpoint& to = relay4,
                          uint8_t flags = 0) {
        return handshake_with_nonce(gw, next_nonce_++, to, flags);
    }

    Credentials handshake_with_nonce(const UdpEndpoint& gw, uint32_t nonce,
                                     const UdpEndpoint& to = relay4, uint8_t flags = 0) {
        const size_t before = sink.replies.size();
        deliver(gw, to, request_msg(nonce, flags));
        EXPECT_EQ(sink.replies.size(), before + 1) << "no Query for the Request";
        if (sink.replies.size() != before + 1) return {};
        MembershipQuery q;
        EXPECT_EQ(parse_membership_query(sink.replies.back().payload, q), ParseError::ok);
        EXPECT_EQ(q.nonce, nonce);
        return {q.mac, q.nonce};
    }

    void send_update(const UdpEndpoint& gw, const Credentials& c, const Bytes& inner,
                     const UdpEndpoint& to = relay4) {
        deliver(gw, to, update_msg(c, inner));
    }

    // One gateway cycle: Request, Query, Update carrying `inner`. Returns the credentials used.
    Credentials cycle(const UdpEndpoint& gw, const Bytes& inner, const UdpEndpoint& to = relay4) {
        const Credentials c = handshake(gw, to);
        send_update(gw, c, inner, to);
        return c;
    }

    uint64_t dropped(DropReason r) {
        const auto i = static_cast<size_t>(r);
        return engine().counters().dropped[i].value() +
               engine().responder_counters().dropped[i].value();
    }

    uint64_t malformed(ParseError e) {
        const auto i = static_cast<size_t>(e);
        return engine().counters().malformed[i].value() +
               engine().responder_counters().malformed[i].value();
    }

    size_t endpoints() { return engine().memberships().endpoint_count(); }

    // The endpoint's membership in `group`, or nullopt (no endpoint or no membership).
    std::optional<GroupMembership> membership(const UdpEndpoint& gw, const IpAddress& group) {
        const MembershipDb& db = engine().memberships();
        const EndpointId id = db.find(gw);
        if (id == MembershipDb::no_endpoint) return std::nullopt;
        for (const GroupMembership& g : db.endpoint(id).groups) {
            if (g.group == group) return g;
        }
        return std::nullopt;
    }

    EngineConfig config;
    SecretStore secrets{Time{0}};
    RecordingSink sink;
    Time now = seconds(1);

  private:
    std::optional<RelayEngine> engine_;
    uint32_t next_nonce_ = 0x1000;
};

using RelayDispatch = RelayEngineTest;
using RelayDiscovery = RelayEngineTest;
using RelayRequest = RelayEngineTest;
using RelayMac = RelayEngineTest;
using RelayUpdate = RelayEngineTest;

}  // namespace

// ---------------------------------------------------------------------------------------------
// §2.1 Dispatch and silent drops

// Checklist §2.1, §6 item 3: Advertisement, Query and Data sent to the relay are never answered.
TEST_F(RelayDispatch, AdvertisementQueryAndDataAreNeverAnswered) {
    Bytes adv(advertisement_size_v4);
    build_advertisement(adv, {.nonce = 7, .relay = relay4.ip});
    Bytes query(128);
    query.resize(build_membership_query(query, {.nonce = 7}));
    Bytes data(64);
    const Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    data.resize(build_multicast_data(data, inner));
    for (const Bytes* msg : {&adv, &query, &data}) {
        deliver(gw4, relay4, *msg);
        deliver(gw4, anycast4, *msg);
    }
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_EQ(dropped(DropReason::unexpected_message_type), 6u);
}

// ---------------------------------------------------------------------------------------------
// §2.2 Discovery

// Checklist §2.2: a Discovery to the IPv4 anycast address is answered from that anycast
// address:port, to the Discovery's source, with its nonce and the IPv4 unicast relay address.
TEST_F(RelayDiscovery, AnycastV4AnsweredFromAnycastWithUnicastRelayAddress) {
    deliver(gw4, anycast4, discovery_msg(0xdeadbeef));
    ASSERT_EQ(sink.replies.size(), 1u);
    const Reply& r = sink.replies[0];
    EXPECT_EQ(r.from, anycast4);
    EXPECT_EQ(r.to, gw4);
    ASSERT_EQ(r.payload.size(), advertisement_size_v4);
    EXPECT_EQ(r.payload[1] | r.payload[2] | r.payload[3], 0) << "reserved bits (§2.1)";
    Advertisement adv;
    ASSERT_EQ(parse_advertisement(r.payload, adv), ParseError::ok);
    EXPECT_EQ(adv.nonce, 0xdeadbeefu);
    EXPECT_EQ(adv.relay, relay4.ip);
}

// ---------------------------------------------------------------------------------------------
// §2.3 Request handling

// Checklist §2.3: the Query goes from the Request's destination to its source, echoes the nonce,
// and for P=0 carries an IPv4 IGMPv3 general query in 48 octets with QQIC/QRV/MRC as configured.
TEST_F(RelayRequest, P0AnsweredWith48OctetIgmpQuery) {
    deliver(gw4, relay4, request_msg(0x01020304));
    ASSERT_EQ(sink.replies.size(), 1u);
    const Reply& r = sink.replies[0];
    EXPECT_EQ(r.from, relay4);
    EXPECT_EQ(r.to, gw4);
    ASSERT_EQ(r.payload.size(), 48u);
    EXPECT_EQ(r.payload[1], 0) << "no L, no G, reserved bits zero";
    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
    EXPECT_EQ(q.nonce, 0x01020304u);
    EXPECT_FALSE(q.l_flag);
    EXPECT_FALSE(q.gateway.has_value());
    GeneralQuery gq;
    ASSERT_EQ(parse_general_query(q.encapsulated, gq), ParseError::ok);
    EXPECT_EQ(gq.family, Family::ipv4);
    EXPECT_EQ(gq.qqic, 125);
    EXPECT_EQ(gq.robustness, 2);
    EXPECT_EQ(gq.max_resp_code, 1);
    EXPECT_EQ(endpoints(), 0u) << "Requests are stateless";
}

// ---------------------------------------------------------------------------------------------
// §2.6 Update processing

// Checklist §2.6, §2.7: a valid three-way handshake creates the endpoint; the (S,G) flow is
// created with the tunnel to the Update's source from the Update's destination, and joined.
TEST_F(RelayUpdate, HandshakeThenUpdateCreatesFlowAndJoin) {
    cycle(gw4, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), std::set<UdpEndpoint>{gw4});
    EXPECT_TRUE(sink.receivers(s2, ssm4).empty());
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{s1, ssm4}}));
    const auto add = std::find_if(sink.edits.begin(), sink.edits.end(),
                                  [](const FlowEdit& e) { return e.op == FlowOp::add_tunnel; });
    ASSERT_NE(add, sink.edits.end());
    EXPECT_EQ(add->tunnel, gw4);
    EXPECT_EQ(add->relay, relay4);
}

// Checklist §2.12, §6 item 9: an Update from another port than the Request's (NAT rebinding)
// fails the MAC and changes nothing.
TEST_F(RelayUpdate, NatRebindingBetweenRequestAndUpdateIsMacMismatch) {
    const Credentials c = handshake(gw4);
    send_update(ep("198.51.100.10", 40001), c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 1u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_TRUE(sink.upstream_events.empty());
}

// ---------------------------------------------------------------------------------------------
// §2.9 Teardown

using RelayTeardown = RelayEngineTest;

// Checklist §2.9, §6 item 20: an authentic Teardown (IPv4-compatible Gateway IP) sent from the
// gateway's new address stops forwarding to the old endpoint and leaves upstream.
TEST_F(RelayTeardown, AuthenticTeardownFromNewAddressRemovesOldEndpoint) {
    config.teardown = true;
    const Credentials c = cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    ASSERT_EQ(sink.receivers(s1, ssm4), std::set<UdpEndpoint>{gw4});
    sink.clear_events();
    deliver(ep("203.0.113.99", 50000), relay4, teardown_msg(c, gw4));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
    EXPECT_EQ(sink.count_edits(FlowOp::delete_flow), 1u);
}

// ---------------------------------------------------------------------------------------------
// §4.2 old versions

using RelayRecords = RelayEngineTest;

// Checklist §4.2: an IGMPv2 Report is IS_EX{} (an ASM join), its Leave TO_IN{} (immediate leave).
TEST_F(RelayRecords, Igmpv2ReportJoinsAndLeaveLeaves) {
    const Bytes join = v1v2(ReportKind::igmpv2_report, asm4);
    cycle(gw4, join);
    EXPECT_EQ(sink.receivers(s1, asm4), std::set<UdpEndpoint>{gw4});
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{any_source(asm4), asm4}}));
    cycle(gw4, v1v2(ReportKind::igmpv2_leave, asm4));
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
    EXPECT_EQ(endpoints(), 0u);
}
