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
[[maybe_unused]] static void PrintTo(ParseError e, std::ostream* os) {
    *os << to_string(e);
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
        return static_cast<size_t>(std::count_if(edits.begin(), edits.end(),
                                                 [&](const FlowEdit& e) { return e.op == op; }));
    }

    // The first recorded edit of kind `op`, or nullptr.
    const FlowEdit* first_edit(FlowOp op) const {
        const auto it =
            std::find_if(edits.begin(), edits.end(), [&](const FlowEdit& e) { return e.op == op; });
        return it == edits.end() ? nullptr : &*it;
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

// A v3 (IGMP) or v2 (MLD) report datagram, as a gateway encapsulates it, from `inner_src`.
Bytes report_from(const IpAddress& inner_src, const std::vector<Rec>& records) {
    Bytes buf(1500);
    ReportBuilder b(buf, inner_src.family(), inner_src);
    for (const Rec& r : records)
        EXPECT_TRUE(b.add_record(r.type, r.group, r.sources));
    buf.resize(b.finish());
    return buf;
}

// The same from the unspecified inner source, as most gateways send it.
Bytes report(Family family, const std::vector<Rec>& records) {
    return report_from(family == Family::ipv4 ? ip("0.0.0.0") : ip("::"), records);
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

// Recomputes the IPv4 header checksum of an encapsulated datagram a test has edited.
void fix_ipv4_header_checksum(Bytes& d) {
    const size_t ihl = size_t{d[0] & 0x0fu} * 4;
    store_be16(&d[10], 0);
    store_be16(&d[10], checksum_finish(checksum_add(ByteView(d).first(ihl))));
}

// Recomputes the IGMP checksum (over everything after the IPv4 header).
void fix_igmp_checksum(Bytes& d) {
    const size_t ihl = size_t{d[0] & 0x0fu} * 4;
    store_be16(&d[ihl + 2], 0);
    store_be16(&d[ihl + 2], checksum_finish(checksum_add(ByteView(d).subspan(ihl))));
}

// VLC's IGMPv3 report (checklist §3.2): IHL=6 with an all-zero option word instead of Router
// Alert, and with `pad` 4 trailing zero octets in the IGMP payload (sent when it has no sources).
Bytes vlc_report(const std::vector<Rec>& records, bool pad) {
    Bytes d = report(Family::ipv4, records);
    std::fill(d.begin() + 20, d.begin() + 24, uint8_t{0});
    if (pad) {
        d.insert(d.end(), 4, uint8_t{0});
        store_be16(&d[2], static_cast<uint16_t>(d.size()));
        fix_igmp_checksum(d);
    }
    fix_ipv4_header_checksum(d);
    return d;
}

// The same IPv4 report with a plain 20-octet header: no Router Alert.
Bytes without_router_alert(Bytes d) {
    d.erase(d.begin() + 20, d.begin() + 24);
    d[0] = 0x45;
    store_be16(&d[2], static_cast<uint16_t>(d.size()));
    fix_ipv4_header_checksum(d);
    return d;
}

MacSecret test_secret(uint8_t seed) {
    MacSecret s;
    for (size_t i = 0; i < s.size(); ++i)
        s[i] = static_cast<uint8_t>(seed * 31 + i);
    return s;
}

using Tunnels = std::set<UdpEndpoint>;

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
        MembershipQuery q;
        const Reply r = exchange(gw, to, request_msg(nonce, flags));
        EXPECT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
        EXPECT_EQ(q.nonce, nonce);
        return {q.mac, q.nonce};
    }

    // Delivers one message and returns the one reply it must get.
    Reply exchange(const UdpEndpoint& from, const UdpEndpoint& to, const Bytes& msg) {
        const size_t before = sink.replies.size();
        deliver(from, to, msg);
        EXPECT_EQ(sink.replies.size(), before + 1) << "expected exactly one reply";
        return sink.replies.size() == before + 1 ? sink.replies.back() : Reply{};
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

    // Sends one Request and returns the one reply it got (checklist §2.3).
    Reply request_reply(const UdpEndpoint& gw, uint8_t flags, const UdpEndpoint& to = relay4) {
        return exchange(gw, to, request_msg(next_nonce_++, flags));
    }

    // A rotation to a known secret, the previous one honoured for 2×QI (checklist §2.4).
    void rotate_secret() {
        secrets.rotate_to(test_secret(++secret_seed_), now, config.previous_secret_window());
    }

    // The forwarding-table entries of one group.
    std::map<FlowKey, Tunnels> flows_of(const IpAddress& group) const {
        std::map<FlowKey, Tunnels> out;
        for (const auto& [key, tunnels] : sink.table) {
            if (key.group == group) out.emplace(key, tunnels);
        }
        return out;
    }

    std::set<FlowKey> joins_of(const IpAddress& group) const {
        std::set<FlowKey> out;
        for (const FlowKey& k : sink.joined) {
            if (k.group == group) out.insert(k);
        }
        return out;
    }

    EngineConfig config;
    SecretStore secrets{Time{0}};
    RecordingSink sink;
    Time now = seconds(1);

  private:
    std::optional<RelayEngine> engine_;
    uint32_t next_nonce_ = 0x1000;
    uint8_t secret_seed_ = 0;
};

using RelayDispatch = RelayEngineTest;
using RelayDiscovery = RelayEngineTest;
using RelayRequest = RelayEngineTest;
using RelayMac = RelayEngineTest;
using RelayUpdate = RelayEngineTest;
using RelayIdentity = RelayEngineTest;
using RelayExpiry = RelayEngineTest;
using RelayTeardown = RelayEngineTest;
using RelayLoad = RelayEngineTest;
using RelayFamilies = RelayEngineTest;
using RelayRecords = RelayEngineTest;
using RelaySsm = RelayEngineTest;

}  // namespace

// =============================================================================================
// §2.1 Dispatch and silent drops

// Checklist §2.1, §6 item 3: Advertisement, Query and Data sent to the relay are never answered.
TEST_F(RelayDispatch, AdvertisementQueryAndDataAreNeverAnswered) {
    Bytes adv(advertisement_size_v4);
    build_advertisement(adv, {.nonce = 7, .relay = relay4.ip});
    Bytes query(128);
    query.resize(build_membership_query(query, {.nonce = 7}));
    Bytes data(64);
    data.resize(build_multicast_data(data, report({{RecordType::allow_new_sources, ssm4, {s1}}})));
    for (const Bytes* msg : {&adv, &query, &data}) {
        deliver(gw4, relay4, *msg);
        deliver(gw4, anycast4, *msg);
    }
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_EQ(dropped(DropReason::unexpected_message_type), 6u);
}

// Checklist §2.1, §6 items 1 and 3: version ≠ 0, types 0 and 8-15, empty and truncated messages
// are ignored without a reply.
TEST_F(RelayDispatch, BadVersionUnknownTypeEmptyAndTruncatedAreIgnored) {
    Bytes v1_request = request_msg(1);
    v1_request[0] = 0x13;  // V=1, type 3
    const std::vector<Bytes> inputs = {{},
                                       v1_request,
                                       {0x00, 0, 0, 0, 0, 0, 0, 1},
                                       {0x08, 0, 0, 0, 0, 0, 0, 1},
                                       {0x0f, 0, 0, 0, 0, 0, 0, 1},
                                       {0x03, 0, 0, 0, 0, 0, 1},
                                       {0x01, 0, 0, 0, 0, 1}};
    for (const Bytes& in : inputs) {
        deliver(gw4, relay4, in);
        deliver(gw4, anycast4, in);
    }
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_EQ(malformed(ParseError::empty_message), 2u);
    EXPECT_EQ(malformed(ParseError::bad_version), 2u);
    EXPECT_EQ(malformed(ParseError::unknown_type), 6u);
    EXPECT_GE(malformed(ParseError::truncated_message), 3u);
}

// Checklist §2.1, §6 item 4: reserved bits of a Request are ignored (octet 1 without a P bit and
// octets 2-3), and the Query sends its own reserved bits as zero.
TEST_F(RelayDispatch, ReservedBitsOfRequestIgnored) {
    Bytes req = request_msg(42, 0x7e);
    req[2] = req[3] = 0xff;
    const Reply r = exchange(gw4, relay4, req);
    ASSERT_EQ(r.payload.size(), 48u) << "no P bit: IGMP";
    EXPECT_EQ(r.payload[1], 0);
}

