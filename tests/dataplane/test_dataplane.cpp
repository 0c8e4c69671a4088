// Dataplane behaviour through real DPDK ports (rte_ring-backed ethdevs): frames go in through a
// port's RX ring, the workers and the control thread run, frames come out of its TX rings.
#include <gtest/gtest.h>

#include <set>

#include "common/checksum.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress S2 = *IpAddress::parse("198.51.100.8");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");
const IpAddress ASM_G = *IpAddress::parse("239.1.2.3");
const IpAddress S6 = *IpAddress::parse("2001:db8:5::7");
const IpAddress G6 = *IpAddress::parse("ff3e::8000:1");

UdpEndpoint gw6(int i) {
    auto a = *IpAddress::parse("2001:db8:9::100");
    uint8_t raw[16];
    std::memcpy(raw, a.canonical16().data(), 16);
    raw[15] = static_cast<uint8_t>(i);
    return {IpAddress::v6_from_bytes(raw), static_cast<uint16_t>(41000 + i)};
}

// The inner packet the relay must encapsulate: the original IP datagram with TTL one lower.
Frame expected_inner(const Frame& native) {
    Frame ip(native.begin() + ethernet_header_size, native.end());
    if ((ip[0] >> 4) == 4) {
        const uint16_t old_word = load_be16(&ip[8]);
        ip[8]--;
        store_be16(&ip[10], checksum_update16(load_be16(&ip[10]), old_word, load_be16(&ip[8])));
    } else {
        ip[7]--;
    }
    return ip;
}

// Checks one replica: addresses, ports, checksums (verified by the parser), AMT Data framing.
void expect_replica(const Frame& f, const TestRelay& relay, const UdpEndpoint& from,
                    const UdpEndpoint& to, const Frame& inner) {
    const Received r = parse_frame(f);
    ASSERT_TRUE(r.ok) << "replica does not parse (bad length or checksum)";
    EXPECT_EQ(r.eth.dst, gateway_mac);
    EXPECT_EQ(r.eth.src, const_cast<TestRelay&>(relay).relay_mac());
    EXPECT_EQ(r.udp.src, from);
    EXPECT_EQ(r.udp.dst, to);
    MulticastData d;
    ASSERT_EQ(parse_multicast_data(r.udp.payload, d), ParseError::ok);
    EXPECT_EQ(Frame(d.packet.begin(), d.packet.end()), inner);
    const uint8_t* ip = f.data() + ethernet_header_size;
    if (from.ip.is_v4()) {
        EXPECT_EQ(ip[6] & 0x40, 0x40) << "outer DF";
        EXPECT_EQ(ip[8], 64) << "outer TTL";
    } else {
        EXPECT_EQ(ip[7], 64) << "outer hop limit";
    }
}

std::vector<Frame> sent_data(TestRelay& relay) {
    std::vector<Frame> out;
    for (Frame& f : relay.nic().sent()) {
        const Received r = parse_frame(f);
        MessageType t;
        if (r.ok && peek_message_type(r.udp.payload, t) == ParseError::ok &&
            t == MessageType::multicast_data) {
            out.push_back(std::move(f));
        }
    }
    return out;
}

class Replication : public testing::TestWithParam<size_t> {};

}  // namespace

// Chained (large) and copied (small) replicas are byte-exact for N gateways.
TEST_P(Replication, ToEveryJoinedGatewayByteExact) {
    static int instance = 0;
    TestRelay relay("rep" + std::to_string(instance++));
    constexpr int gateways = 5;
    for (int i = 0; i < gateways; ++i) {
        ASSERT_TRUE(relay.join(gw(i), relay.relay_v4(),
                               TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    }
    relay.nic().sent();
    const Frame native = multicast_frame(S1, G1, GetParam(), 8, 0xb8);
    relay.nic().inject(native);
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), static_cast<size_t>(gateways));
    const Frame inner = expected_inner(native);
    std::set<UdpEndpoint> seen;
    for (const Frame& f : out) {
        const Received r = parse_frame(f);
        seen.insert(r.udp.dst);
        expect_replica(f, relay, relay.relay_v4(), r.udp.dst, inner);
        EXPECT_EQ(f[ethernet_header_size + 1], 0xb8) << "outer DSCP/ECN copied from the inner";
    }
    for (int i = 0; i < gateways; ++i)
        EXPECT_EQ(seen.count(gw(i)), 1u) << i;
    EXPECT_EQ(relay.dp().worker(0).counters().replicas.value(), static_cast<uint64_t>(gateways));
}

