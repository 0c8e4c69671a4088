// The XDP steering program on fixture packets (Katran style): each frame runs once through
// BPF_PROG_TEST_RUN and must end in exactly one counter. The xsks_map is empty here, so a
// steered packet comes back as XDP_PASS (bpf_redirect_map's fallback) and also counts
// no_socket: the counters, not the return code, tell steered from passed.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <string>
#include <vector>

#include "dataplane/xdp_steering.hpp"

namespace amt {
namespace {

using Bytes = std::vector<uint8_t>;

enum class Verdict { amt, multicast, igmp_mld, pass, malformed, fragment, other_vlan };

const char* name(Verdict v) {
    switch (v) {
        case Verdict::amt:
            return "steered_amt";
        case Verdict::multicast:
            return "steered_multicast";
        case Verdict::igmp_mld:
            return "steered_igmp_mld";
        case Verdict::pass:
            return "passed";
        case Verdict::malformed:
            return "passed_malformed";
        case Verdict::fragment:
            return "passed_fragment";
        case Verdict::other_vlan:
            return "passed_other_vlan";
    }
    return "?";
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

Bytes addr(const char* text) {
    const auto a = IpAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return a ? Bytes(a->wire().begin(), a->wire().end()) : Bytes(4);
}

struct Tag {
    uint16_t tpid;
    uint16_t vid;
};

Bytes ethernet(uint16_t type, std::initializer_list<Tag> tags = {}) {
    Bytes b = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    for (const Tag& t : tags) {
        b.insert(b.end(),
                 {uint8_t(t.tpid >> 8), uint8_t(t.tpid), uint8_t(t.vid >> 8), uint8_t(t.vid)});
    }
    b.insert(b.end(), {uint8_t(type >> 8), uint8_t(type)});
    return b;
}

Bytes udp(uint16_t dport, Bytes payload = Bytes(12, 0xab)) {
    const size_t len = 8 + payload.size();
    return cat(
        {{0x9c, 0x40, uint8_t(dport >> 8), uint8_t(dport), uint8_t(len >> 8), uint8_t(len), 0, 0},
         payload});
}

// flags_offset: the 16-bit flags/fragment-offset field (0x2000 = MF, low 13 bits = offset/8).
Bytes ipv4(const char* src, const char* dst, uint8_t proto, const Bytes& payload,
           const Bytes& options = {}, uint16_t flags_offset = 0, uint8_t version = 4) {
    const size_t ihl = 20 + options.size();
    const size_t total = ihl + payload.size();
    Bytes h = {uint8_t(version << 4 | ihl / 4),
               0,
               uint8_t(total >> 8),
               uint8_t(total),
               0x12,
               0x34,
               uint8_t(flags_offset >> 8),
               uint8_t(flags_offset),
               8,
               proto,
               0,
               0};
    return cat({h, addr(src), addr(dst), options, payload});
}

Bytes ipv6(const char* src, const char* dst, uint8_t next, const Bytes& payload) {
    Bytes h = {0x60, 0, 0, 0, uint8_t(payload.size() >> 8), uint8_t(payload.size()), next, 8};
    return cat({h, addr(src), addr(dst), payload});
}

// A Hop-by-Hop, Routing or Destination Options header of (units + 1) * 8 octets.
Bytes ext(uint8_t next, uint8_t units = 0) {
    Bytes h((units + 1u) * 8u, 0);
    h[0] = next;
    h[1] = units;
    return h;
}

Bytes frag6(uint8_t next, uint16_t offset_units, bool more) {
    const uint16_t v = uint16_t(offset_units << 3 | (more ? 1 : 0));
    return {next, 0, uint8_t(v >> 8), uint8_t(v), 0, 0, 0, 1};
}

constexpr uint16_t eth_ipv4 = 0x0800, eth_ipv6 = 0x86dd, eth_arp = 0x0806;
constexpr uint16_t qinq = 0x88a8, dot1q = 0x8100;
constexpr uint8_t p_hbh = 0, p_icmp = 1, p_igmp = 2, p_tcp = 6, p_udp = 17, p_routing = 43,
                  p_frag = 44, p_icmp6 = 58, p_dstopts = 60;
const Bytes router_alert = {0x94, 0x04, 0, 0};

Bytes amt4(const char* dst, uint16_t port = 2268) {
    return cat({ethernet(eth_ipv4), ipv4("198.51.100.9", dst, p_udp, udp(port))});
}
Bytes mcast4(const char* group) {
    return cat({ethernet(eth_ipv4), ipv4("198.51.100.7", group, p_udp, udp(5000))});
}
Bytes amt6(const char* dst) {
    return cat({ethernet(eth_ipv6), ipv6("2001:db8:9::9", dst, p_udp, udp(2268))});
}
Bytes mcast6(const char* group) {
    return cat({ethernet(eth_ipv6), ipv6("2001:db8:7::7", group, p_udp, udp(5000))});
}

class SteeringTest : public ::testing::Test {
  protected:
    void SetUp() override {
        setup_.object_path = AMT_STEER_OBJECT;
        setup_.pin_root.clear();
        setup_.addresses = {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::1"),
                            *IpAddress::parse("192.52.193.1"), *IpAddress::parse("2001:3::1")};
        setup_.multicast_ranges = AfXdpConfig::default_ranges();
        xdp_ = std::make_unique<XdpSteering>(setup_);
    }

    // Runs the frame once; returns the one counter that moved (fails the test otherwise).
    void expect(const Bytes& frame, Verdict want, const std::string& what) {
        SCOPED_TRACE(what);
        const XdpCounters before = xdp_->counters();
        Bytes out(frame.size() + 256);
        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<uint32_t>(frame.size());
        opts.data_out = out.data();
        opts.data_size_out = static_cast<uint32_t>(out.size());
        opts.repeat = 1;
        ASSERT_EQ(bpf_prog_test_run_opts(xdp_->program_fd(), &opts), 0) << "test run failed";
        // Empty xsks_map: a steered packet also falls back to XDP_PASS.
        EXPECT_EQ(opts.retval, uint32_t{XDP_PASS});
        const XdpCounters after = xdp_->counters();
        const uint64_t moved[] = {after.steered_amt - before.steered_amt,
                                  after.steered_multicast - before.steered_multicast,
                                  after.steered_igmp_mld - before.steered_igmp_mld,
                                  after.passed - before.passed,
                                  after.passed_malformed - before.passed_malformed,
                                  after.passed_fragment - before.passed_fragment,
                                  after.passed_other_vlan - before.passed_other_vlan};
        std::string got;
        for (int i = 0; i < 7; ++i) {
            if (moved[i] != 0)
                got += std::string(got.empty() ? "" : "+") + name(static_cast<Verdict>(i));
        }
        EXPECT_EQ(got, name(want));
        const bool steered =
            want == Verdict::amt || want == Verdict::multicast || want == Verdict::igmp_mld;
        EXPECT_EQ(after.no_socket - before.no_socket, steered ? 1u : 0u) << "no_socket";
    }

    XdpSteeringSetup setup_;
    std::unique_ptr<XdpSteering> xdp_;
};

TEST_F(SteeringTest, AmtToRelayAndDiscoveryAddresses) {
    expect(amt4("192.0.2.1"), Verdict::amt, "AMT to the relay address");
    expect(amt4("192.52.193.1"), Verdict::amt, "AMT to the discovery anycast address");
    expect(amt4("192.0.2.99"), Verdict::pass, "AMT to another address");
    expect(amt4("192.0.2.1", 53), Verdict::pass, "UDP/53 to the relay address");
    expect(amt4("192.0.2.1", 2269), Verdict::pass, "UDP/2269 to the relay address");
    expect(amt6("2001:db8::1"), Verdict::amt, "AMT over IPv6 to the relay address");
    expect(amt6("2001:3::1"), Verdict::amt, "AMT over IPv6 to the discovery address");
    expect(amt6("2001:db8::2"), Verdict::pass, "AMT over IPv6 to another address");
}

TEST_F(SteeringTest, KernelTrafficPasses) {
    Bytes arp = cat({ethernet(eth_arp),
                     {0, 1, 8, 0, 6, 4, 0, 1},
                     Bytes(6, 2),
                     addr("192.0.2.2"),
                     Bytes(6, 0),
                     addr("192.0.2.1")});
    expect(arp, Verdict::pass, "ARP request for the relay address");
    const Bytes echo = {8, 0, 0, 0, 0, 1, 0, 1};
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.2", "192.0.2.1", p_icmp, echo)}), Verdict::pass,
           "ICMP echo");
    const Bytes syn = {0xc0, 0, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.2", "192.0.2.1", p_tcp, syn)}), Verdict::pass,
           "TCP/22");
    Bytes ns = {135, 0, 0, 0, 0, 0, 0, 0};
    ns = cat({ns, addr("2001:db8::1")});
    expect(cat({ethernet(eth_ipv6), ipv6("2001:db8::2", "ff02::1:ff00:1", p_icmp6, ns)}),
           Verdict::pass, "IPv6 Neighbor Solicitation");
    expect(cat({ethernet(0x88cc), Bytes(46, 0)}), Verdict::pass, "LLDP");
}

TEST_F(SteeringTest, MulticastInRangesButNotLinkLocal) {
    expect(mcast4("232.1.1.1"), Verdict::multicast, "SSM group");
    expect(mcast4("239.255.0.1"), Verdict::multicast, "ASM group");
    expect(mcast4("224.0.1.1"), Verdict::multicast, "224.0.1.1 (not link-local)");
    expect(mcast4("224.0.0.251"), Verdict::pass, "mDNS, link-local");
    expect(mcast6("ff3e::8000:1"), Verdict::multicast, "IPv6 SSM, global scope");
    expect(mcast6("ff05::1:3"), Verdict::multicast, "IPv6 site-local scope");
    expect(mcast6("ff02::fb"), Verdict::pass, "IPv6 link-local scope");
    expect(mcast6("ff01::1"), Verdict::pass, "IPv6 interface-local scope");
    expect(mcast6("ff00::1"), Verdict::pass, "IPv6 reserved scope 0");
    const Bytes syn(20, 0);
    expect(cat({ethernet(eth_ipv4), ipv4("198.51.100.7", "232.1.1.1", p_tcp, syn)}), Verdict::pass,
           "non-UDP to a group");

    xdp_->configure(setup_.addresses, {*MulticastRange::parse("232.0.0.0/8")}, 0);
    expect(mcast4("232.1.1.1"), Verdict::multicast, "SSM group, 232/8 configured");
    expect(mcast4("239.255.0.1"), Verdict::pass, "ASM group outside 232/8");
    expect(mcast6("ff3e::8000:1"), Verdict::pass, "IPv6 group, no IPv6 range configured");
    expect(amt4("192.0.2.1"), Verdict::amt, "addresses survive a reconfiguration");
}

TEST_F(SteeringTest, IgmpAndMldQueriesReachTheRelay) {
    const Bytes query = {0x11, 100, 0, 0, 0, 0, 0, 0, 0x02, 125, 0, 0};
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.254", "224.0.0.1", p_igmp, query, router_alert)}),
           Verdict::igmp_mld, "IGMPv3 general query with Router Alert");
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.254", "232.1.1.1", p_igmp, query)}),
           Verdict::igmp_mld, "group-specific query without options");
    const Bytes report = {0x22, 0, 0, 0, 0, 0, 0, 0};
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.9", "224.0.0.22", p_igmp, report, router_alert)}),
           Verdict::pass, "IGMPv3 report of another host");
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.254", "192.0.2.1", p_igmp, query)}),
           Verdict::pass, "IGMP to a unicast address");

    Bytes mld_query(28, 0);
    mld_query[0] = 130;
    Bytes hbh = ext(p_icmp6);
    hbh[2] = 5;  // Router Alert option
    hbh[3] = 2;
    expect(cat({ethernet(eth_ipv6), ipv6("fe80::1", "ff02::1", p_hbh, cat({hbh, mld_query}))}),
           Verdict::igmp_mld, "MLDv2 query after Hop-by-Hop");
    expect(cat({ethernet(eth_ipv6), ipv6("fe80::1", "ff02::1", p_icmp6, mld_query)}),
           Verdict::igmp_mld, "MLD query without Hop-by-Hop");
    Bytes mld_report = mld_query;
    mld_report[0] = 143;
    expect(cat({ethernet(eth_ipv6), ipv6("fe80::9", "ff02::16", p_hbh, cat({hbh, mld_report}))}),
           Verdict::pass, "MLDv2 report of another host");
    mld_report[0] = 132;
    expect(cat({ethernet(eth_ipv6), ipv6("fe80::9", "ff02::2", p_hbh, cat({hbh, mld_report}))}),
           Verdict::pass, "MLDv1 Done");
}