// Checklist §1.0 table, §2.6: Update and Request must reach a relay unicast address on port 2268;
// the anycast address, another address or another port is ignored.
TEST_F(RelayDispatch, RequestAndUpdateToNonRelayAddressDropped) {
    const Credentials c = handshake(gw4);
    const Bytes upd = update_msg(c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    const UdpEndpoint elsewhere[] = {
        anycast4, ep("192.0.2.99", amt_udp_port), {relay4.ip, amt_udp_port + 1}};
    for (const UdpEndpoint& to : elsewhere) {
        deliver(gw4, to, upd);
        deliver(gw4, to, request_msg(77));
    }
    EXPECT_EQ(sink.replies.size(), 1u) << "only the handshake's Query";
    EXPECT_EQ(dropped(DropReason::not_for_relay_address), 6u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §6 item 6: never reply to a multicast, broadcast, unspecified or loopback source, nor
// to source port 0 (Discovery and Request alike).
TEST_F(RelayDispatch, NoReplyToMartianSources) {
    const std::pair<UdpEndpoint, ParseError> sources[] = {
        {ep("224.1.1.1", 5000), ParseError::source_multicast},
        {ep("ff02::1", 5000), ParseError::source_multicast},
        {ep("255.255.255.255", 5000), ParseError::source_broadcast},
        {ep("0.0.0.0", 5000), ParseError::source_unspecified},
        {ep("::", 5000), ParseError::source_unspecified},
        {ep("127.0.0.1", 5000), ParseError::source_loopback},
        {ep("::1", 5000), ParseError::source_loopback},
        {ep("198.51.100.10", 0), ParseError::source_port_zero},
    };
    for (const auto& [src, reason] : sources) {
        SCOPED_TRACE(src.to_string());
        const UdpEndpoint& relay = src.ip.is_v4() ? relay4 : relay6;
        const UdpEndpoint& anycast = src.ip.is_v4() ? anycast4 : anycast6;
        const uint64_t before = malformed(reason);
        deliver(src, relay, request_msg(1));
        deliver(src, anycast, discovery_msg(1));
        deliver(src, relay, discovery_msg(1));
        EXPECT_EQ(malformed(reason), before + 3);
    }
    EXPECT_TRUE(sink.replies.empty());
}

// Checklist §6 item 6: never reply to the relay's own unicast or anycast addresses.
TEST_F(RelayDispatch, NoReplyToRelayOwnAddresses) {
    for (const IpAddress& own : {relay4.ip, relay6.ip, anycast4.ip, anycast6.ip}) {
        const UdpEndpoint src{own, 5000};
        deliver(src, own.is_v4() ? relay4 : relay6, request_msg(1));
        deliver(src, own.is_v4() ? anycast4 : anycast6, discovery_msg(1));
    }
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_EQ(dropped(DropReason::source_is_relay_address), 8u);
}

// Checklist §6 item 6, §2.10: an Update from a source Data could never be sent to changes nothing
// (checked before the MAC).
TEST_F(RelayDispatch, UpdateFromMartianSourceChangesNothing) {
    const Bytes upd = update_msg({}, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    deliver(ep("198.51.100.10", 0), relay4, upd);
    deliver(ep("224.1.1.1", 5000), relay4, upd);
    deliver(ep("255.255.255.255", 5000), relay4, upd);
    EXPECT_EQ(malformed(ParseError::source_port_zero), 1u);
    EXPECT_EQ(malformed(ParseError::source_multicast), 1u);
    EXPECT_EQ(malformed(ParseError::source_broadcast), 1u);
    EXPECT_EQ(engine().counters().mac_failures.value(), 0u);
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §2.1, §2.11: a batch of more Requests than one MAC batch holds is answered entirely,
// each Query to its own gateway with a MAC that its Update then proves.
TEST_F(RelayDispatch, LargeBatchOfRequestsAllAnswered) {
    constexpr size_t n = 150;
    std::vector<Bytes> requests;
    std::vector<Datagram> batch;
    for (size_t i = 0; i < n; ++i)
        requests.push_back(request_msg(static_cast<uint32_t>(1000 + i)));
    for (size_t i = 0; i < n; ++i) {
        const UdpEndpoint gw{IpAddress::v4(0xc6336400u + static_cast<uint32_t>(i)), 40000};
        batch.push_back({gw, relay4, requests[i]});
    }
    engine().handle_batch(batch, now);
    ASSERT_EQ(sink.replies.size(), n);
    EXPECT_EQ(engine().responder_counters().sent[4].value(), n);
    for (size_t i = 0; i < n; ++i) {
        SCOPED_TRACE(i);
        const Reply r = sink.replies[i];
        EXPECT_EQ(r.to, batch[i].src);
        EXPECT_EQ(r.from, relay4);
        MembershipQuery q;
        ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
        EXPECT_EQ(q.nonce, 1000 + i);
        send_update(r.to, {q.mac, q.nonce}, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    }
    EXPECT_EQ(endpoints(), n);
    EXPECT_EQ(sink.receivers(s1, ssm4).size(), n);
    EXPECT_EQ(sink.upstream_events.size(), 1u);
}

// =============================================================================================
// §2.2 Discovery

// Checklist §2.2: a Discovery to the IPv4 anycast address is answered from that anycast
// address:port, to the Discovery's source, with its nonce and the IPv4 unicast relay address.
TEST_F(RelayDiscovery, AnycastV4AnsweredFromAnycastWithUnicastRelayAddress) {
    const Reply r = exchange(gw4, anycast4, discovery_msg(0xdeadbeef));
    EXPECT_EQ(r.from, anycast4);
    EXPECT_EQ(r.to, gw4);
    ASSERT_EQ(r.payload.size(), advertisement_size_v4);
    EXPECT_EQ(r.payload[1] | r.payload[2] | r.payload[3], 0) << "reserved bits (§2.1)";
    Advertisement adv;
    ASSERT_EQ(parse_advertisement(r.payload, adv), ParseError::ok);
    EXPECT_EQ(adv.nonce, 0xdeadbeefu);
    EXPECT_EQ(adv.relay, relay4.ip);
}

// Checklist §2.2: the same over IPv6: from 2001:3::1, 24 octets, the IPv6 relay address.
TEST_F(RelayDiscovery, AnycastV6AnsweredFromAnycastWithUnicastRelayAddress) {
    const Reply r = exchange(gw6, anycast6, discovery_msg(0x01020304));
    EXPECT_EQ(r.from, anycast6);
    EXPECT_EQ(r.to, gw6);
    ASSERT_EQ(r.payload.size(), advertisement_size_v6);
    Advertisement adv;
    ASSERT_EQ(parse_advertisement(r.payload, adv), ParseError::ok);
    EXPECT_EQ(adv.nonce, 0x01020304u);
    EXPECT_EQ(adv.relay, relay6.ip);
}

// Checklist §2.2, §3.1 (DRIAD gateways discover at the unicast address): a Discovery to the
// unicast relay address is answered exactly as one to anycast, from that unicast address:port.
// A Discovery with trailing octets is accepted (§6 item 2).
TEST_F(RelayDiscovery, UnicastAnsweredLikeAnycastFromExactAddress) {
    const UdpEndpoint gw4_other_port = ep("198.51.100.10", 2268);
    for (const auto& [gw, unicast, anycast] :
         {std::tuple{gw4, relay4, anycast4}, std::tuple{gw6, relay6, anycast6},
          std::tuple{gw4_other_port, relay4, anycast4}}) {
        sink.clear_events();
        Bytes disc = discovery_msg(99);
        deliver(gw, anycast, disc);
        disc.push_back(0);
        deliver(gw, unicast, disc);
        ASSERT_EQ(sink.replies.size(), 2u);
        EXPECT_EQ(sink.replies[0].from, anycast);
        EXPECT_EQ(sink.replies[1].from, unicast);
        EXPECT_EQ(sink.replies[0].to, gw);
        EXPECT_EQ(sink.replies[1].to, gw);
        EXPECT_EQ(sink.replies[0].payload, sink.replies[1].payload);
    }
}

// Checklist §1.2, §2.2: the advertised address has the family of the Discovery; with no relay
// address of that family the Discovery is dropped (no_relay_address_for_family).
TEST_F(RelayDiscovery, NoRelayAddressOfTheFamilyDropped) {
    config.relay_addresses = {relay4.ip};
    deliver(gw6, anycast6, discovery_msg(5));
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_EQ(dropped(DropReason::no_relay_address_for_family), 1u);
    deliver(gw4, anycast4, discovery_msg(5));
    ASSERT_EQ(sink.replies.size(), 1u);
    Advertisement adv;
    ASSERT_EQ(parse_advertisement(sink.replies[0].payload, adv), ParseError::ok);
    EXPECT_EQ(adv.relay, relay4.ip);
}

// The same for an IPv6-only relay asked over IPv4.
TEST_F(RelayDiscovery, NoIpv4RelayAddressDropsIpv4Discovery) {
    config.relay_addresses = {relay6.ip};
    deliver(gw4, anycast4, discovery_msg(5));
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_EQ(dropped(DropReason::no_relay_address_for_family), 1u);
}

// Checklist §2.1: a Discovery to an address that is neither a discovery nor a relay address, or
// to another port, is ignored.
TEST_F(RelayDiscovery, DiscoveryToForeignAddressIgnored) {
    deliver(gw4, ep("192.52.193.2", amt_udp_port), discovery_msg(5));
    deliver(gw4, {anycast4.ip, 2269}, discovery_msg(5));
    EXPECT_TRUE(sink.replies.empty());
    EXPECT_EQ(dropped(DropReason::not_for_relay_address), 2u);
}

// =============================================================================================
// §2.3 Request handling, §2.5 Query construction

// Checklist §2.3, §2.5, §1.8: the Query goes from the Request's destination to its source, echoes
// the nonce, and for P=0 carries an IPv4 IGMPv3 general query in exactly 48 octets (24-octet IPv4
// header with Router Alert, TOS 0xC0, TTL 1, to 224.0.0.1), QQIC 125, QRV 2, MRC 1; no state.
TEST_F(RelayRequest, P0AnsweredWith48OctetIgmpQuery) {
    const Reply r = exchange(gw4, relay4, request_msg(0x01020304));
    EXPECT_EQ(r.from, relay4);
    EXPECT_EQ(r.to, gw4);
    ASSERT_EQ(r.payload.size(), 48u);
    EXPECT_EQ(r.payload[1], 0) << "no L, no G, reserved bits zero";
    EXPECT_EQ(r.payload[12], 0x46) << "IPv4, IHL 6";
    EXPECT_EQ(r.payload[13], 0xc0) << "TOS";
    EXPECT_EQ(r.payload[20], 1) << "TTL";
    EXPECT_EQ(r.payload[21], ip_proto_igmp);
    EXPECT_EQ(IpAddress::v4_from_bytes(&r.payload[28]), ip("224.0.0.1"));
    EXPECT_EQ(Bytes(r.payload.begin() + 32, r.payload.begin() + 36), (Bytes{0x94, 4, 0, 0}));
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
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §2.3, §1.8: P=0x01 gets an IPv6 MLDv2 general query in exactly 88 octets (one 8-octet
// Hop-by-Hop header, hop limit 1, to ff02::1), MRC 1 ms.
TEST_F(RelayRequest, P1AnsweredWith88OctetMldQuery) {
    const Reply r = request_reply(gw4, request_p_flag);
    ASSERT_EQ(r.payload.size(), 88u);
    EXPECT_EQ(r.payload[1], 0);
    EXPECT_EQ(r.payload[12] >> 4, 6);
    EXPECT_EQ(r.payload[12 + 6], ip_proto_hop_by_hop);
    EXPECT_EQ(r.payload[12 + 7], 1) << "hop limit";
    EXPECT_EQ(r.payload[12 + 40], ip_proto_icmpv6) << "exactly one Hop-by-Hop header";
    EXPECT_EQ(r.payload[12 + 41], 0) << "8 octets long";
    EXPECT_EQ(IpAddress::v6_from_bytes(&r.payload[12 + 24]), ip("ff02::1"));
    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
    GeneralQuery gq;
    ASSERT_EQ(parse_general_query(q.encapsulated, gq), ParseError::ok);
    EXPECT_EQ(gq.family, Family::ipv6);
    EXPECT_EQ(gq.qqic, 125);
    EXPECT_EQ(gq.robustness, 2);
    EXPECT_EQ(gq.max_resp_code, 1);
}

// Checklist §1.9, §8.3: the Linux kernel's P bit 0x80 means MLD while accept_linux_p_flag is on.
TEST_F(RelayRequest, LinuxP80MeansMldWhenAccepted) {
    EXPECT_EQ(request_reply(gw4, request_p_flag_linux).payload.size(), 88u);
    EXPECT_EQ(request_reply(gw4, 0).payload.size(), 48u);
}

// Checklist §1.9, §8.3: with accept_linux_p_flag off 0x80 is a reserved bit: IGMP; 0x01 is MLD.
TEST_F(RelayRequest, LinuxP80IsReservedWhenNotAccepted) {
    config.accept_linux_p_flag = false;
    EXPECT_EQ(request_reply(gw4, request_p_flag_linux).payload.size(), 48u);
    EXPECT_EQ(request_reply(gw4, request_p_flag).payload.size(), 88u);
}

// Checklist §3.2 (VLC), §6 item 2: a 9-octet Request (trailing zero) is answered, and the
// handshake completes with its nonce.
TEST_F(RelayRequest, Vlc9OctetRequestAnsweredAndUsable) {
    Bytes req = request_msg(0xabcdef01);
    req.push_back(0);
    const Reply r = exchange(gw4, relay4, req);
    ASSERT_EQ(r.payload.size(), 48u);
    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
    EXPECT_EQ(q.nonce, 0xabcdef01u);
    send_update(gw4, {q.mac, q.nonce},
                vlc_report({{RecordType::mode_is_include, ssm4, {s1}}}, false));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
}

// Checklist §2.3, §6 item 5: a zero Request nonce is answered and the handshake completes.
TEST_F(RelayRequest, ZeroNonceAnsweredAndUsable) {
    const Credentials c = handshake_with_nonce(gw4, 0);
    EXPECT_EQ(c.nonce, 0u);
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 1u);
}

// Checklist §2.5: QQIC = query_interval, QRV = robustness, MRC = max_response_code, in both the
// IGMP and the MLD query.
TEST_F(RelayRequest, QueryParametersFollowConfig) {
    config.query_interval = Seconds{60};
    config.membership_timeout = Seconds{150};
    config.robustness = 3;
    config.max_response_code = 7;
    for (uint8_t flags : {uint8_t{0}, request_p_flag}) {
        SCOPED_TRACE(int{flags});
        MembershipQuery q;
        const Reply r = request_reply(gw4, flags);
        ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
        GeneralQuery gq;
        ASSERT_EQ(parse_general_query(q.encapsulated, gq), ParseError::ok);
        EXPECT_EQ(gq.qqic, 60);
        EXPECT_EQ(gq.robustness, 3);
        EXPECT_EQ(gq.max_resp_code, 7);
    }
}

// Checklist §2.5, §7: whatever max_response_code the configuration accepts, the relay never sends
// a Query that is not a well-formed Membership Query (IGMP's Max Resp Code is one octet).
TEST_F(RelayRequest, UnencodableMaxResponseCodeIsRejectedAndNeverSent) {
    config.max_response_code = 1000;  // a plausible MLD value in ms, but IGMP's field is 8 bits
    EXPECT_NE(validate(config).find("max_response_code"), std::string::npos) << validate(config);
    // Even if a caller skipped validate(), no malformed Query leaves the relay.
    engine().reconfigure(config);
    for (uint8_t flags : {uint8_t{0}, request_p_flag}) {
        SCOPED_TRACE(int{flags});
        const size_t before = sink.replies.size();
        deliver(gw4, relay4, request_msg(5, flags));
        if (sink.replies.size() == before) continue;  // not answering at all is acceptable
        MembershipQuery q;
        EXPECT_EQ(parse_membership_query(sink.replies.back().payload, q), ParseError::ok)
            << "a " << sink.replies.back().payload.size() << "-octet reply";
    }
}

// Checklist §2.5, §8.1: G and the gateway fields only with teardown = true; then the Query is
// 66 (IGMP) or 106 (MLD) octets ending with the Request's source port and IP, IPv4 in the
// IPv4-compatible form ::a.b.c.d.
TEST_F(RelayRequest, GatewayFieldsOnlyWithTeardown) {
    EXPECT_EQ(request_reply(gw4, 0).payload.size(), 48u);
    EXPECT_EQ(request_reply(gw6, request_p_flag, relay6).payload.size(), 88u);

    config.teardown = true;
    engine().reconfigure(config);
    const Reply r4 = request_reply(gw4, 0);
    ASSERT_EQ(r4.payload.size(), 66u);
    EXPECT_EQ(r4.payload[1], query_g_flag);
    Bytes expected_fields = {0x9c, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 10};
    EXPECT_EQ(Bytes(r4.payload.end() - 18, r4.payload.end()), expected_fields);
    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(r4.payload, q), ParseError::ok);
    ASSERT_TRUE(q.gateway.has_value());
    EXPECT_EQ(*q.gateway, gw4);

    const Reply r6 = request_reply(gw6, request_p_flag, relay6);
    ASSERT_EQ(r6.payload.size(), 106u);
    ASSERT_EQ(parse_membership_query(r6.payload, q), ParseError::ok);
    ASSERT_TRUE(q.gateway.has_value());
    EXPECT_EQ(*q.gateway, gw6);
    GeneralQuery gq;
    EXPECT_EQ(parse_general_query(q.encapsulated, gq), ParseError::ok);
}

// Checklist §2.5, §2.11: L is set in every Query while draining, cleared after; while draining a
// new endpoint is refused and an existing one keeps its stream and its refreshes.
TEST_F(RelayRequest, LSetWhileDraining) {
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    engine().set_draining(true);
    const Reply r = request_reply(gw4b, 0);
    EXPECT_EQ(r.payload[1], query_l_flag);
    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
    EXPECT_TRUE(q.l_flag);
    send_update(gw4b, {q.mac, q.nonce}, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(dropped(DropReason::not_accepting_new_endpoints), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s2}}}));
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4}) << "existing endpoint still served";

    engine().set_draining(false);
    EXPECT_EQ(request_reply(gw4b, 0).payload[1], 0);
    cycle(gw4b, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4), (Tunnels{gw4, gw4b}));
}