INSTANTIATE_TEST_SUITE_P(PayloadSizes, Replication, testing::Values(16, 64, 512, 1316));

TEST(Dataplane, SsmSourceFiltering) {
    TestRelay relay("ssm");
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S2, G1, 100));  // (S2,G) was never joined
    relay.nic().inject(multicast_frame(S1, G1, 100));
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), 1u);
    const Received r = parse_frame(out[0]);
    MulticastData d;
    ASSERT_EQ(parse_multicast_data(r.udp.payload, d), ParseError::ok);
    EXPECT_EQ(IpAddress::v4_from_bytes(d.packet.data() + 12), S1);
    EXPECT_EQ(relay.dp()
                  .worker(0)
                  .counters()
                  .dropped[static_cast<size_t>(DataplaneDrop::no_flow)]
                  .value(),
              1u);
}

TEST(Dataplane, AnySourceGroupAndExcludedSource) {
    TestRelay relay("asm");
    // gw1: (*,G) EXCLUDE{}; gw2: EXCLUDE{S1}
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_exclude, ASM_G, {})));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_exclude, ASM_G, {S1})));
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S2, ASM_G, 100));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 2u) << "S2 goes to both";
    relay.nic().inject(multicast_frame(S1, ASM_G, 100));
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), 1u) << "S1 is blocked by gw2";
    EXPECT_EQ(parse_frame(out[0]).udp.dst, gw(1));
}

TEST(Dataplane, AllFourFamilyCombinations) {
    TestRelay relay("fam");
    const Frame v4_native = multicast_frame(S1, G1, 300);
    const Frame v6_native = multicast_frame(S6, G6, 300);
    // outer v4/inner v4, outer v4/inner v6, outer v6/inner v4, outer v6/inner v6
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G6, {S6})));
    ASSERT_TRUE(relay.join(gw6(3), relay.relay_v6(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    ASSERT_TRUE(relay.join(gw6(4), relay.relay_v6(),
                           TestRelay::report(RecordType::allow_new_sources, G6, {S6})));
    relay.nic().sent();
    relay.nic().inject(v4_native);
    relay.nic().inject(v6_native);
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), 4u);
    for (const Frame& f : out) {
        const Received r = parse_frame(f);
        if (r.udp.dst == gw(1))
            expect_replica(f, relay, relay.relay_v4(), gw(1), expected_inner(v4_native));
        else if (r.udp.dst == gw(2))
            expect_replica(f, relay, relay.relay_v4(), gw(2), expected_inner(v6_native));
        else if (r.udp.dst == gw6(3))
            expect_replica(f, relay, relay.relay_v6(), gw6(3), expected_inner(v4_native));
        else if (r.udp.dst == gw6(4))
            expect_replica(f, relay, relay.relay_v6(), gw6(4), expected_inner(v6_native));
        else
            ADD_FAILURE() << "replica to an unknown gateway " << r.udp.dst.to_string();
    }
}

TEST(Dataplane, TtlOfOneIsNotForwarded) {
    TestRelay relay("ttl");
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, G1, 100, 1));
    relay.nic().inject(multicast_frame(S1, G1, 100, 2));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 1u);
    EXPECT_EQ(relay.dp()
                  .worker(0)
                  .counters()
                  .dropped[static_cast<size_t>(DataplaneDrop::ttl_expired)]
                  .value(),
              1u);
}

TEST(Dataplane, LinkLocalGroupsAreNeverForwarded) {
    EngineConfig engine = TestRelay::default_engine();
    TestRelay relay("linklocal", 1, engine, true);
    relay.nic().inject(multicast_frame(S1, *IpAddress::parse("224.0.0.5"), 60));
    relay.nic().inject(multicast_frame(S6, *IpAddress::parse("ff02::5"), 60));
    relay.step();
    EXPECT_TRUE(sent_data(relay).empty());
    EXPECT_EQ(relay.tap()->sent().size(), 2u) << "handed to the kernel instead";
}