TEST_F(SteeringTest, TruncatedAtEveryOctetIsNeverSteered) {
    struct Case {
        const char* what;
        Bytes frame;
        Verdict full;
    };
    Bytes mld_query(28, 0);
    mld_query[0] = 130;
    const Case cases[] = {
        {"IPv4 AMT", amt4("192.0.2.1"), Verdict::amt},
        {"IPv4 AMT with options",
         cat({ethernet(eth_ipv4),
              ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268), Bytes(12, 1))}),
         Verdict::amt},
        {"IPv4 multicast", mcast4("232.1.1.1"), Verdict::multicast},
        {"IPv6 AMT", amt6("2001:db8::1"), Verdict::amt},
        {"IPv6 multicast after Hop-by-Hop and Destination Options",
         cat({ethernet(eth_ipv6), ipv6("2001:db8:7::7", "ff3e::1", p_hbh,
                                       cat({ext(p_dstopts), ext(p_udp, 1), udp(5000)}))}),
         Verdict::multicast},
        {"MLD query after Hop-by-Hop",
         cat({ethernet(eth_ipv6),
              ipv6("fe80::1", "ff02::1", p_hbh, cat({ext(p_icmp6), mld_query}))}),
         Verdict::igmp_mld},
        {"QinQ AMT",
         cat({ethernet(eth_ipv4, {{qinq, 0}, {dot1q, 0}}),
              ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268))}),
         Verdict::amt},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        expect(c.frame, c.full, "whole frame");
        // The last header ends 12 octets before the end (UDP payload / MLD body): every
        // shorter frame lacks part of a header the decision needs. BPF_PROG_TEST_RUN needs 14.
        const size_t needed = c.frame.size() - (c.full == Verdict::igmp_mld ? 27 : 12);
        for (size_t len = 14; len < needed; ++len) {
            expect(Bytes(c.frame.begin(), c.frame.begin() + static_cast<long>(len)),
                   Verdict::malformed, "truncated to " + std::to_string(len));
        }
    }
}