// Checklist §2.5, §8.1: draining with teardown on sets both L and G.
TEST_F(RelayRequest, LAndGTogether) {
    config.teardown = true;
    engine().set_draining(true);
    const Reply r = request_reply(gw4, 0);
    EXPECT_EQ(r.payload[1], query_l_flag | query_g_flag);
    EXPECT_EQ(r.payload.size(), 66u);
}

// Checklist §2.3 (stateless, nonces not remembered), §3.2 (Linux): repeated Requests with one
// nonce get the same MAC; nothing is allocated.
TEST_F(RelayRequest, RepeatedRequestSameNonceSameMacNoState) {
    const Credentials a = handshake_with_nonce(gw4, 5);
    const Credentials b = handshake_with_nonce(gw4, 5);
    EXPECT_EQ(a.mac, b.mac);
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §2.1 ("keep counters"): Requests received and Queries sent are counted.
TEST_F(RelayRequest, QueriesAreCounted) {
    handshake(gw4);
    handshake(gw6, relay6, request_p_flag);
    EXPECT_EQ(engine().responder_counters().received[3].value(), 2u);
    EXPECT_EQ(engine().responder_counters().sent[4].value(), 2u);
}

// =============================================================================================
// §2.4 MAC computation and secret rotation

// Checklist §2.4: the MAC does not depend on P or the inner family (Linux keeps one MAC for both):
// the IGMP and MLD Queries for one nonce carry the same MAC, and an MLD Update may use it.
TEST_F(RelayMac, MacIndependentOfPFlag) {
    const Credentials igmp = handshake_with_nonce(gw4, 77, relay4, 0);
    const Credentials mld = handshake_with_nonce(gw4, 77, relay4, request_p_flag);
    EXPECT_EQ(igmp.mac, mld.mac);
    send_update(gw4, igmp, report({{RecordType::allow_new_sources, ssm6, {s6a}}}));
    EXPECT_EQ(sink.receivers(s6a, ssm6), Tunnels{gw4});
}

// Checklist §2.4, §6 items 9-10: a MAC with one bit flipped, a nonce never issued, or another
// gateway's MAC is rejected; nothing is created.
TEST_F(RelayMac, WrongMacOrNonceRejected) {
    const Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    const Credentials c = handshake(gw4);
    Credentials flipped = c;
    flipped.mac[5] ^= 0x01;
    send_update(gw4, flipped, inner);
    send_update(gw4, {c.mac, c.nonce + 1}, inner);
    send_update(gw4b, c, inner);
    const Credentials other = handshake(gw4b);
    send_update(gw4, other, inner);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 4u);
    EXPECT_EQ(engine().counters().mac_failures.value(), 4u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §2.4, §6 item 10: after a rotation a MAC of the previous secret is accepted while
// less than 2×QI has passed.
TEST_F(RelayMac, PreviousSecretAcceptedInsideTwiceQi) {
    const Credentials c = handshake(gw4);
    rotate_secret();
    advance_by(2 * config.query_interval - seconds(1));
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_EQ(engine().counters().mac_previous_secret.value(), 1u);
}

// Checklist §2.4, §6 item 10: once 2×QI has passed since the rotation, the previous secret is
// rejected.
TEST_F(RelayMac, PreviousSecretRejectedAfterTwiceQi) {
    const Credentials c = handshake(gw4);
    rotate_secret();
    advance_by(2 * config.query_interval + seconds(1));
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 1u);
}

// Checklist §2.4, §6 item 10: a MAC made with the secret of two rotations back is rejected even
// inside the window.
TEST_F(RelayMac, SecretTwoRotationsBackRejected) {
    const Credentials c = handshake(gw4);
    rotate_secret();
    advance_by(seconds(10));
    rotate_secret();
    advance_by(seconds(10));
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 1u);
    const Credentials fresh = handshake(gw4);
    send_update(gw4, fresh, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 1u) << "the current secret still works";
}

// Checklist §2.4, §8.2: advance() rotates on the configured period; a Query from before the
// rotation stays usable for 2×QI after it.
TEST_F(RelayMac, AdvanceRotatesOnSchedule) {
    config.secret_rotation = Seconds{600};
    const Credentials c = handshake(gw4);
    advance_to(seconds(600) + seconds(5));
    EXPECT_EQ(engine().secret_rotations(), 1u);
    EXPECT_NE(handshake_with_nonce(gw4, c.nonce).mac, c.mac) << "a new secret";
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(engine().counters().mac_previous_secret.value(), 1u);
    EXPECT_EQ(endpoints(), 1u);
    advance_to(seconds(1200) + seconds(5));
    EXPECT_EQ(engine().secret_rotations(), 2u);
}

// Checklist §3.2 (Cisco IOS-XE), §8.3: a MAC with its last two octets wrong is rejected by
// default and accepted with cisco_mac_compat.
TEST_F(RelayMac, CiscoCompatAcceptsLastTwoOctetsWrong) {
    const Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    Credentials c = handshake(gw4);
    c.mac[4] ^= 0xff;
    c.mac[5] ^= 0x55;
    send_update(gw4, c, inner);
    EXPECT_EQ(endpoints(), 0u);
    config.cisco_mac_compat = true;
    engine().reconfigure(config);
    send_update(gw4, c, inner);
    EXPECT_EQ(endpoints(), 1u);
    Credentials d = handshake(gw4b);
    d.mac[3] ^= 0x01;
    send_update(gw4b, d, inner);
    EXPECT_EQ(endpoints(), 1u) << "the first four octets still count";
}

// Checklist §8.2, §3.2 (VLC never re-Requests): an existing endpoint repeating exactly its last
// accepted nonce+MAC is accepted long after rotations beyond the window, and keeps its stream.
TEST_F(RelayMac, StickyMacAcceptsRepeatOfLastPairAfterRotations) {
    config.secret_rotation = Seconds{60};
    const Bytes inner = report({{RecordType::mode_is_include, ssm4, {s1}}});
    const Credentials c = cycle(gw4, inner);
    for (int i = 0; i < 10; ++i) {
        advance_by(seconds(100));
        send_update(gw4, c, inner);
    }
    EXPECT_GE(engine().secret_rotations(), 10u);
    EXPECT_GE(engine().counters().mac_sticky.value(), 8u);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 0u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
}

// Checklist §8.2: "nothing else is accepted outside the window": the last MAC with another nonce,
// the last nonce with another MAC, the last pair from another endpoint, and an older pair the
// endpoint has since replaced.
TEST_F(RelayMac, StickyMacOnlyForExactLastPairOfThatEndpoint) {
    const Bytes inner = report({{RecordType::mode_is_include, ssm4, {s1}}});
    const Credentials first = cycle(gw4, inner);
    const Credentials second = cycle(gw4, inner);
    cycle(gw4b, inner);
    for (int i = 0; i < 3; ++i) {
        rotate_secret();
        advance_by(config.previous_secret_window() + seconds(1));
        send_update(gw4, second, inner);  // keeps the endpoint alive by sticky MAC
    }
    const uint64_t sticky = engine().counters().mac_sticky.value();
    EXPECT_EQ(sticky, 3u);
    sink.clear_events();
    const Bytes leave = report({{RecordType::block_old_sources, ssm4, {s1}}});
    Credentials other_mac = second;
    other_mac.mac[0] ^= 0x01;
    send_update(gw4, first, leave);
    send_update(gw4, {second.mac, second.nonce + 1}, leave);
    send_update(gw4, other_mac, leave);
    send_update(gw4b, second, leave);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 4u);
    EXPECT_EQ(engine().counters().mac_sticky.value(), sticky);
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §8.2: with sticky_mac = false the repeat is rejected once outside the window, and the
// endpoint then expires.
TEST_F(RelayMac, StickyMacOffRejectsRepeat) {
    config.sticky_mac = false;
    const Bytes inner = report({{RecordType::mode_is_include, ssm4, {s1}}});
    const Credentials c = cycle(gw4, inner);
    rotate_secret();
    advance_by(seconds(100));
    send_update(gw4, c, inner);  // previous secret, inside the window
    EXPECT_EQ(engine().counters().mac_previous_secret.value(), 1u);
    advance_by(config.previous_secret_window());
    send_update(gw4, c, inner);  // the same pair, now outside the window
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 1u);
    EXPECT_EQ(engine().counters().mac_sticky.value(), 0u);
    advance_by(config.membership_timeout);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.table.empty());
}