// Checklist §2.10: DF=1 (and IPv6) over the tunnel MTU → not sent, one ICMP to an SSM source.
TEST(Dataplane, OversizedDfPacketGetsOneIcmpToTheSsmSource) {
    DataplaneConfig overrides;
    overrides.pmtu = 1000;
    TestRelay relay("mtu", 1, TestRelay::default_engine(), false, overrides);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G6, {S6})));
    relay.nic().sent();
    const size_t fits = 1000 - 30 - 28;  // tunnel MTU 970 = IP 20 + UDP 8 + payload
    relay.nic().inject(multicast_frame(S1, G1, fits, 8, 0, true));
    const Frame big = multicast_frame(S1, G1, fits + 1, 8, 0, true);
    relay.nic().inject(big);
    relay.nic().inject(multicast_frame(S6, G6, 1000 - 30 - 48 + 1));  // IPv6 inner, too big
    relay.step();
    std::vector<Frame> out = relay.nic().sent();
    size_t data = 0;
    std::vector<Frame> icmp;
    for (Frame& f : out) {
        const Received r = parse_frame(f);
        if (r.ok)
            ++data;
        else
            icmp.push_back(f);
    }
    EXPECT_EQ(data, 1u);
    EXPECT_EQ(relay.dp()
                  .worker(0)
                  .counters()
                  .dropped[static_cast<size_t>(DataplaneDrop::too_big)]
                  .value(),
              2u);
    ASSERT_EQ(icmp.size(), 2u) << "one ICMP per too-big packet";
    // IPv4: Fragmentation Needed, next-hop MTU = tunnel MTU, quoting the original header.
    const Frame& v4 = icmp[0][12] == 0x08 ? icmp[0] : icmp[1];
    const Frame& v6 = icmp[0][12] == 0x08 ? icmp[1] : icmp[0];
    EXPECT_TRUE(std::equal(router_mac.begin(), router_mac.end(), v4.begin()));
    const uint8_t* ip = v4.data() + 14;
    EXPECT_EQ(ip[9], ip_proto_icmp);
    EXPECT_EQ(IpAddress::v4_from_bytes(ip + 12), relay.relay_v4().ip);
    EXPECT_EQ(IpAddress::v4_from_bytes(ip + 16), S1);
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(ip, 20))));
    const uint8_t* icmp4 = ip + 20;
    EXPECT_EQ(icmp4[0], 3);
    EXPECT_EQ(icmp4[1], 4);
    EXPECT_EQ(load_be16(icmp4 + 6), 970);
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(icmp4, v4.size() - 34))));
    EXPECT_TRUE(std::equal(icmp4 + 8 + 12, icmp4 + 8 + 20, big.begin() + 14 + 12))
        << "quotes the header";
    // IPv6 inner: Packet Too Big.
    const uint8_t* ip6 = v6.data() + 14;
    EXPECT_EQ(ip6[6], ip_proto_icmpv6);
    EXPECT_EQ(ip6[40], 2);
    EXPECT_EQ(load_be32(ip6 + 44), 970u) << "IPv4 outer: 1000 - 30 whatever the inner family";
    EXPECT_EQ(IpAddress::v6_from_bytes(ip6 + 24), S6);
    const uint32_t pseudo = pseudo_header_sum(relay.relay_v6().ip, S6, 58, load_be16(ip6 + 4));
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(ip6 + 40, load_be16(ip6 + 4)), pseudo)));
}

// Checklist §2.10: an inner IPv4 DF=0 packet over the tunnel MTU is fragmented, then encapsulated.
TEST(Dataplane, OversizedDfZeroPacketIsFragmented) {
    DataplaneConfig overrides;
    overrides.pmtu = 1000;
    TestRelay relay("frag", 1, TestRelay::default_engine(), false, overrides);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();
    const Frame native = multicast_frame(S1, G1, 2500, 8, 0, false);
    relay.nic().inject(native);
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), 3u) << "2508 octets of UDP in 968-octet pieces";
    const Frame inner = expected_inner(native);
    Frame reassembled(inner.begin(), inner.begin() + 20);
    size_t expected_offset = 0;
    for (size_t i = 0; i < out.size(); ++i) {
        const Received r = parse_frame(out[i]);
        ASSERT_TRUE(r.ok);
        MulticastData d;
        ASSERT_EQ(parse_multicast_data(r.udp.payload, d), ParseError::ok);
        EXPECT_LE(d.packet.size(), 970u);
        EXPECT_TRUE(checksum_verifies(checksum_add(d.packet.first(20))))
            << "fragment header checksum";
        const uint16_t flags = load_be16(d.packet.data() + 6);
        EXPECT_EQ((flags & 0x1fff) * 8u, expected_offset);
        EXPECT_EQ((flags & 0x2000) != 0, i + 1 < out.size()) << "MF on all but the last";
        reassembled.insert(reassembled.end(), d.packet.begin() + 20, d.packet.end());
        expected_offset += d.packet.size() - 20;
    }
    EXPECT_TRUE(
        std::equal(reassembled.begin() + 20, reassembled.end(), inner.begin() + 20, inner.end()));
    EXPECT_EQ(relay.dp().worker(0).counters().fragments.value(), 3u);
}

