// Gateways on the relay's own link (issue 18, item 9): with downstream.prefixes, a gateway there
// gets its replicas at its own MAC, resolved with ARP / ND and kept fresh like the kernel's
// neighbour table; nothing is sent to it while unresolved; gateways elsewhere still go to the
// router's MAC.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/checksum.hpp"
#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");
const IpAddress S6 = *IpAddress::parse("2001:db8:5::7");
const IpAddress G6 = *IpAddress::parse("ff3e::8000:1");
const UdpEndpoint lan_a{*IpAddress::parse("192.0.2.10"), 40010};
const UdpEndpoint lan_b{*IpAddress::parse("192.0.2.11"), 40011};
const UdpEndpoint lan6_a{*IpAddress::parse("2001:db8::10"), 41010};
const UdpEndpoint lan6_b{*IpAddress::parse("2001:db8::11"), 41011};
const UdpEndpoint far6{*IpAddress::parse("2001:db8:9::101"), 41101};
const MacAddress mac_a{0x02, 0, 0, 0, 0x0a, 0x0a};
const MacAddress mac_b{0x02, 0, 0, 0, 0x0b, 0x0b};
const MacAddress mac_a2{0x02, 0, 0, 0, 0x0a, 0x02};
const MacAddress broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

DataplaneConfig on_link(uint32_t max_neighbors = 1024) {
    DataplaneConfig c;
    c.downstream_prefixes = {*IpPrefix::parse("192.0.2.0/24"), *IpPrefix::parse("2001:db8::/64")};
    c.max_neighbors = max_neighbors;
    return c;
}

MacAddress mac_at(const Frame& f, size_t offset) {
    MacAddress m;
    std::memcpy(m.data(), f.data() + offset, 6);
    return m;
}

struct Sent {
    std::map<UdpEndpoint, MacAddress> data;  // replica destination → its Ethernet destination
    std::vector<Frame> arp;                  // ARP requests
    std::vector<Frame> ns;                   // Neighbor Solicitations
};

Sent sent(TestRelay& relay) {
    Sent s;
    for (Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        MessageType t;
        if (r.ok && peek_message_type(r.udp.payload, t) == ParseError::ok &&
            t == MessageType::multicast_data) {
            EXPECT_EQ(s.data.count(r.udp.dst), 0u) << "one replica per gateway";
            s.data[r.udp.dst] = r.eth.dst;
        } else if (load_be16(f.data() + 12) == ethertype_arp && load_be16(f.data() + 20) == 1) {
            s.arp.push_back(std::move(f));
        } else if (load_be16(f.data() + 12) == ethertype_ipv6 && f.size() >= 78 && f[54] == 135) {
            s.ns.push_back(std::move(f));
        }
    }
    return s;
}

// One multicast packet in; what left the relay.
Sent stream(TestRelay& relay, const IpAddress& source, const IpAddress& group) {
    relay.nic().sent();
    relay.nic().inject(multicast_frame(source, group, 200));
    relay.step();
    return sent(relay);
}

uint64_t unresolved_drops(TestRelay& relay) {
    return relay.dp()
        .worker(0)
        .counters()
        .dropped[static_cast<size_t>(DataplaneDrop::neighbor_unresolved)]
        .value();
}

std::optional<NeighborState> state_of(TestRelay& relay, const IpAddress& a) {
    return relay.dp().control().neighbors().state(a);
}

// Time passes on the relay's clock: the control thread's timers run.
void wait(TestRelay& relay, std::chrono::milliseconds t) {
    relay.advance(t);
    relay.step(1);
}

// Joins `gateway` to (S1,G1) or (S6,G6); the ARP / ND the relay sent for it are added to `asked`.
void join(TestRelay& relay, const UdpEndpoint& gateway, Sent* asked = nullptr) {
    const bool v6 = gateway.ip.is_v6();
    ASSERT_TRUE(
        relay.join(gateway, v6 ? relay.relay_v6() : relay.relay_v4(),
                   TestRelay::report(RecordType::allow_new_sources, v6 ? G6 : G1, {v6 ? S6 : S1})));
    Sent after = sent(relay);
    if (asked == nullptr) return;
    for (Frame& f : after.arp)
        asked->arp.push_back(std::move(f));
    for (Frame& f : after.ns)
        asked->ns.push_back(std::move(f));
}