// =============================================================================================
// §2.6 Update processing and MAC validation

// Checklist §2.6, §2.7, §2.10: a valid three-way handshake creates the endpoint; the (S,G) flow
// gets a tunnel to the Update's source from the Update's destination, and is joined upstream.
TEST_F(RelayUpdate, HandshakeThenUpdateCreatesFlowAndJoin) {
    cycle(gw4, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_TRUE(sink.receivers(s2, ssm4).empty());
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{s1, ssm4}}));
    const FlowEdit* add = sink.first_edit(FlowOp::add_tunnel);
    ASSERT_NE(add, nullptr);
    EXPECT_EQ(add->tunnel, gw4);
    EXPECT_EQ(add->relay, relay4);
}

// Checklist §2.12, §6 item 9: an Update from another port or address than the Request's (NAT
// rebinding between Request and Update) fails the MAC and changes nothing.
TEST_F(RelayUpdate, NatRebindingBetweenRequestAndUpdateIsMacMismatch) {
    const Credentials c = handshake(gw4);
    const Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    send_update(ep("198.51.100.10", 40001), c, inner);
    send_update(ep("198.51.100.11", 40000), c, inner);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 2u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_TRUE(sink.upstream_events.empty());
}

// Checklist §2.6 (strictness knob), §3.2 (VLC): VLC's IHL=6 report with an all-zero option word,
// with 4 pad octets when it has no sources, is accepted for its SSM and ASM joins and leaves, all
// under the one nonce+MAC it ever got.
TEST_F(RelayUpdate, VlcIhl6ZeroOptionUpdatesAccepted) {
    const Credentials c = handshake(gw4);
    send_update(gw4, c, vlc_report({{RecordType::mode_is_include, ssm4, {s1}}}, false));
    send_update(gw4, c, vlc_report({{RecordType::change_to_exclude, asm4, {}}}, true));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s2, asm4), Tunnels{gw4});
    send_update(gw4, c, vlc_report({{RecordType::block_old_sources, ssm4, {s1}}}, false));
    send_update(gw4, c, vlc_report({{RecordType::change_to_include, asm4, {}}}, true));
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
    for (size_t i = 0; i < parse_error_count; ++i)
        EXPECT_EQ(engine().counters().malformed[i].value(), 0u) << to_string(ParseError(i));
}

// Checklist §2.6 (any inner source), §8.4: a missing Router Alert, TTL ≠ 1 and any inner source
// address are log-only.
TEST_F(RelayUpdate, LooseInnerHeaderFieldsAccepted) {
    const Bytes other_src =
        report_from(ip("10.9.8.7"), {{RecordType::allow_new_sources, ssm4, {s1}}});
    Bytes ttl64 = report({{RecordType::allow_new_sources, ssm4, {s2}}});
    ttl64[8] = 64;
    fix_ipv4_header_checksum(ttl64);
    const Bytes no_ra = without_router_alert(report({{RecordType::allow_new_sources, ssm4, {s3}}}));
    for (const Bytes* inner : std::initializer_list<const Bytes*>{&other_src, &ttl64, &no_ra})
        cycle(gw4, *inner);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s3, ssm4), Tunnels{gw4});
}

// Checklist §2.6 points 1-4, §6 items 13-14: a malformed inner datagram changes nothing even with
// a valid MAC, and is counted under its parse error.
TEST_F(RelayUpdate, MalformedInnerDatagramChangesNothing) {
    const Bytes good = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    std::vector<std::pair<Bytes, ParseError>> cases;
    Bytes bad_igmp_checksum = good;
    bad_igmp_checksum[26] ^= 0x01;
    cases.emplace_back(bad_igmp_checksum, ParseError::igmp_bad_checksum);
    Bytes bad_header_checksum = good;
    bad_header_checksum[10] ^= 0x01;
    cases.emplace_back(bad_header_checksum, ParseError::inner_bad_header_checksum);
    Bytes v1_report = v1v2(ReportKind::igmpv2_report, asm4);
    v1_report[24] = igmp_v1_report;
    fix_igmp_checksum(v1_report);
    cases.emplace_back(v1_report, ParseError::igmp_not_report);
    Bytes query(64);
    query.resize(build_igmpv3_general_query(query, {}));
    cases.emplace_back(query, ParseError::igmp_not_report);
    Bytes fragment = good;
    fragment[6] = 0x20;  // MF
    fix_ipv4_header_checksum(fragment);
    cases.emplace_back(fragment, ParseError::inner_fragment);
    Bytes not_igmp = good;
    not_igmp[9] = ip_proto_udp;
    fix_ipv4_header_checksum(not_igmp);
    cases.emplace_back(not_igmp, ParseError::inner_not_igmp);
    Bytes overrun = good;
    store_be16(&overrun[2], static_cast<uint16_t>(overrun.size() + 4));
    fix_ipv4_header_checksum(overrun);
    cases.emplace_back(overrun, ParseError::inner_total_length_overrun);
    Bytes bad_version = good;
    bad_version[0] = 0x56;
    cases.emplace_back(bad_version, ParseError::inner_bad_version);

    for (const auto& [inner, reason] : cases) {
        SCOPED_TRACE(to_string(reason));
        const uint64_t before = malformed(reason);
        cycle(gw4, inner);
        EXPECT_EQ(malformed(reason), before + 1);
    }
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_EQ(engine().counters().mac_failures.value(), 0u) << "cheap checks before the MAC";
}

// Checklist §2.6, §6 item 2: octets after the inner datagram are ignored.
TEST_F(RelayUpdate, TrailingOctetsAfterInnerDatagramIgnored) {
    Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    inner.insert(inner.end(), {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03});
    cycle(gw4, inner);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
}

// Checklist §3.2 (amtgwd), §2.3: back-to-back Requests with different nonces each yield a usable
// MAC; the relay does not keep "only the latest nonce".
TEST_F(RelayUpdate, AmtgwdBackToBackRequestsBothUsable) {
    const Credentials first = handshake(gw4);
    const Credentials second = handshake(gw4);
    ASSERT_NE(first.nonce, second.nonce);
    send_update(gw4, second, report({{RecordType::allow_new_sources, ssm4, {s2}}}));
    send_update(gw4, first, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4});
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 0u);
}

// Checklist §3.1 ("every handler must be idempotent"), §6 item 11: a replayed Update changes
// nothing more.
TEST_F(RelayUpdate, ReplayedUpdateIsIdempotent) {
    const Credentials c = handshake(gw4);
    const Bytes inner = report({{RecordType::allow_new_sources, ssm4, {s1, s2}},
                                {RecordType::change_to_exclude, asm4, {s3}}});
    send_update(gw4, c, inner);
    const auto table = sink.table;
    sink.clear_events();
    send_update(gw4, c, inner);
    send_update(gw4, c, inner);
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_TRUE(sink.upstream_events.empty());
    EXPECT_EQ(sink.table, table);
}

// Checklist §2.6 [Y], §2.7, §6 item 12: an empty report, an IGMPv2 Leave or an MLDv1 Done from an
// unknown endpoint with a bad MAC allocates nothing (empty_report_unknown_endpoint).
TEST_F(RelayUpdate, EmptyReportFromUnknownEndpointWithBadMac) {
    const Credentials bogus{{1, 2, 3, 4, 5, 6}, 99};
    send_update(gw4, bogus, report(Family::ipv4, {}));
    send_update(gw4, bogus, report(Family::ipv6, {}));
    send_update(gw4, bogus, v1v2(ReportKind::igmpv2_leave, asm4));
    send_update(gw4, bogus, v1v2(ReportKind::mldv1_done, asm6));
    EXPECT_EQ(dropped(DropReason::empty_report_unknown_endpoint), 4u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §2.7, §4.2.1.2: with a valid MAC, an Update that would create no subscription (empty
// report, leave of nothing, BLOCK of nothing) allocates nothing either.
TEST_F(RelayUpdate, UpdateCreatingNothingAllocatesNothing) {
    cycle(gw4, report(Family::ipv4, {}));
    cycle(gw4, report({{RecordType::block_old_sources, ssm4, {s1}},
                       {RecordType::change_to_include, asm4, {}}}));
    cycle(gw4, v1v2(ReportKind::igmpv2_leave, asm4));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_EQ(engine().counters().mac_failures.value(), 0u);
}

// =============================================================================================
// §2.7 Tunnel identity, §2.12 NAT traversal

// Checklist §2.7, §3.2 (Linux relay collides them): two gateways behind one NAT IP (same IP,
// different ports) are two endpoints; the upstream join comes with the first, the leave after the
// last.
TEST_F(RelayIdentity, TwoGatewaysBehindOneNatIpAreTwoEndpoints) {
    const UdpEndpoint a = ep("198.51.100.10", 40000);
    const UdpEndpoint b = ep("198.51.100.10", 40001);
    cycle(a, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    cycle(b, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(endpoints(), 2u);
    EXPECT_EQ(sink.receivers(s1, ssm4), (Tunnels{a, b}));
    ASSERT_EQ(sink.upstream_events.size(), 1u);
    EXPECT_TRUE(sink.upstream_events[0].second);
    cycle(a, report({{RecordType::block_old_sources, ssm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{b});
    EXPECT_EQ(sink.upstream_events.size(), 1u) << "no leave while b remains";
    cycle(b, report({{RecordType::block_old_sources, ssm4, {s1}}}));
    ASSERT_EQ(sink.upstream_events.size(), 2u);
    EXPECT_FALSE(sink.upstream_events[1].second);
    EXPECT_TRUE(sink.table.empty());
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §2.7 (Linux uses one port for both): one endpoint holds IGMP and MLD state, and the
// inner source address plays no part in identity.
TEST_F(RelayIdentity, OneEndpointHoldsIgmpAndMldState) {
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    const Credentials c = handshake(gw4, relay4, request_p_flag);
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm6, {s6a}}}));
    cycle(gw4, report_from(ip("192.168.1.20"), {{RecordType::allow_new_sources, asm4, {s2}}}));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_TRUE(membership(gw4, ssm4).has_value());
    EXPECT_TRUE(membership(gw4, ssm6).has_value());
    EXPECT_TRUE(membership(gw4, asm4).has_value());
}

// Checklist §2.12, §4.2.2.1: a gateway whose address changed is a new endpoint; the old one keeps
// receiving until Teardown or timeout, and the upstream join is not repeated.
TEST_F(RelayIdentity, RoamingCreatesNewEndpointOldKeepsReceiving) {
    const Bytes inner = report({{RecordType::mode_is_include, ssm4, {s1}}});
    cycle(gw4, inner);
    advance_by(seconds(100));
    cycle(gw4b, inner);
    EXPECT_EQ(endpoints(), 2u);
    EXPECT_EQ(sink.receivers(s1, ssm4), (Tunnels{gw4, gw4b}));
    EXPECT_EQ(sink.upstream_events.size(), 1u);
    advance_by(config.membership_timeout - seconds(50));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4b}) << "the old endpoint timed out";
    EXPECT_EQ(sink.upstream_events.size(), 1u);
}

// Checklist §2.10, §2.12: Data comes from the relay address the Update was sent to (a relay with
// two unicast addresses), and goes to the Update's post-NAT source.
TEST_F(RelayIdentity, TunnelUsesUpdateDestinationAsRelayAddress) {
    const UdpEndpoint second = ep("192.0.2.2", amt_udp_port);
    config.relay_addresses = {relay4.ip, second.ip, relay6.ip};
    const Credentials c = handshake(gw4, second);
    EXPECT_EQ(sink.replies.back().from, second);
    send_update(gw4, c, report({{RecordType::allow_new_sources, ssm4, {s1}}}), second);
    const FlowEdit* add = sink.first_edit(FlowOp::add_tunnel);
    ASSERT_NE(add, nullptr);
    EXPECT_EQ(add->relay, second);
    EXPECT_EQ(add->tunnel, gw4);
}

// =============================================================================================
// §2.8 Membership timers and expiry

// Checklist §2.8, §8.6: without refresh an endpoint's state is removed after membership_timeout
// (270 s by default): flows deleted, upstream left.
TEST_F(RelayExpiry, ExpiresAfterMembershipTimeout) {
    const Time joined = now;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}},
                       {RecordType::change_to_exclude, asm4, {}}}));
    advance_to(joined + config.membership_timeout - seconds(1));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    sink.clear_events();
    advance_to(joined + config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_EQ(engine().expired_endpoints(), 1u);
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
    EXPECT_EQ(sink.count_edits(FlowOp::delete_flow), 2u);
    EXPECT_EQ(sink.upstream_events.size(), 2u);
}