TEST(Dataplane, DiscoveryAndRequestAnsweredByTheWorker) {
    TestRelay relay("hs");
    uint8_t disc[8];
    build_discovery(disc, {.nonce = 77});
    const UdpEndpoint anycast{*IpAddress::parse("192.52.193.1"), amt_udp_port};
    relay.nic().inject(udp_frame(relay.relay_mac(), router_mac, gw(1), anycast, ByteView(disc)));
    relay.step(1);
    std::vector<Frame> out = relay.nic().sent();
    ASSERT_EQ(out.size(), 1u);
    Received r = parse_frame(out[0]);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.eth.dst, router_mac) << "reply goes back to the MAC it came from";
    EXPECT_EQ(r.udp.src, anycast) << "from the anycast address it was sent to";
    EXPECT_EQ(r.udp.dst, gw(1));
    Advertisement adv;
    ASSERT_EQ(parse_advertisement(r.udp.payload, adv), ParseError::ok);
    EXPECT_EQ(adv.nonce, 77u);
    EXPECT_EQ(adv.relay, relay.relay_v4().ip);
    EXPECT_EQ(relay.dp().control().engine().counters().received[1].value(), 0u)
        << "not the control thread";
}

TEST(Dataplane, UpdateThroughTheControlRingCreatesForwardingState) {
    TestRelay relay("ring");
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    EXPECT_EQ(relay.dp().worker(0).counters().control_to_ring.value(), 1u);
    EXPECT_EQ(relay.dp().control().engine().memberships().endpoint_count(), 1u);
    EXPECT_EQ(relay.dp().flows().size(), 1u);
    // Leave: the flow goes away after publication.
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::block_old_sources, G1, {S1})));
    EXPECT_EQ(relay.dp().flows().size(), 0u);
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, G1, 100));
    relay.step();
    EXPECT_TRUE(sent_data(relay).empty());
}

TEST(Dataplane, ArpForTheRelayAddressIsAnswered) {
    TestRelay relay("arp", 1, TestRelay::default_engine(), true);
    const MacAddress broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const IpAddress asker = *IpAddress::parse("192.0.2.2");
    relay.nic().inject(arp_frame(1, router_mac, asker, broadcast, relay.relay_v4().ip));
    // Someone else's address: not ours, to the kernel.
    relay.nic().inject(arp_frame(1, router_mac, asker, broadcast, *IpAddress::parse("192.0.2.99")));
    relay.step(1);
    std::vector<Frame> out = relay.nic().sent();
    ASSERT_EQ(out.size(), 1u);
    const Frame& reply = out[0];
    EXPECT_TRUE(std::equal(router_mac.begin(), router_mac.end(), reply.begin()));
    EXPECT_EQ(load_be16(reply.data() + 14 + 6), 2) << "ARP reply";
    EXPECT_TRUE(
        std::equal(reply.begin() + 14 + 8, reply.begin() + 14 + 14, relay.relay_mac().begin()));
    EXPECT_EQ(load_be32(reply.data() + 14 + 14), relay.relay_v4().ip.v4_value());
    EXPECT_EQ(load_be32(reply.data() + 14 + 24), 0xc0000202u);
    EXPECT_EQ(relay.tap()->sent().size(), 1u);
}