// An ICMPv6 NS (135, Source Link-Layer Address) or NA (136, flags, Target Link-Layer Address).
Frame nd_frame(uint8_t type, const MacAddress& eth_dst, const MacAddress& mac, const IpAddress& src,
               const IpAddress& dst, const IpAddress& target, uint8_t flags) {
    Frame f(14 + 40 + 32);
    build_ethernet(f, eth_dst, mac, ethertype_ipv6);
    write_ipv6_header(
        MutByteView(f).subspan(14),
        {.payload_length = 32, .next_header = 58, .hop_limit = 255, .src = src, .dst = dst});
    uint8_t* icmp = f.data() + 54;
    icmp[0] = type;
    icmp[4] = flags;
    std::memcpy(icmp + 8, target.canonical16().data(), 16);
    icmp[24] = type == 135 ? 1 : 2;
    icmp[25] = 1;
    std::memcpy(icmp + 26, mac.data(), 6);
    const uint32_t pseudo = pseudo_header_sum(src, dst, 58, 32);
    store_be16(icmp + 2, checksum_finish(checksum_add(ByteView(icmp, 32), pseudo)));
    return f;
}

constexpr uint8_t na_solicited = 0x40;
constexpr uint8_t na_override = 0x20;
const IpAddress all_nodes = *IpAddress::parse("ff02::1");

}  // namespace