// Checklist §2.8: a refresh before expiry restarts the timer, even a current-state report that
// changes nothing.
TEST_F(RelayExpiry, RefreshBeforeExpiryKeepsState) {
    const Bytes inner = report({{RecordType::mode_is_include, ssm4, {s1}}});
    cycle(gw4, inner);
    advance_by(seconds(200));
    const Time refreshed = now;
    cycle(gw4, inner);
    advance_to(refreshed + config.membership_timeout - seconds(1));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    advance_to(refreshed + config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §2.8 ("restarted on every accepted Update"), §3.1 (empty current-state reports): an
// empty report from a known endpoint restarts its timer; one with a bad MAC does not.
TEST_F(RelayExpiry, EmptyReportRefreshesOnlyWithValidMac) {
    cycle(gw4, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    cycle(gw4b, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    advance_by(seconds(200));
    const Time refreshed = now;
    cycle(gw4, report(Family::ipv4, {}));
    Credentials bad = handshake(gw4b);
    bad.mac[0] ^= 0x80;
    send_update(gw4b, bad, report(Family::ipv4, {}));
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 1u);
    advance_to(refreshed + seconds(100));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    advance_to(refreshed + config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §8.6: one timer per endpoint: an Update for one group keeps all of the endpoint's
// groups alive, and they expire together.
TEST_F(RelayExpiry, OneTimerPerEndpoint) {
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    advance_by(seconds(200));
    const Time last = now;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4b, {s2}}}));
    advance_to(last + config.membership_timeout - seconds(1));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s2, ssm4b), Tunnels{gw4});
    advance_to(last + config.membership_timeout + seconds(1));
    EXPECT_TRUE(sink.table.empty());
}

// Checklist §2.14, §4.1.3.1: the relay never sends unsolicited Queries: time passing, refreshes
// and expiries produce no reply.
TEST_F(RelayExpiry, NoUnsolicitedQueries) {
    const Credentials c = cycle(gw4, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    sink.clear_events();
    advance_by(seconds(100));
    send_update(gw4, c, report({{RecordType::mode_is_include, ssm4, {s1}}}));
    advance_by(config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.replies.empty());
}

// Checklist §2.8: the configured membership_timeout is used, shorter or longer than the default
// (1000 s is longer than one turn of the engine's timer wheel).
TEST_F(RelayExpiry, ConfiguredTimeoutShortAndLong) {
    for (const Seconds timeout : {Seconds{130}, Seconds{1000}}) {
        SCOPED_TRACE(timeout.count());
        config.membership_timeout = timeout;
        engine().reconfigure(config);
        const Time joined = now;
        cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
        advance_to(joined + timeout - seconds(1));
        EXPECT_EQ(endpoints(), 1u);
        advance_to(joined + timeout + seconds(1));
        EXPECT_EQ(endpoints(), 0u);
    }
}

// =============================================================================================
// §2.9 Teardown

// Checklist §2.9, §6 item 20: an authentic Teardown sent from an unrelated (the gateway's new)
// address, with the Gateway IP in IPv4-compatible form and in IPv4-mapped form, stops forwarding
// to the old endpoint at once and leaves upstream.
TEST_F(RelayTeardown, AuthenticTeardownStopsForwardingAndLeaves) {
    config.teardown = true;
    for (const bool mapped : {false, true}) {
        SCOPED_TRACE(mapped ? "::ffff:a.b.c.d" : "::a.b.c.d");
        const Credentials c = cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}},
                                                 {RecordType::change_to_exclude, asm4, {}}}));
        ASSERT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
        sink.clear_events();
        deliver(ep("203.0.113.99", 50000), relay4, teardown_msg(c, gw4, mapped));
        EXPECT_EQ(endpoints(), 0u);
        EXPECT_TRUE(sink.table.empty());
        EXPECT_TRUE(sink.joined.empty());
        EXPECT_EQ(sink.count_edits(FlowOp::delete_flow), 2u);
        EXPECT_EQ(sink.upstream_events.size(), 2u);
    }
    EXPECT_EQ(engine().counters().received[7].value(), 2u);
}

// Checklist §2.9 [Y] (no upstream churn): the gateway rebuilds its state on its new endpoint, then
// tears the old one down: the old tunnel is removed, the flows and joins stay.
TEST_F(RelayTeardown, TeardownAfterRebuildRemovesOnlyOldTunnel) {
    config.teardown = true;
    const Bytes inner = report(
        {{RecordType::allow_new_sources, ssm4, {s1}}, {RecordType::change_to_exclude, asm4, {}}});
    const UdpEndpoint moved = ep("203.0.113.99", 50000);
    const Credentials old = cycle(gw4, inner);
    cycle(moved, inner);
    sink.clear_events();
    deliver(moved, relay4, teardown_msg(old, gw4));
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{moved});
    EXPECT_EQ(sink.receivers(s1, asm4), Tunnels{moved});
    EXPECT_EQ(sink.count_edits(FlowOp::remove_tunnel), 2u);
    EXPECT_EQ(sink.count_edits(FlowOp::delete_flow), 0u);
    EXPECT_TRUE(sink.upstream_events.empty());
}

// Checklist §2.9, §2.13: the same for an IPv6 gateway (16-octet Gateway IP) over IPv6.
TEST_F(RelayTeardown, Ipv6GatewayTeardown) {
    config.teardown = true;
    const Credentials c =
        cycle(gw6, report({{RecordType::allow_new_sources, ssm6, {s6a}}}), relay6);
    deliver(ep("2001:db8:200::1", 50000), relay6, teardown_msg(c, gw6));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.table.empty());
}

// Checklist §2.4 ("validate Teardown the same way as Update"): the previous secret inside 2×QI.
TEST_F(RelayTeardown, TeardownAcceptsPreviousSecretInsideWindow) {
    config.teardown = true;
    const Credentials c = cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    rotate_secret();
    advance_by(seconds(60));
    deliver(gw4b, relay4, teardown_msg(c, gw4));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_EQ(engine().counters().mac_previous_secret.value(), 1u);
}

// Checklist §2.9 [M] "ignore the Teardown on mismatch", §6 items 9 and 20: a bad MAC, the MAC of
// another gateway, a foreign destination, or an unspecified Gateway IP change nothing.
TEST_F(RelayTeardown, InvalidTeardownsIgnored) {
    config.teardown = true;
    const Credentials c = cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    const Credentials other = handshake(gw4b);
    Credentials flipped = c;
    flipped.mac[2] ^= 0x10;
    sink.clear_events();
    deliver(gw4b, relay4, teardown_msg(flipped, gw4));
    deliver(gw4b, relay4, teardown_msg(other, gw4));
    deliver(gw4b, anycast4, teardown_msg(c, gw4));
    deliver(gw4b, relay4, teardown_msg(c, ep("::", 40000)));
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 2u);
    EXPECT_EQ(dropped(DropReason::not_for_relay_address), 1u);
    EXPECT_EQ(malformed(ParseError::bad_gateway_address), 1u);
    EXPECT_EQ(endpoints(), 1u);
    EXPECT_TRUE(sink.edits.empty());
}

// Checklist §2.1, §8.1: with teardown = false (the default) type 7 is ignored.
TEST_F(RelayTeardown, TeardownDisabledIgnored) {
    const Credentials c = cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    deliver(gw4b, relay4, teardown_msg(c, gw4));
    EXPECT_EQ(dropped(DropReason::teardown_disabled), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
}

// Checklist §6 item 20: an authentic Teardown for an endpoint with no state is a counted no-op.
TEST_F(RelayTeardown, TeardownForUnknownEndpoint) {
    config.teardown = true;
    const Credentials c = handshake(gw4);
    deliver(gw4b, relay4, teardown_msg(c, gw4));
    EXPECT_EQ(dropped(DropReason::teardown_unknown_endpoint), 1u);
    EXPECT_EQ(dropped(DropReason::mac_mismatch), 0u);
    EXPECT_TRUE(sink.edits.empty());
}

// =============================================================================================
// §2.11 Load and DoS protection

// Checklist §2.11, §6 item 18: at max_endpoints a new endpoint is ignored (endpoint_limit) and L
// is set in every Query; existing endpoints' refreshes and additions are still accepted; below the
// limit again (a leave, an expiry) L clears and new endpoints are taken.
TEST_F(RelayLoad, MaxEndpoints) {
    config.limits.max_endpoints = 2;
    const UdpEndpoint c3 = ep("198.51.100.30", 40000);
    const auto l_flag = [&](const UdpEndpoint& gw) {
        MembershipQuery q;
        EXPECT_EQ(parse_membership_query(request_reply(gw, 0).payload, q), ParseError::ok);
        return q.l_flag;
    };
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_FALSE(l_flag(gw4b));
    cycle(gw4b, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_TRUE(engine().refusing_new_endpoints());
    EXPECT_TRUE(l_flag(c3));
    EXPECT_TRUE(l_flag(gw4)) << "L in every Query";
    cycle(c3, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(dropped(DropReason::endpoint_limit), 1u);
    EXPECT_EQ(sink.receivers(s1, ssm4), (Tunnels{gw4, gw4b}));
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s2}}}));
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4}) << "existing endpoint still grows";

    cycle(gw4b, report({{RecordType::block_old_sources, ssm4, {s1}}}));
    EXPECT_FALSE(l_flag(c3));
    cycle(c3, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4), (Tunnels{gw4, c3}));
    EXPECT_TRUE(l_flag(gw4b));
    advance_by(config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_FALSE(l_flag(gw4b)) << "expiry frees capacity";
}