TEST(Dataplane, NeighborSolicitationForTheRelayAddressIsAnswered) {
    TestRelay relay("nd");
    const IpAddress asker = *IpAddress::parse("2001:db8::2");
    Frame f(14 + 40 + 32);
    build_ethernet(f, {0x33, 0x33, 0xff, 0, 0, 1}, router_mac, ethertype_ipv6);
    uint8_t sn[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1};
    write_ipv6_header(MutByteView(f).subspan(14), {.payload_length = 32,
                                                   .next_header = 58,
                                                   .hop_limit = 255,
                                                   .src = asker,
                                                   .dst = IpAddress::v6_from_bytes(sn)});
    uint8_t* ns = f.data() + 54;
    ns[0] = 135;
    std::memcpy(ns + 8, relay.relay_v6().ip.canonical16().data(), 16);
    ns[24] = 1;
    ns[25] = 1;
    std::memcpy(ns + 26, router_mac.data(), 6);
    const uint32_t pseudo = pseudo_header_sum(asker, IpAddress::v6_from_bytes(sn), 58, 32);
    store_be16(ns + 2, checksum_finish(checksum_add(ByteView(ns, 32), pseudo)));
    relay.nic().inject(f);
    relay.step(1);
    std::vector<Frame> out = relay.nic().sent();
    ASSERT_EQ(out.size(), 1u);
    const Frame& na = out[0];
    EXPECT_TRUE(std::equal(router_mac.begin(), router_mac.end(), na.begin()));
    EXPECT_EQ(na[54], 136) << "Neighbor Advertisement";
    EXPECT_EQ(IpAddress::v6_from_bytes(na.data() + 54 + 8), relay.relay_v6().ip);
    const uint32_t sum = pseudo_header_sum(relay.relay_v6().ip, asker, 58, 32);
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(na.data() + 54, 32), sum)));
    EXPECT_TRUE(std::equal(na.begin() + 54 + 26, na.begin() + 54 + 32, relay.relay_mac().begin()));
}

TEST(Dataplane, NonAmtTrafficReachesTheExceptionPortAndBack) {
    TestRelay relay("tap", 1, TestRelay::default_engine(), true);
    uint8_t payload[4] = {1, 2, 3, 4};
    const Frame ssh = udp_frame(relay.relay_mac(), router_mac, gw(1), {relay.relay_v4().ip, 22},
                                ByteView(payload));
    relay.nic().inject(ssh);
    relay.step(1);
    std::vector<Frame> to_kernel = relay.tap()->sent();
    ASSERT_EQ(to_kernel.size(), 1u);
    EXPECT_EQ(to_kernel[0], ssh);
    EXPECT_TRUE(relay.nic().sent().empty());
    // And the kernel's answer leaves through the NIC.
    relay.tap()->inject(ssh);
    relay.step(1);
    std::vector<Frame> out = relay.nic().sent();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], ssh);
}

// Next hops configured by IP are resolved with ARP / ND; nothing is sent toward an unknown MAC,
// and the tunnels switch to the learned MAC once the next hop answers.
TEST(Dataplane, NextHopsAreResolvedWithArpAndNd) {
    DataplaneConfig overrides;
    overrides.next_hop_v4 = *IpAddress::parse("192.0.2.254");
    overrides.next_hop_v6 = *IpAddress::parse("2001:db8::fe");
    TestRelay relay("nh", 1, TestRelay::default_engine(), false, overrides);
    relay.advance(std::chrono::seconds(2));
    relay.step(1);
    std::vector<Frame> asked = relay.nic().sent();
    ASSERT_EQ(asked.size(), 2u) << "one ARP request and one Neighbor Solicitation";
    const Frame& arp = asked[0][12] == 0x08 ? asked[0] : asked[1];
    const Frame& ns = asked[0][12] == 0x08 ? asked[1] : asked[0];
    EXPECT_EQ(load_be16(arp.data() + 12), ethertype_arp);
    EXPECT_EQ(load_be16(arp.data() + 14 + 6), 1) << "request";
    EXPECT_EQ(load_be32(arp.data() + 14 + 24), 0xc00002feu) << "for the next hop";
    EXPECT_EQ(ns[54], 135);
    EXPECT_EQ(IpAddress::v6_from_bytes(ns.data() + 54 + 8), *overrides.next_hop_v6);
    const uint32_t pseudo = pseudo_header_sum(IpAddress::v6_from_bytes(ns.data() + 22),
                                              IpAddress::v6_from_bytes(ns.data() + 38), 58, 32);
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(ns.data() + 54, 32), pseudo)));

    // A join before resolution: the flow exists but nothing is sent yet.
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, G1, 100));
    relay.step();
    EXPECT_TRUE(sent_data(relay).empty());

    // The next hop answers (ARP reply); replicas now go to its MAC.
    const MacAddress hop_mac{0x02, 0, 0, 0, 0, 0xfe};
    relay.nic().inject(
        arp_frame(2, hop_mac, *overrides.next_hop_v4, relay.relay_mac(), relay.relay_v4().ip));
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, G1, 100));
    relay.step();
    std::vector<Frame> out = sent_data(relay);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(std::equal(hop_mac.begin(), hop_mac.end(), out[0].begin()));
}