TEST_F(SteeringTest, Ipv4HeaderLengthAndOptions) {
    const Bytes options40(40, 1);  // IHL 15, the maximum
    expect(
        cat({ethernet(eth_ipv4), ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268), options40)}),
        Verdict::amt, "AMT after 40 octets of options");
    Bytes short_ihl = amt4("192.0.2.1");
    short_ihl[14] = 0x44;  // IHL 4
    expect(short_ihl, Verdict::malformed, "IHL below 5");
    Bytes options_cut = amt4("192.0.2.1");
    options_cut[14] = 0x4f;  // IHL 15 over a 20-octet header and 20 octets of UDP
    expect(options_cut, Verdict::malformed, "options longer than the frame");
    expect(cat({ethernet(eth_ipv4), ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268), {}, 0, 5)}),
           Verdict::malformed, "IP version 5");
    Bytes v6_in_v4 = amt6("2001:db8::1");
    v6_in_v4[12] = 0x08;
    v6_in_v4[13] = 0x00;
    expect(v6_in_v4, Verdict::malformed, "IPv6 header behind the IPv4 ethertype");
}

TEST_F(SteeringTest, Ipv6ExtensionHeaders) {
    auto mc = [](uint8_t first, const Bytes& chain) {
        return cat({ethernet(eth_ipv6), ipv6("2001:db8:7::7", "ff3e::1", first, chain)});
    };
    expect(mc(p_hbh, cat({ext(p_routing), ext(p_dstopts, 2), ext(p_udp), udp(5000)})),
           Verdict::multicast, "Hop-by-Hop, Routing, Destination Options");
    expect(mc(p_hbh, cat({ext(p_dstopts), ext(p_routing), ext(p_dstopts), ext(p_hbh), ext(p_udp),
                          udp(5000)})),
           Verdict::pass, "five extension headers: longer than the walk");
    expect(mc(p_hbh, cat({ext(p_tcp), Bytes(20, 0)})), Verdict::pass, "TCP after Hop-by-Hop");
    Bytes huge = ext(p_udp, 200);  // claims 1608 octets, the frame has 8 + 20
    huge.resize(8);
    expect(mc(p_hbh, cat({huge, udp(5000)})), Verdict::malformed,
           "extension header longer than the frame");
    expect(cat({ethernet(eth_ipv6),
                ipv6("2001:db8:9::9", "2001:db8::1", p_hbh, cat({ext(p_udp), udp(2268)}))}),
           Verdict::pass,
           "unicast AMT behind Hop-by-Hop (the relay reads UDP only right after "
           "the fixed header)");
}