// Checklist §2.11, §6.1: a new endpoint from a source IP at max_endpoints_per_source_ip is
// ignored; other IPs and the existing endpoints of that IP are served.
TEST_F(RelayLoad, MaxEndpointsPerSourceIp) {
    config.limits.max_endpoints_per_source_ip = 2;
    const Bytes join = report({{RecordType::allow_new_sources, ssm4, {s1}}});
    cycle(ep("198.51.100.10", 1001), join);
    cycle(ep("198.51.100.10", 1002), join);
    cycle(ep("198.51.100.10", 1003), join);
    EXPECT_EQ(dropped(DropReason::source_ip_endpoint_limit), 1u);
    cycle(gw4b, join);
    EXPECT_EQ(endpoints(), 3u);
    cycle(ep("198.51.100.10", 1001), report({{RecordType::allow_new_sources, ssm4, {s2}}}));
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{ep("198.51.100.10", 1001)});
    EXPECT_EQ(dropped(DropReason::source_ip_endpoint_limit), 1u);
}

// Checklist §2.11, §6 item 18: records for groups beyond max_groups_per_endpoint are ignored
// (group_limit); refreshes of and changes to the existing groups are accepted.
TEST_F(RelayLoad, MaxGroupsPerEndpoint) {
    config.limits.max_groups_per_endpoint = 2;
    const IpAddress third = ip("232.1.1.3");
    const std::vector<Rec> all = {{RecordType::mode_is_include, ssm4, {s1}},
                                  {RecordType::mode_is_include, ssm4b, {s1}},
                                  {RecordType::mode_is_include, third, {s1}}};
    cycle(gw4, report(all));
    EXPECT_EQ(engine().memberships().endpoint(engine().memberships().find(gw4)).groups.size(), 2u);
    EXPECT_EQ(dropped(DropReason::group_limit), 1u);
    EXPECT_TRUE(membership(gw4, ssm4).has_value());
    EXPECT_TRUE(membership(gw4, ssm4b).has_value());
    cycle(gw4, report(all));
    EXPECT_EQ(dropped(DropReason::group_limit), 2u);
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s2}}}));
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4});
    cycle(gw4, report({{RecordType::block_old_sources, ssm4b, {s1}},
                       {RecordType::allow_new_sources, third, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, third), Tunnels{gw4});
    EXPECT_FALSE(membership(gw4, ssm4b).has_value());
    EXPECT_EQ(dropped(DropReason::group_limit), 2u);
}

// Checklist §2.11, §6 item 18: sources beyond max_sources_per_group are ignored (source_limit) in
// INCLUDE and EXCLUDE mode; a refresh of the kept sources is accepted and room can be made.
TEST_F(RelayLoad, MaxSourcesPerGroup) {
    config.limits.max_sources_per_group = 2;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1, s2, s3}}}));
    EXPECT_EQ(dropped(DropReason::source_limit), 1u);
    const std::optional<GroupMembership> kept = membership(gw4, ssm4);
    ASSERT_TRUE(kept.has_value());
    ASSERT_EQ(kept->sources.size(), 2u);
    sink.clear_events();
    cycle(gw4, report({{RecordType::mode_is_include, ssm4, kept->sources}}));
    EXPECT_EQ(dropped(DropReason::source_limit), 1u);
    EXPECT_TRUE(sink.edits.empty());
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s4}}}));
    EXPECT_EQ(dropped(DropReason::source_limit), 2u);
    EXPECT_TRUE(sink.receivers(s4, ssm4).empty());
    cycle(gw4, report({{RecordType::block_old_sources, ssm4, {kept->sources[0]}},
                       {RecordType::allow_new_sources, ssm4, {s4}}}));
    EXPECT_EQ(sink.receivers(s4, ssm4), Tunnels{gw4});
    EXPECT_EQ(membership(gw4, ssm4)->sources.size(), 2u);

    cycle(gw4b, report({{RecordType::change_to_exclude, asm4, {s1, s2, s3}}}));
    EXPECT_EQ(dropped(DropReason::source_limit), 3u);
    ASSERT_TRUE(membership(gw4b, asm4).has_value());
    EXPECT_EQ(membership(gw4b, asm4)->mode, FilterMode::exclude);
    EXPECT_EQ(membership(gw4b, asm4)->sources.size(), 2u);
}

// Issue 18 item 5: a record cut by the source limit and then by the flow budget counts once,
// under the flow budget; the flow budgets ignore records, they do not drop packets.
TEST_F(RelayLoad, RecordCutTwiceCountsOnce) {
    config.limits.max_sources_per_group = 3;
    config.limits.max_flows_per_endpoint = 2;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1, s2, s3, s4}}}));
    EXPECT_EQ(membership(gw4, ssm4)->sources.size(), 2u);
    EXPECT_EQ(dropped(DropReason::endpoint_flow_limit), 1u);
    EXPECT_EQ(dropped(DropReason::source_limit), 0u) << "one reason per record";
    static_assert(ignores_a_record(DropReason::endpoint_flow_limit) &&
                  ignores_a_record(DropReason::source_ip_flow_limit));
}

// Issue 18 item 2: an endpoint holds at most max_flows_per_endpoint flows (an (S,G) per listed
// source, a (*,G) per EXCLUDE group). New INCLUDE sources beyond it are ignored, a change to
// EXCLUDE that does not fit is refused whole, and what the endpoint gives up in the same Update
// makes room first; a refresh of the kept state is not a refusal.
TEST_F(RelayLoad, FlowBudgetPerEndpoint) {
    config.limits.max_flows_per_endpoint = 3;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1, s2, s3, s4}}}));
    EXPECT_EQ(dropped(DropReason::endpoint_flow_limit), 1u);
    EXPECT_EQ(membership(gw4, ssm4)->sources, (std::vector<IpAddress>{s1, s2, s3}));
    EXPECT_TRUE(sink.receivers(s4, ssm4).empty());
    EXPECT_EQ(engine().last_flow_refusal().gateway, gw4);
    EXPECT_EQ(engine().last_flow_refusal().group, ssm4);

    sink.clear_events();
    cycle(gw4, report({{RecordType::mode_is_include, ssm4, {s1, s2, s3}}}));
    EXPECT_TRUE(sink.edits.empty());
    EXPECT_EQ(dropped(DropReason::endpoint_flow_limit), 1u) << "a refresh is not refused";

    cycle(gw4, report({{RecordType::allow_new_sources, ssm4b, {s1}}}));
    EXPECT_FALSE(membership(gw4, ssm4b).has_value());
    cycle(gw4, report({{RecordType::change_to_exclude, asm4, {}}}));
    EXPECT_FALSE(membership(gw4, asm4).has_value()) << "no (*,G) beyond the budget";
    EXPECT_TRUE(sink.receivers(s1, asm4).empty());
    EXPECT_EQ(dropped(DropReason::endpoint_flow_limit), 3u);

    cycle(gw4, report({{RecordType::block_old_sources, ssm4, {s3}},
                       {RecordType::allow_new_sources, ssm4b, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4b), Tunnels{gw4}) << "a leave in the same Update makes room";
    EXPECT_EQ(dropped(DropReason::endpoint_flow_limit), 3u);
    cycle(gw4b, report({{RecordType::allow_new_sources, ssm4, {s1, s2, s3, s4}}}));
    EXPECT_EQ(membership(gw4b, ssm4)->sources.size(), 3u) << "each endpoint has its own budget";
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 0u);
}

// Issue 18 item 2: the endpoints of one address together hold at most max_flows_per_source_ip
// distinct flows, so two endpoints of one address cannot fill the flow table between them (the
// attack: two endpoints × 64 groups × 64 sources). A flow several of them share costs the
// address one: a thousand subscribers behind one CGNAT address watching the same channels fit.
TEST_F(RelayLoad, FlowBudgetPerSourceIpCountsASharedFlowOnce) {
    config.limits.max_flows_per_source_ip = 3;
    const auto nat = [](uint16_t port) { return ep("198.51.100.10", port); };
    cycle(nat(1000), report({{RecordType::allow_new_sources, ssm4, {s1, s2}}}));
    cycle(nat(1001), report({{RecordType::allow_new_sources, ssm4b, {s1, s2}}}));
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 1u);
    EXPECT_EQ(membership(nat(1001), ssm4b)->sources, std::vector<IpAddress>{s1});
    EXPECT_EQ(engine().last_flow_refusal().reason, DropReason::source_ip_flow_limit);
    EXPECT_EQ(engine().last_flow_refusal().gateway, nat(1001));

    // Every other subscriber behind the address joins the channels already held: free.
    for (uint16_t port = 1002; port < 1100; ++port) {
        cycle(nat(port), report({{RecordType::allow_new_sources, ssm4, {s1, s2}},
                                 {RecordType::allow_new_sources, ssm4b, {s1}}}));
    }
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 1u);
    EXPECT_EQ(sink.receivers(s2, ssm4).size(), 99u);
    EXPECT_EQ(sink.receivers(s1, ssm4b).size(), 99u);
    cycle(nat(1050), report({{RecordType::allow_new_sources, ssm4, {s3}}}));
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 2u);
    EXPECT_TRUE(sink.receivers(s3, ssm4).empty());
    cycle(gw4b, report({{RecordType::allow_new_sources, ssm4, {s3}}}));
    EXPECT_EQ(sink.receivers(s3, ssm4), Tunnels{gw4b}) << "other addresses have their own budget";

    // A shared flow is the address's until its last endpoint there leaves it.
    for (uint16_t port = 1000; port < 1099; ++port)
        cycle(nat(port), report({{RecordType::block_old_sources, ssm4b, {s1}}}));
    cycle(nat(1050), report({{RecordType::allow_new_sources, ssm4, {s3}}}));
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 3u);
    cycle(nat(1099), report({{RecordType::block_old_sources, ssm4b, {s1}}}));
    cycle(nat(1050), report({{RecordType::allow_new_sources, ssm4, {s3}}}));
    EXPECT_EQ(sink.receivers(s3, ssm4), (Tunnels{gw4b, nat(1050)}));
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 3u);
}

// Issue 18 item 2: EXCLUDE-mode flows count too. Sharing a (*,G) costs nothing; blocking a new
// source needs an (S,G) of its own, and a block that does not fit is refused whole (the source
// keeps flowing rather than the state being cut). Expiry gives an address's flows back.
TEST_F(RelayLoad, FlowBudgetPerSourceIpInExcludeModeAndAfterExpiry) {
    config.limits.max_flows_per_source_ip = 1;
    const UdpEndpoint a = ep("198.51.100.10", 1000), b = ep("198.51.100.10", 1001);
    cycle(a, report({{RecordType::change_to_exclude, asm4, {}}}));
    cycle(b, report({{RecordType::change_to_exclude, asm4, {}}}));
    EXPECT_EQ(sink.receivers(s1, asm4), (Tunnels{a, b}));
    cycle(b, report({{RecordType::block_old_sources, asm4, {s1}}}));
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 1u);
    EXPECT_EQ(sink.receivers(s1, asm4), (Tunnels{a, b}));
    EXPECT_TRUE(membership(b, asm4)->sources.empty());
    cycle(b, report({{RecordType::change_to_exclude, asm4b, {}}}));
    EXPECT_FALSE(membership(b, asm4b).has_value());
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 2u);

    advance_by(config.membership_timeout + seconds(1));
    EXPECT_EQ(endpoints(), 0u);
    cycle(b, report({{RecordType::change_to_exclude, asm4b, {}}}));
    EXPECT_EQ(sink.receivers(s1, asm4b), Tunnels{b});
    EXPECT_EQ(dropped(DropReason::source_ip_flow_limit), 2u);
}