namespace {
// The IGMPv3 / MLDv2 reports among `frames` (views into them: keep `frames` alive).
std::vector<MembershipReport> reports_in(const std::vector<Frame>& frames) {
    std::vector<MembershipReport> out;
    for (const Frame& f : frames) {
        EthernetHeader eth;
        if (parse_ethernet(f, eth) != ParseError::ok) continue;
        MembershipReport r;
        if (parse_membership_report(ByteView(f).subspan(eth.size), r) == ParseError::ok)
            out.push_back(r);
    }
    return out;
}
}  // namespace

// Two ports: native multicast in on the upstream port, replicas out of the downstream one; the
// upstream proxy joins (S,G) with an IGMPv3 report out of the upstream port and answers the
// router's general query there.
// net_af_xdp on an interface with one channel: one TX queue per worker, so the control thread
// sends on the last worker's queue under a lock.
TEST(Dataplane, ControlThreadSharesTheLastWorkersTxQueueWhenThePortHasNoSpare) {
    {
        TestRelay spare("sparetx");  // one relay at a time: the mempools have fixed names
        EXPECT_FALSE(spare.dp().control_shares_tx_queue());
    }

    DataplaneConfig overrides;
    overrides.upstream_addresses = {*IpAddress::parse("10.0.1.2")};
    TestRelay relay("sharedtx", 1, TestRelay::default_engine(), false, overrides, false, 1);
    EXPECT_TRUE(relay.dp().control_shares_tx_queue());
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    const std::vector<Frame> out = relay.nic().sent();
    EXPECT_EQ(reports_in(out).size(), 1u) << "the control thread's report left on the shared queue";
    relay.nic().inject(multicast_frame(S1, G1, 500));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 1u);
}

TEST(Dataplane, SeparateUpstreamPortJoinsAndAnswersQueries) {
    DataplaneConfig overrides;
    overrides.upstream_addresses = {*IpAddress::parse("10.0.1.2")};
    TestRelay relay("twoport", 1, TestRelay::default_engine(), false, overrides, true);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    std::vector<Frame> up = relay.upstream().sent();
    std::vector<MembershipReport> reports = reports_in(up);
    ASSERT_EQ(reports.size(), 1u) << "one state-change report toward the router";
    EXPECT_EQ(reports[0].inner_src, *IpAddress::parse("10.0.1.2"));
    GroupRecord rec;
    auto it = reports[0].records();
    ASSERT_TRUE(it.next(rec));
    EXPECT_EQ(rec.type, static_cast<uint8_t>(RecordType::allow_new_sources));
    EXPECT_EQ(rec.group, G1);
    ASSERT_EQ(rec.num_sources, 1);
    EXPECT_EQ(rec.source(0), S1);
    EXPECT_TRUE(
        std::equal(relay.upstream_mac().begin(), relay.upstream_mac().end(), up[0].begin() + 6));
    const MacAddress igmpv3_mac{0x01, 0x00, 0x5e, 0, 0, 0x16};
    EXPECT_TRUE(std::equal(igmpv3_mac.begin(), igmpv3_mac.end(), up[0].begin()));

    // The stream arrives upstream and leaves downstream.
    relay.nic().sent();
    relay.upstream().inject(multicast_frame(S1, G1, 500));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 1u);

    // The router's general query is answered upstream with the current state.
    Frame query(14 + igmpv3_general_query_size);
    build_ethernet(query, {0x01, 0x00, 0x5e, 0, 0, 1}, router_mac, ethertype_ipv4);
    build_igmpv3_general_query(MutByteView(query).subspan(14),
                               {.robustness = 2, .qqic = 10, .max_resp_code = 0});
    relay.upstream().inject(query);
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    const std::vector<Frame> answers = relay.upstream().sent();  // the reports point into these
    reports = reports_in(answers);
    bool answered = false;
    for (const MembershipReport& r : reports) {
        auto records = r.records();
        while (records.next(rec)) {
            if (rec.type == static_cast<uint8_t>(RecordType::mode_is_include) && rec.group == G1)
                answered = true;
        }
    }
    EXPECT_TRUE(answered) << "IS_IN{S1} for G1 in answer to the general query";
    EXPECT_TRUE(relay.dp().control().upstream().joined({S1, G1}));
}