TEST_F(SteeringTest, VlanTags) {
    const Bytes inner = ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268));
    expect(cat({ethernet(eth_ipv4, {{dot1q, 100}}), inner}), Verdict::other_vlan,
           "802.1Q tag, relay untagged");
    expect(cat({ethernet(eth_ipv4, {{dot1q, 0}}), inner}), Verdict::amt,
           "priority tag (VLAN 0), relay untagged");
    xdp_->configure(setup_.addresses, setup_.multicast_ranges, 100);
    expect(cat({ethernet(eth_ipv4, {{dot1q, 100}}), inner}), Verdict::amt, "802.1Q VLAN 100");
    expect(cat({ethernet(eth_ipv4, {{dot1q, 101}}), inner}), Verdict::other_vlan,
           "802.1Q VLAN 101");
    expect(cat({ethernet(eth_ipv4), inner}), Verdict::other_vlan, "untagged, relay on VLAN 100");
    expect(cat({ethernet(eth_ipv4, {{qinq, 7}, {dot1q, 100}}), inner}), Verdict::amt,
           "QinQ, inner VLAN 100");
    expect(cat({ethernet(eth_ipv6, {{qinq, 7}, {dot1q, 100}}),
                ipv6("2001:db8:7::7", "ff3e::1", p_udp, udp(5000))}),
           Verdict::multicast, "QinQ IPv6 multicast");
    expect(cat({ethernet(eth_ipv4, {{qinq, 7}, {dot1q, 8}, {dot1q, 100}}), inner}),
           Verdict::other_vlan, "three tags");
    expect(cat({ethernet(dot1q), Bytes{0x00}}), Verdict::malformed, "tag cut short");
}