// Checklist §2.11, §6 item 8: replies per source IP are rate-limited by a token bucket (burst,
// then rate_limited; Discovery and Request and every port of the IP share it); another IP is not
// affected; tokens come back with time.
TEST_F(RelayLoad, ReplyRateLimiter) {
    config.limits.replies_per_second_per_source_ip = 1;
    config.limits.reply_burst_per_source_ip = 3;
    for (uint32_t i = 0; i < 3; ++i)
        deliver(gw4, relay4, request_msg(i));
    EXPECT_EQ(sink.replies.size(), 3u);
    deliver(gw4, relay4, request_msg(3));
    deliver(ep("198.51.100.10", 40001), relay4, request_msg(4));
    deliver(gw4, anycast4, discovery_msg(5));
    EXPECT_EQ(sink.replies.size(), 3u);
    EXPECT_EQ(dropped(DropReason::rate_limited), 3u);
    deliver(gw4b, relay4, request_msg(6));
    EXPECT_EQ(sink.replies.size(), 4u);
    advance_by(seconds(1));
    deliver(gw4, relay4, request_msg(7));
    deliver(gw4, relay4, request_msg(8));
    EXPECT_EQ(sink.replies.size(), 5u);
    EXPECT_EQ(dropped(DropReason::rate_limited), 4u);
}

// Issue 18, item 4: a flood spread over many addresses (each far below its per-address bucket)
// is capped by the global budget, refused as reply_budget_exhausted; the budget refills.
TEST_F(RelayLoad, GlobalReplyBudgetCapsManyAddresses) {
    config.limits.replies_per_second = 100;
    config.limits.reply_burst = 50;
    config.limits.reply_reserve_percent = 0;
    for (uint32_t i = 0; i < 500; ++i)
        deliver({IpAddress::v4(0xc6336400u + i), 40000}, relay4, request_msg(i));
    EXPECT_EQ(sink.replies.size(), 50u);
    EXPECT_EQ(dropped(DropReason::reply_budget_exhausted), 450u);
    EXPECT_EQ(dropped(DropReason::rate_limited), 0u);
    now += seconds(1);
    for (uint32_t i = 0; i < 500; ++i)
        deliver({IpAddress::v4(0xc6336400u + 1000 + i), 40000}, relay4, request_msg(i));
    EXPECT_EQ(sink.replies.size(), 100u);
}

// Issue 18, item 4: during a flood from unknown addresses, a gateway that holds an endpoint is
// answered from the reserve (the last reply_reserve_percent of the burst); another address of
// the same gateway's network is not; once the endpoint expires, the address loses the reserve.
TEST_F(RelayLoad, ReplyReserveKeptForAddressesHoldingAnEndpoint) {
    config.limits.replies_per_second = 1;
    config.limits.reply_burst = 40;
    config.limits.reply_reserve_percent = 25;
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    ASSERT_EQ(endpoints(), 1u);
    sink.replies.clear();
    for (uint32_t i = 0; i < 100; ++i)
        deliver({IpAddress::v4(0x64400000u + i), 40000}, relay4, request_msg(i));
    EXPECT_EQ(sink.replies.size(), 29u) << "burst 40 − reserve 10 − the join's Query";
    EXPECT_EQ(dropped(DropReason::reply_budget_exhausted), 71u);
    deliver(gw4b, relay4, request_msg(200));
    EXPECT_EQ(sink.replies.size(), 29u) << "an unknown address: no reserve";
    for (uint32_t i = 0; i < 10; ++i)
        deliver({gw4.ip, static_cast<uint16_t>(50000 + i)}, relay4, request_msg(300 + i));
    EXPECT_EQ(sink.replies.size(), 39u) << "the known address (any port) takes the reserve";
    deliver(gw4, relay4, request_msg(400));
    EXPECT_EQ(sink.replies.size(), 39u);
    EXPECT_EQ(dropped(DropReason::reply_reserve_exhausted), 1u);

    advance_by(config.membership_timeout + seconds(1));  // the reserve refills meanwhile
    ASSERT_EQ(endpoints(), 0u);
    EXPECT_FALSE(engine().reply_guard().known_gateways().contains(gw4.ip));
    for (uint32_t i = 0; i < 100; ++i)
        deliver({IpAddress::v4(0x64500000u + i), 40000}, relay4, request_msg(i));
    const size_t flood_answered = sink.replies.size();
    deliver(gw4, relay4, request_msg(500));
    EXPECT_EQ(sink.replies.size(), flood_answered) << "expired: no longer a known gateway";
}

// =============================================================================================
// §2.13 IPv4/IPv6 combinations

// Checklist §2.13, §4.2.2.3, §6 item 19: all four outer/inner combinations, including MLD over an
// IPv4 outer and IGMP over an IPv6 outer: the Query family follows P, not the outer family, and
// the tunnel is the outer endpoint.
TEST_F(RelayFamilies, AllFourOuterInnerCombinations) {
    struct Combination {
        UdpEndpoint gw;
        UdpEndpoint relay;
        IpAddress group;
        IpAddress source;
    };
    const Combination combinations[] = {
        {gw4, relay4, ssm4, s1},
        {gw4b, relay4, ssm6, s6a},  // MLD over IPv4
        {gw6, relay6, ssm4b, s2},   // IGMP over IPv6
        {ep("2001:db8:100::20", 40000), relay6, ip("ff35::9"), s6b},
    };
    for (const Combination& c : combinations) {
        SCOPED_TRACE(c.gw.to_string() + " " + c.group.to_string());
        const bool mld = c.group.is_v6();
        const Reply r = request_reply(c.gw, mld ? request_p_flag : 0, c.relay);
        EXPECT_EQ(r.from, c.relay);
        EXPECT_EQ(r.payload.size(), mld ? 88u : 48u);
        MembershipQuery q;
        ASSERT_EQ(parse_membership_query(r.payload, q), ParseError::ok);
        sink.clear_events();
        send_update(c.gw, {q.mac, q.nonce},
                    report({{RecordType::allow_new_sources, c.group, {c.source}}}), c.relay);
        EXPECT_EQ(sink.receivers(c.source, c.group), Tunnels{c.gw});
        EXPECT_EQ(joins_of(c.group), (std::set<FlowKey>{{c.source, c.group}}));
        ASSERT_EQ(sink.count_edits(FlowOp::add_tunnel), 1u);
        for (const FlowEdit& e : sink.edits) {
            if (e.op == FlowOp::add_tunnel) {
                EXPECT_EQ(e.relay, c.relay);
            }
        }
    }
    EXPECT_EQ(endpoints(), 4u);
}

// =============================================================================================
// §4.2 Router state per endpoint (the table in controlplane/group_membership.hpp: immediate
// leave, one timer per endpoint)

// Checklist §4.2, §8.6: every record type from INCLUDE(A) and from EXCLUDE(Y) with A = Y = {S1,S2}
// and B = {S2,S3}: the resulting state, the forwarding (3376 §6.3), the table's flows (EXCLUDE:
// (*,G) plus an empty (S,G) per blocked source) and the upstream joins.
TEST_F(RelayRecords, EveryRecordTypeFromIncludeAndExclude) {
    struct Row {
        bool from_exclude;
        RecordType type;
        FilterMode mode;
        std::vector<IpAddress> sources;
    };
    const auto inc = FilterMode::include;
    const auto exc = FilterMode::exclude;
    const Row rows[] = {
        {false, RecordType::mode_is_include, inc, {s1, s2, s3}},
        {false, RecordType::allow_new_sources, inc, {s1, s2, s3}},
        {false, RecordType::block_old_sources, inc, {s1}},
        {false, RecordType::change_to_include, inc, {s2, s3}},
        {false, RecordType::mode_is_exclude, exc, {s3}},
        {false, RecordType::change_to_exclude, exc, {s2, s3}},
        {true, RecordType::mode_is_include, exc, {s1}},
        {true, RecordType::allow_new_sources, exc, {s1}},
        {true, RecordType::block_old_sources, exc, {s1, s2, s3}},
        {true, RecordType::change_to_include, inc, {s2, s3}},
        {true, RecordType::mode_is_exclude, exc, {s2}},
        {true, RecordType::change_to_exclude, exc, {s2, s3}},
    };
    uint32_t n = 0;
    for (const Row& row : rows) {
        const IpAddress g = IpAddress::v4(0xef020001u + n++);  // 239.2.0.x: ASM
        SCOPED_TRACE(std::string(row.from_exclude ? "EXCLUDE" : "INCLUDE") + " record type " +
                     std::to_string(static_cast<int>(row.type)));
        cycle(gw4, report({{row.from_exclude ? RecordType::change_to_exclude
                                             : RecordType::allow_new_sources,
                            g,
                            {s1, s2}}}));
        cycle(gw4, report({{row.type, g, {s2, s3}}}));
        const std::optional<GroupMembership> m = membership(gw4, g);
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(m->mode, row.mode);
        EXPECT_EQ(m->sources, row.sources);

        const bool include = row.mode == inc;
        std::map<FlowKey, Tunnels> flows;
        std::set<FlowKey> joins;
        if (!include) {
            flows[{any_source(g), g}] = {gw4};
            joins.insert({any_source(g), g});
        }
        for (const IpAddress& s : row.sources) {
            flows[{s, g}] = include ? Tunnels{gw4} : Tunnels{};
            if (include) joins.insert({s, g});
        }
        EXPECT_EQ(flows_of(g), flows);
        EXPECT_EQ(joins_of(g), joins);
        for (const IpAddress& s : {s1, s2, s3, s4}) {
            const bool listed = std::count(row.sources.begin(), row.sources.end(), s) > 0;
            EXPECT_EQ(sink.receivers(s, g).count(gw4) == 1, include == listed) << s.to_string();
        }
    }
}

// Checklist §8.6, §2.8 (leaves): BLOCK is an immediate leave: exactly the flow's deletion and the
// upstream leave, nothing else.
TEST_F(RelayRecords, BlockIsImmediateLeave) {
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1, s2}}}));
    sink.clear_events();
    cycle(gw4, report({{RecordType::block_old_sources, ssm4, {s1}}}));
    ASSERT_EQ(sink.edits.size(), 1u);
    EXPECT_EQ(sink.edits[0].op, FlowOp::delete_flow);
    EXPECT_EQ(sink.edits[0].key, (FlowKey{s1, ssm4}));
    ASSERT_EQ(sink.upstream_events.size(), 1u);
    EXPECT_EQ(sink.upstream_events[0], std::make_pair(FlowKey{s1, ssm4}, false));
    EXPECT_EQ(sink.receivers(s2, ssm4), Tunnels{gw4});
}

// Checklist §4.2 (old versions): an IGMPv2 Report is IS_EX{} (an ASM join), its Leave TO_IN{}.
TEST_F(RelayRecords, Igmpv2ReportJoinsAndLeaveLeaves) {
    cycle(gw4, v1v2(ReportKind::igmpv2_report, asm4));
    EXPECT_EQ(sink.receivers(s1, asm4), Tunnels{gw4});
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{any_source(asm4), asm4}}));
    cycle(gw4, v1v2(ReportKind::igmpv2_leave, asm4));
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
    EXPECT_EQ(endpoints(), 0u);
}