namespace {
uint64_t dataplane_drops(TestRelay& relay, DataplaneDrop reason) {
    return relay.dp().worker(0).counters().dropped[static_cast<size_t>(reason)].value();
}
}  // namespace

// Issue 18 item 1: native multicast put onto the gateways' segment (spoofed S for (S,G), or
// none needed for (*,G)) must not reach joined gateways when the sources have a port of their
// own; it is counted as multicast_from_downstream.
TEST(Dataplane, NativeMulticastFromTheGatewaysPortIsRefusedWhenThereIsAnUpstreamPort) {
    TestRelay relay("mcdown", 1, TestRelay::default_engine(), false, {}, true);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    ASSERT_TRUE(relay.join(gw(2), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_exclude, ASM_G, {})));
    ASSERT_TRUE(relay.join(gw6(3), relay.relay_v6(),
                           TestRelay::report(RecordType::allow_new_sources, G6, {S6})));
    relay.nic().sent();
    Frame unicast_mac = multicast_frame(S1, G1, 200);
    std::copy(relay.relay_mac().begin(), relay.relay_mac().end(), unicast_mac.begin());
    relay.nic().inject(unicast_mac);                      // the relay's own MAC
    relay.nic().inject(multicast_frame(S1, G1, 200));     // a multicast MAC
    relay.nic().inject(multicast_frame(S2, ASM_G, 200));  // (*,G): any source
    relay.nic().inject(multicast_frame(S6, G6, 200));     // IPv6
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 0u) << "nothing from the gateways' side is replicated";
    EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::multicast_from_downstream), 4u);

    relay.upstream().inject(multicast_frame(S1, G1, 200));
    relay.upstream().inject(multicast_frame(S2, ASM_G, 200));
    relay.upstream().inject(multicast_frame(S6, G6, 200));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 3u) << "the upstream port's streams still flow";
    EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::multicast_from_downstream), 4u);
}

// One port for gateways and sources: native multicast only from upstream.source_prefixes, and
// from nobody when none are configured (default to safe).
TEST(Dataplane, OnePortAcceptsNativeMulticastOnlyFromTheConfiguredSourcePrefixes) {
    {
        DataplaneConfig overrides;
        overrides.upstream_source_prefixes = {*IpPrefix::parse("198.51.100.4/30")};  // .4-.7
        TestRelay relay("mcprefix", 1, TestRelay::default_engine(), false, overrides);
        ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                               TestRelay::report(RecordType::allow_new_sources, G1, {S1, S2})));
        ASSERT_TRUE(relay.join(gw6(2), relay.relay_v6(),
                               TestRelay::report(RecordType::allow_new_sources, G6, {S6})));
        relay.nic().sent();
        relay.nic().inject(multicast_frame(S1, G1, 200));  // 198.51.100.7: listed
        relay.nic().inject(multicast_frame(S2, G1, 200));  // 198.51.100.8: not
        relay.nic().inject(multicast_frame(S6, G6, 200));  // no IPv6 prefix listed
        relay.step();
        const std::vector<Frame> out = sent_data(relay);
        ASSERT_EQ(out.size(), 1u);
        MulticastData d;
        ASSERT_EQ(parse_multicast_data(parse_frame(out[0]).udp.payload, d), ParseError::ok);
        EXPECT_EQ(IpAddress::v4_from_bytes(d.packet.data() + 12), S1);
        EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::multicast_source_not_allowed), 2u);
    }
    TestRelay relay("mcnone", 1, TestRelay::default_engine(), false, {}, false, 0, false);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::change_to_exclude, ASM_G, {})));
    relay.nic().sent();
    relay.nic().inject(multicast_frame(S1, ASM_G, 200));
    relay.step();
    EXPECT_EQ(sent_data(relay).size(), 0u) << "one port, no source_prefixes: nothing accepted";
    EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::multicast_source_not_allowed), 1u);
}