TEST_F(SteeringTest, Fragments) {
    const Bytes payload = udp(5000, Bytes(64, 0xcd));
    const Bytes tail(64, 0xcd);
    expect(cat({ethernet(eth_ipv4), ipv4("198.51.100.7", "232.1.1.1", p_udp, payload, {}, 0x2000)}),
           Verdict::multicast, "first fragment of a multicast datagram");
    expect(cat({ethernet(eth_ipv4), ipv4("198.51.100.7", "232.1.1.1", p_udp, tail, {}, 9)}),
           Verdict::multicast, "last fragment of a multicast datagram (no UDP header)");
    expect(cat({ethernet(eth_ipv4),
                ipv4("198.51.100.7", "232.1.1.1", p_udp, Bytes(3, 0), {}, 0x2000 | 9)}),
           Verdict::multicast, "middle fragment shorter than a UDP header");
    expect(
        cat({ethernet(eth_ipv4), ipv4("198.51.100.9", "192.0.2.1", p_udp, udp(2268), {}, 0x2000)}),
        Verdict::fragment, "first fragment to the relay address");
    expect(cat({ethernet(eth_ipv4), ipv4("198.51.100.9", "192.0.2.1", p_udp, tail, {}, 9)}),
           Verdict::fragment, "non-first fragment to the relay address");
    const Bytes query = {0x11, 100, 0, 0, 0, 0, 0, 0};
    expect(cat({ethernet(eth_ipv4), ipv4("192.0.2.254", "224.0.0.1", p_igmp, query, {}, 0x2000)}),
           Verdict::fragment, "fragmented IGMP");

    auto mc6 = [](const Bytes& chain) {
        return cat({ethernet(eth_ipv6), ipv6("2001:db8:7::7", "ff3e::1", p_frag, chain)});
    };
    expect(mc6(cat({frag6(p_udp, 0, true), payload})), Verdict::multicast, "IPv6 first fragment");
    expect(mc6(cat({frag6(p_udp, 9, false), tail})), Verdict::multicast, "IPv6 non-first fragment");
    expect(mc6(cat({frag6(p_icmp6, 9, false), tail})), Verdict::fragment,
           "IPv6 non-first fragment of ICMPv6");
    expect(cat({ethernet(eth_ipv6), ipv6("2001:db8:9::9", "2001:db8::1", p_frag,
                                         cat({frag6(p_udp, 0, true), udp(2268)}))}),
           Verdict::fragment, "IPv6 fragment to the relay address");
}

TEST(MulticastRange, Parse) {
    EXPECT_TRUE(MulticastRange::parse("232.0.0.0/8"));
    EXPECT_TRUE(MulticastRange::parse("ff3e::/16"));
    EXPECT_EQ(MulticastRange::parse("224.0.0.0/4")->to_string(), "224.0.0.0/4");
    EXPECT_FALSE(MulticastRange::parse("10.0.0.0/8"));
    EXPECT_FALSE(MulticastRange::parse("224.0.0.0/3"));
    EXPECT_FALSE(MulticastRange::parse("232.0.0.0/33"));
    EXPECT_FALSE(MulticastRange::parse("232.0.0.0"));
    EXPECT_FALSE(MulticastRange::parse("232.0.0.0/x"));
    EXPECT_FALSE(MulticastRange::parse("ff00::/7"));
}

}  // namespace
}  // namespace amt