// Two gateways on the relay's subnet each get replicas at their own MAC once they answer ARP;
// until then nothing is sent to them (counted), while a gateway behind the router is served at
// the router's MAC throughout.
TEST(OnLinkGateways, EachGetsItsOwnMacAfterArpAndNothingBefore) {
    TestRelay relay("onlink4", 1, TestRelay::default_engine(), false, on_link());
    Sent asked;
    join(relay, lan_a, &asked);
    join(relay, lan_b, &asked);
    join(relay, gw(1), &asked);
    ASSERT_EQ(asked.arp.size(), 2u) << "one ARP request per on-link gateway, none for gw(1)";
    std::set<uint32_t> targets;
    for (const Frame& f : asked.arp) {
        EXPECT_EQ(mac_at(f, 0), broadcast);
        EXPECT_EQ(mac_at(f, 14 + 8), relay.relay_mac());
        EXPECT_EQ(load_be32(f.data() + 14 + 14), relay.relay_v4().ip.v4_value()) << "asked from";
        targets.insert(load_be32(f.data() + 14 + 24));
    }
    EXPECT_EQ(targets, (std::set<uint32_t>{lan_a.ip.v4_value(), lan_b.ip.v4_value()}));
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::incomplete);

    Sent before = stream(relay, S1, G1);
    EXPECT_EQ(before.data.size(), 1u) << "nothing toward an unresolved gateway";
    EXPECT_EQ(before.data[gw(1)], gateway_mac) << "off the prefixes: the router's MAC";
    EXPECT_EQ(unresolved_drops(relay), 2u);

    relay.nic().inject(arp_frame(2, mac_a, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.nic().inject(arp_frame(2, mac_b, lan_b.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::reachable);
    Sent after = stream(relay, S1, G1);
    ASSERT_EQ(after.data.size(), 3u);
    EXPECT_EQ(after.data[lan_a], mac_a);
    EXPECT_EQ(after.data[lan_b], mac_b);
    EXPECT_EQ(after.data[gw(1)], gateway_mac);
    EXPECT_EQ(unresolved_drops(relay), 2u);
}

// A gratuitous ARP moves the tunnel to the new MAC; ARP from on-link addresses without a tunnel
// creates nothing (spoofed packets cannot fill the table).
TEST(OnLinkGateways, GratuitousArpMovesTheTunnelAndStrangersCreateNoEntry) {
    TestRelay relay("onlinkgarp", 1, TestRelay::default_engine(), false, on_link());
    join(relay, lan_a);
    relay.nic().inject(arp_frame(2, mac_a, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    EXPECT_EQ(stream(relay, S1, G1).data[lan_a], mac_a);

    relay.nic().inject(arp_frame(1, mac_a2, lan_a.ip, broadcast, lan_a.ip));
    relay.step();
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::stale);
    EXPECT_EQ(stream(relay, S1, G1).data[lan_a], mac_a2) << "gratuitous ARP: the new MAC";

    for (int i = 20; i < 120; ++i) {
        const IpAddress stranger = IpAddress::v4(0xc0000200u + static_cast<uint32_t>(i));
        relay.nic().inject(arp_frame(2, mac_b, stranger, relay.relay_mac(), relay.relay_v4().ip));
        relay.nic().inject(arp_frame(1, mac_b, stranger, broadcast, stranger));
    }
    relay.step();
    EXPECT_EQ(relay.dp().control().neighbors().size(), 1u);
}

// Like the kernel: REACHABLE for 15..45 s, then STALE → DELAY (5 s) → PROBE (three unicast
// requests, a second apart) → FAILED; replicas stop on FAILED, the gateway is asked again
// (broadcast) and served again once it answers.
TEST(OnLinkGateways, EntriesGoStaleAreProbedFailAndRecover) {
    TestRelay relay("onlinktimers", 1, TestRelay::default_engine(), false, on_link());
    join(relay, lan_a);
    relay.nic().inject(arp_frame(2, mac_a, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    relay.nic().sent();

    wait(relay, std::chrono::seconds(46));
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::delay) << "stale and in use";
    EXPECT_TRUE(sent(relay).arp.empty()) << "DELAY waits before probing";
    wait(relay, std::chrono::seconds(5));
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::probe);
    Sent probe = sent(relay);
    ASSERT_EQ(probe.arp.size(), 1u);
    EXPECT_EQ(mac_at(probe.arp[0], 0), mac_a) << "a probe goes to the cached MAC";
    EXPECT_EQ(load_be32(probe.arp[0].data() + 14 + 24), lan_a.ip.v4_value());
    EXPECT_EQ(stream(relay, S1, G1).data[lan_a], mac_a) << "the cached MAC is used while probing";

    wait(relay, std::chrono::seconds(1));
    wait(relay, std::chrono::seconds(1));
    EXPECT_EQ(sent(relay).arp.size(), 2u) << "three unicast probes in all";
    wait(relay, std::chrono::seconds(1));
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::failed);
    const uint64_t drops = unresolved_drops(relay);
    EXPECT_TRUE(stream(relay, S1, G1).data.empty()) << "FAILED: nothing sent";
    EXPECT_EQ(unresolved_drops(relay), drops + 1);

    wait(relay, std::chrono::seconds(5));
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::incomplete);
    Sent again = sent(relay);
    ASSERT_EQ(again.arp.size(), 1u);
    EXPECT_EQ(mac_at(again.arp[0], 0), broadcast) << "asked on the link again";
    relay.nic().inject(arp_frame(2, mac_a2, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    EXPECT_EQ(stream(relay, S1, G1).data[lan_a], mac_a2);

    // A probe answered keeps the entry REACHABLE and the tunnel where it is.
    wait(relay, std::chrono::seconds(46));
    wait(relay, std::chrono::seconds(5));
    ASSERT_EQ(state_of(relay, lan_a.ip), NeighborState::probe);
    relay.nic().inject(arp_frame(2, mac_a2, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    EXPECT_EQ(state_of(relay, lan_a.ip), NeighborState::reachable);
}

// IPv6: Neighbor Solicitation to the solicited-node group, a solicited NA resolves, an
// unsolicited NA with Override moves the tunnel, one without Override does not.
TEST(OnLinkGateways, Ipv6NeighborDiscovery) {
    TestRelay relay("onlink6", 1, TestRelay::default_engine(), false, on_link());
    Sent asked;
    join(relay, lan6_a, &asked);
    join(relay, lan6_b, &asked);
    join(relay, far6, &asked);
    ASSERT_EQ(asked.ns.size(), 2u);
    for (const Frame& ns : asked.ns) {
        const IpAddress target = IpAddress::v6_from_bytes(ns.data() + 54 + 8);
        const auto& t = target.canonical16();
        EXPECT_EQ(mac_at(ns, 0), (MacAddress{0x33, 0x33, 0xff, t[13], t[14], t[15]}));
        uint8_t group[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]};
        EXPECT_EQ(IpAddress::v6_from_bytes(ns.data() + 38), IpAddress::v6_from_bytes(group));
        EXPECT_EQ(IpAddress::v6_from_bytes(ns.data() + 22), relay.relay_v6().ip);
        EXPECT_EQ(ns[21], 255) << "hop limit";
        EXPECT_TRUE(target == lan6_a.ip || target == lan6_b.ip);
    }
    Sent before = stream(relay, S6, G6);
    EXPECT_EQ(before.data.size(), 1u);
    EXPECT_EQ(before.data[far6], gateway_mac) << "off the prefixes: the router's MAC";

    relay.nic().inject(nd_frame(136, relay.relay_mac(), mac_a, lan6_a.ip, relay.relay_v6().ip,
                                lan6_a.ip, na_solicited | na_override));
    // lan6_b answers a Neighbor Solicitation of its own for the relay: its source address
    // option is learned (STALE), and the relay answers it.
    const auto& r = relay.relay_v6().ip.canonical16();
    uint8_t sn[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, r[13], r[14], r[15]};
    relay.nic().inject(nd_frame(135, {0x33, 0x33, 0xff, r[13], r[14], r[15]}, mac_b, lan6_b.ip,
                                IpAddress::v6_from_bytes(sn), relay.relay_v6().ip, 0));
    relay.step();
    EXPECT_EQ(state_of(relay, lan6_a.ip), NeighborState::reachable);
    EXPECT_EQ(state_of(relay, lan6_b.ip), NeighborState::stale);
    Sent after = stream(relay, S6, G6);
    ASSERT_EQ(after.data.size(), 3u);
    EXPECT_EQ(after.data[lan6_a], mac_a);
    EXPECT_EQ(after.data[lan6_b], mac_b);
    EXPECT_EQ(after.data[far6], gateway_mac);

    // Without Override a different MAC does not win (RFC 4861 §7.2.5); with it, it does.
    relay.nic().inject(
        nd_frame(136, {0x33, 0x33, 0, 0, 0, 1}, mac_a2, lan6_a.ip, all_nodes, lan6_a.ip, 0));
    relay.step();
    EXPECT_EQ(stream(relay, S6, G6).data[lan6_a], mac_a);
    EXPECT_EQ(state_of(relay, lan6_a.ip), NeighborState::stale);
    relay.nic().inject(nd_frame(136, {0x33, 0x33, 0, 0, 0, 1}, mac_a2, lan6_a.ip, all_nodes,
                                lan6_a.ip, na_override));
    relay.step();
    EXPECT_EQ(stream(relay, S6, G6).data[lan6_a], mac_a2);

    // The probe of an IPv6 neighbour is a unicast NS to its address and cached MAC.
    relay.nic().sent();
    wait(relay, std::chrono::seconds(5));
    wait(relay, std::chrono::seconds(5));
    Sent probes = sent(relay);
    bool probed_a = false;
    for (const Frame& ns : probes.ns) {
        if (IpAddress::v6_from_bytes(ns.data() + 54 + 8) != lan6_a.ip) continue;
        probed_a = true;
        EXPECT_EQ(mac_at(ns, 0), mac_a2);
        EXPECT_EQ(IpAddress::v6_from_bytes(ns.data() + 38), lan6_a.ip);
        const uint32_t pseudo = pseudo_header_sum(relay.relay_v6().ip, lan6_a.ip, 58, 32);
        EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(ns.data() + 54, 32), pseudo)));
    }
    EXPECT_TRUE(probed_a);
}

// The table is capped: a gateway beyond the cap waits (counted, nothing sent to it) until an
// entry is free; entries nobody uses go after gc_stale.
TEST(OnLinkGateways, TableIsCappedAndUnusedEntriesGo) {
    TestRelay relay("onlinkcap", 1, TestRelay::default_engine(), false, on_link(1));
    Sent asked;
    join(relay, lan_a, &asked);
    join(relay, lan_b, &asked);
    EXPECT_EQ(asked.arp.size(), 1u);
    EXPECT_EQ(relay.dp().control().neighbors().counters().table_full.value(), 1u);
    relay.nic().inject(arp_frame(2, mac_a, lan_a.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.nic().inject(arp_frame(2, mac_b, lan_b.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    Sent one = stream(relay, S1, G1);
    EXPECT_EQ(one.data.size(), 1u);
    EXPECT_EQ(one.data[lan_a], mac_a);

    // lan_a leaves: its entry is unused, so lan_b gets it and is asked.
    ASSERT_TRUE(relay.join(lan_a, relay.relay_v4(),
                           TestRelay::report(RecordType::block_old_sources, G1, {S1})));
    relay.nic().sent();
    wait(relay, std::chrono::milliseconds(200));
    Sent later = sent(relay);
    ASSERT_EQ(later.arp.size(), 1u);
    EXPECT_EQ(load_be32(later.arp[0].data() + 14 + 24), lan_b.ip.v4_value());
    relay.nic().inject(arp_frame(2, mac_b, lan_b.ip, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    EXPECT_EQ(stream(relay, S1, G1).data[lan_b], mac_b);

    // lan_b leaves too: the entry stays a while (STALE), then goes.
    ASSERT_TRUE(relay.join(lan_b, relay.relay_v4(),
                           TestRelay::report(RecordType::block_old_sources, G1, {S1})));
    wait(relay, std::chrono::seconds(46));
    EXPECT_EQ(state_of(relay, lan_b.ip), NeighborState::stale) << "unused: not probed";
    wait(relay, std::chrono::seconds(61));
    EXPECT_EQ(relay.dp().control().neighbors().size(), 0u);
}