// Checklist §4.2 (old versions): an MLDv1 Report is IS_EX{}, its Done TO_IN{}.
TEST_F(RelayRecords, Mldv1ReportJoinsAndDoneLeaves) {
    cycle(gw6, v1v2(ReportKind::mldv1_report, asm6), relay6);
    EXPECT_EQ(sink.receivers(s6a, asm6), Tunnels{gw6});
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{any_source(asm6), asm6}}));
    cycle(gw6, v1v2(ReportKind::mldv1_done, asm6), relay6);
    EXPECT_TRUE(sink.table.empty());
    EXPECT_TRUE(sink.joined.empty());
}

// Checklist §4.2 (3376 §7.3.2): in v2/v1 compatibility BLOCK is ignored and TO_EX's source list
// is dropped.
TEST_F(RelayRecords, CompatibilityModeIgnoresBlockAndToExSources) {
    cycle(gw4, v1v2(ReportKind::igmpv2_report, asm4));
    cycle(gw4, report({{RecordType::block_old_sources, asm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, asm4), Tunnels{gw4}) << "BLOCK ignored";
    cycle(gw4, report({{RecordType::change_to_exclude, asm4, {s2}}}));
    const std::optional<GroupMembership> m = membership(gw4, asm4);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->mode, FilterMode::exclude);
    EXPECT_TRUE(m->sources.empty());
    EXPECT_EQ(sink.receivers(s1, asm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s2, asm4), Tunnels{gw4});
}

// Checklist §4.1, §6 item 15: records of unknown type (0, 7) are skipped, the others applied;
// a group repeated in one report and duplicate sources are handled.
TEST_F(RelayRecords, UnknownRecordTypesSkippedDuplicatesHandled) {
    cycle(gw4, report({{static_cast<RecordType>(0), ssm4b, {s1}},
                       {RecordType::allow_new_sources, ssm4, {s1, s1, s2}},
                       {static_cast<RecordType>(7), ssm4b, {s1}},
                       {RecordType::block_old_sources, ssm4, {s2, s2}}}));
    EXPECT_EQ(dropped(DropReason::unknown_record_type), 2u);
    const std::optional<GroupMembership> m = membership(gw4, ssm4);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->sources, std::vector<IpAddress>{s1});
    EXPECT_FALSE(membership(gw4, ssm4b).has_value());
}

// Checklist §4.3, §6 item 16: records for non-multicast or link-local groups are ignored
// (bad_group_address); bad sources are dropped from a record whose other sources apply (the
// record counts once).
TEST_F(RelayRecords, BadGroupAndSourceAddressesIgnored) {
    cycle(gw4, report({{RecordType::allow_new_sources, ip("224.0.0.5"), {s1}},
                       {RecordType::allow_new_sources, ip("10.1.1.1"), {s1}},
                       {RecordType::allow_new_sources,
                        ssm4,
                        {ip("0.0.0.0"), ip("224.1.1.1"), ip("255.255.255.255"), ip("127.0.0.1"),
                         ip("169.254.1.1"), s1}}}));
    cycle(gw4, report({{RecordType::allow_new_sources, ip("ff02::5"), {s6a}},
                       {RecordType::allow_new_sources, ip("ff01::5"), {s6a}}}));
    EXPECT_EQ(dropped(DropReason::bad_group_address), 4u);
    EXPECT_EQ(dropped(DropReason::bad_source_address), 1u) << "once per record, not per source";
    EXPECT_EQ(membership(gw4, ssm4)->sources, std::vector<IpAddress>{s1});
    EXPECT_EQ(sink.table.size(), 1u);
}

// =============================================================================================
// §4.3 SSM and ASM

// Checklist §4.3, §6 item 17: IS_EX and TO_EX for SSM groups (232/8, ff3x::/32) are ignored
// (ssm_exclude_ignored); an existing SSM INCLUDE state is left as it is; no (*,G) is ever joined.
TEST_F(RelaySsm, ExcludeRecordsForSsmIgnored) {
    cycle(gw4, report({{RecordType::mode_is_exclude, ssm4, {}},
                       {RecordType::change_to_exclude, ssm4b, {s1}}}));
    cycle(gw4, report({{RecordType::mode_is_exclude, ssm6, {}},
                       {RecordType::change_to_exclude, ip("ff35::1"), {s6a}}}));
    EXPECT_EQ(dropped(DropReason::ssm_exclude_ignored), 4u);
    EXPECT_EQ(endpoints(), 0u);
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    cycle(gw4, report({{RecordType::change_to_exclude, ssm4, {}}}));
    EXPECT_EQ(membership(gw4, ssm4)->mode, FilterMode::include);
    EXPECT_EQ(sink.joined, (std::set<FlowKey>{{s1, ssm4}}));
    EXPECT_TRUE(sink.receivers(s2, ssm4).empty());
}

// Checklist §4.3, §6 item 17: IGMPv2 Report/Leave and MLDv1 Report/Done for SSM groups are
// ignored (ssm_v1v2_ignored), also from an endpoint with SSM state.
TEST_F(RelaySsm, V1V2MessagesForSsmIgnored) {
    cycle(gw4, v1v2(ReportKind::igmpv2_report, ssm4));
    cycle(gw4, v1v2(ReportKind::mldv1_report, ssm6));
    EXPECT_EQ(dropped(DropReason::ssm_v1v2_ignored), 2u);
    EXPECT_EQ(endpoints(), 0u);
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    cycle(gw4, report({{RecordType::allow_new_sources, ssm6, {s6a}}}));
    cycle(gw4, v1v2(ReportKind::igmpv2_leave, ssm4));
    cycle(gw4, v1v2(ReportKind::mldv1_done, ssm6));
    EXPECT_EQ(dropped(DropReason::ssm_v1v2_ignored), 4u);
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
    EXPECT_EQ(sink.receivers(s6a, ssm6), Tunnels{gw4});
}

// Checklist §4.3, §8.5: with asm_enabled = false, records and v2/v1 messages for non-SSM groups
// create no state (asm_disabled); SSM still works.
TEST_F(RelaySsm, AsmDisabled) {
    config.asm_enabled = false;
    cycle(gw4, report({{RecordType::allow_new_sources, asm4, {s1}},
                       {RecordType::change_to_exclude, asm4b, {}}}));
    cycle(gw4, v1v2(ReportKind::igmpv2_report, asm4c));
    cycle(gw6, v1v2(ReportKind::mldv1_report, asm6), relay6);
    EXPECT_EQ(dropped(DropReason::asm_disabled), 4u);
    EXPECT_EQ(endpoints(), 0u);
    EXPECT_TRUE(sink.edits.empty());
    cycle(gw4, report({{RecordType::allow_new_sources, ssm4, {s1}}}));
    EXPECT_EQ(sink.receivers(s1, ssm4), Tunnels{gw4});
}

// Checklist §2.6 ("EXCLUDE: don't forward excluded sources"), membership_db.hpp: an endpoint in
// EXCLUDE{S1} creates an empty (S1,G) flow, so S1 does not fall through to (*,G); INCLUDE and other
// EXCLUDE endpoints join it as they come and go.
TEST_F(RelaySsm, ExcludeEndpointCreatesEmptySourceFlow) {
    const UdpEndpoint a = gw4, b = gw4b, c = ep("198.51.100.30", 40000);
    const FlowKey star{any_source(asm4), asm4}, s1g{s1, asm4};
    cycle(a, report({{RecordType::change_to_exclude, asm4, {s1}}}));
    EXPECT_EQ(flows_of(asm4), (std::map<FlowKey, Tunnels>{{star, {a}}, {s1g, {}}}));
    EXPECT_TRUE(sink.receivers(s1, asm4).empty());
    EXPECT_EQ(sink.receivers(s2, asm4), Tunnels{a});
    EXPECT_EQ(joins_of(asm4), std::set<FlowKey>{star});

    cycle(b, report({{RecordType::allow_new_sources, asm4, {s1}}}));
    EXPECT_EQ(flows_of(asm4), (std::map<FlowKey, Tunnels>{{star, {a}}, {s1g, {b}}}));
    EXPECT_EQ(joins_of(asm4), (std::set<FlowKey>{star, s1g}));

    cycle(c, report({{RecordType::change_to_exclude, asm4, {}}}));
    EXPECT_EQ(flows_of(asm4), (std::map<FlowKey, Tunnels>{{star, {a, c}}, {s1g, {b, c}}}));

    cycle(a, report({{RecordType::change_to_include, asm4, {}}}));
    EXPECT_EQ(flows_of(asm4), (std::map<FlowKey, Tunnels>{{star, {c}}, {s1g, {b, c}}}));

    cycle(b, report({{RecordType::block_old_sources, asm4, {s1}}}));
    EXPECT_EQ(flows_of(asm4), (std::map<FlowKey, Tunnels>{{star, {c}}}));
    EXPECT_EQ(sink.receivers(s1, asm4), Tunnels{c});
    EXPECT_EQ(joins_of(asm4), std::set<FlowKey>{star});
}

// =============================================================================================
// Configuration (§2.4, §2.5, §2.8, §8): validate() names the offending key.

namespace {
EngineConfig valid_config() {
    EngineConfig c;
    c.relay_addresses = {relay4.ip};
    return c;
}

void expect_names_key(const EngineConfig& c, const std::string& key) {
    const std::string message = validate(c);
    EXPECT_NE(message.find(key), std::string::npos) << "\"" << message << "\" lacks " << key;
}
}  // namespace

// Checklist §8: the defaults with a relay address are a valid configuration.
TEST(EngineConfigValidate, DefaultsWithRelayAddressAreValid) {
    EXPECT_EQ(validate(valid_config()), "");
    EngineConfig c = valid_config();
    c.secret_rotation = Seconds{7200};
    c.query_interval = Seconds{127};
    c.membership_timeout = Seconds{128};
    EXPECT_EQ(validate(c), "") << "the limits themselves are allowed";
}

// Checklist §2.5 (QQIC < 128, read raw by VLC and Linux).
TEST(EngineConfigValidate, QueryIntervalOf128Rejected) {
    EngineConfig c = valid_config();
    c.query_interval = Seconds{128};
    c.membership_timeout = Seconds{400};
    expect_names_key(c, "query_interval");
    c.query_interval = Seconds{0};
    expect_names_key(c, "query_interval");
}

// Checklist §2.8: the membership timeout must exceed the advertised QI.
TEST(EngineConfigValidate, MembershipTimeoutNotAboveQueryIntervalRejected) {
    EngineConfig c = valid_config();
    c.membership_timeout = c.query_interval;
    expect_names_key(c, "membership_timeout");
    c.membership_timeout = Seconds{60};
    expect_names_key(c, "membership_timeout");
}

// Checklist §2.4 (rotate at most every 2 h).
TEST(EngineConfigValidate, SecretRotationAbove2hRejected) {
    EngineConfig c = valid_config();
    c.secret_rotation = Seconds{7201};
    expect_names_key(c, "secret_rotation");
}

// Checklist §2.2 (a unicast relay address to advertise).
TEST(EngineConfigValidate, EmptyOrNonUnicastRelayAddressesRejected) {
    EngineConfig c = valid_config();
    c.relay_addresses.clear();
    expect_names_key(c, "relay_addresses");
    c.relay_addresses = {ip("224.0.0.1")};
    expect_names_key(c, "relay_addresses");
}

// Checklist §2.5 (QRV non-zero).
TEST(EngineConfigValidate, ZeroRobustnessRejected) {
    EngineConfig c = valid_config();
    c.robustness = 0;
    expect_names_key(c, "robustness");
}