namespace {
// A router's IGMPv3 general query from `querier` (the codec writes 0.0.0.0; the test sets it).
Frame general_query_from(const IpAddress& querier) {
    Frame query(ethernet_header_size + igmpv3_general_query_size);
    build_ethernet(query, {0x01, 0x00, 0x5e, 0, 0, 1}, router_mac, ethertype_ipv4);
    build_igmpv3_general_query(MutByteView(query).subspan(ethernet_header_size),
                               {.robustness = 2, .qqic = 10, .max_resp_code = 0});
    uint8_t* ip = query.data() + ethernet_header_size;
    std::memcpy(ip + 12, querier.wire().data(), 4);
    store_be16(ip + 10, 0);
    store_be16(ip + 10, checksum_finish(checksum_add(ByteView(ip, 24))));
    return query;
}

// Whether the relay's reports in `frames` answer for (G1) after a general query.
size_t answers_for_g1(const std::vector<Frame>& frames) {
    size_t n = 0;
    for (const MembershipReport& r : reports_in(frames)) {
        auto records = r.records();
        GroupRecord rec;
        while (records.next(rec))
            n += rec.type == static_cast<uint8_t>(RecordType::mode_is_include) && rec.group == G1;
    }
    return n;
}
}  // namespace

// Issue 18 item 3: only the upstream link's queriers count. Queries sent on the gateways' port
// drew reports upstream (1,000 queries, 52 reports).
TEST(Dataplane, QueriesFromTheGatewaysPortAreNotAnsweredWhenThereIsAnUpstreamPort) {
    TestRelay relay("qdown", 1, TestRelay::default_engine(), false, {}, true);
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.upstream().sent();
    relay.nic().inject(general_query_from(*IpAddress::parse("203.0.113.5")));
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    EXPECT_EQ(answers_for_g1(relay.upstream().sent()), 0u);
    EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::query_from_downstream), 1u);

    relay.upstream().inject(general_query_from(*IpAddress::parse("10.0.1.1")));
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    EXPECT_EQ(answers_for_g1(relay.upstream().sent()), 1u) << "the upstream querier is answered";
}

// Issue 18, item 5: a malformed query from the upstream querier was dropped without a count.
TEST(Dataplane, MalformedUpstreamQueryIsCountedOnceUnderItsReason) {
    TestRelay relay("qbad");
    const auto drops = [&](std::string_view reason) {
        uint64_t n = 0;
        for (const DropCount& d : drop_counts(relay.dp()))
            n += reason.empty() || d.reason == reason ? d.value : 0;
        return n;
    };
    Frame query = general_query_from(*IpAddress::parse("198.51.100.1"));
    query[ethernet_header_size + 24 + 2] ^= 0xff;  // the IGMP checksum
    relay.nic().inject(query);
    relay.step();
    EXPECT_EQ(drops("igmp_bad_checksum"), 1u);
    EXPECT_EQ(drops(""), 1u) << "one drop, one reason";
}

// One port: a query counts only from a querier in upstream.source_prefixes.
TEST(Dataplane, OnePortAnswersQueriesOnlyFromTheConfiguredPrefixes) {
    TestRelay relay("qprefix");  // the harness lists 198.51.100.0/24 and 2001:db8:5::/48
    ASSERT_TRUE(relay.join(gw(1), relay.relay_v4(),
                           TestRelay::report(RecordType::allow_new_sources, G1, {S1})));
    relay.nic().sent();
    relay.nic().inject(general_query_from(*IpAddress::parse("203.0.113.5")));  // gateway side
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    EXPECT_EQ(answers_for_g1(relay.nic().sent()), 0u);
    EXPECT_EQ(dataplane_drops(relay, DataplaneDrop::query_source_not_allowed), 1u);

    relay.nic().inject(general_query_from(*IpAddress::parse("198.51.100.1")));
    relay.step();
    relay.advance(std::chrono::milliseconds(200));
    relay.step();
    EXPECT_EQ(answers_for_g1(relay.nic().sent()), 1u);
}
