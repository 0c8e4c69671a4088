// The seven AMT messages of RFC 7450 §5.1 (checklist §1): byte-exact vectors written by hand from
// the layouts, random round trips, and the AMT-layer malformed inputs of checklist §6 items 1-5.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <ostream>
#include <random>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"
#include "common/amt_messages.hpp"
#include "common/igmp_mld.hpp"

using namespace amt;

namespace {

// Sum of the IPv6 pseudo-header for ICMPv6 (RFC 8200 §8.1), assembled octet by octet.
uint16_t ref_icmpv6_pseudo_sum(ByteView ipv6_header, uint32_t length) {
    Bytes ph(ipv6_header.begin() + 8, ipv6_header.begin() + 40);  // source, destination
    const Bytes tail = {static_cast<uint8_t>(length >> 24),
                        static_cast<uint8_t>(length >> 16),
                        static_cast<uint8_t>(length >> 8),
                        static_cast<uint8_t>(length),
                        0,
                        0,
                        0,
                        58};
    ph.insert(ph.end(), tail.begin(), tail.end());
    return ref_sum(ph);
}

uint16_t be16(ByteView v, size_t off) {
    return static_cast<uint16_t>((v[off] << 8) | v[off + 1]);
}

const ResponseMac kMac = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
constexpr uint32_t kNonce = 0xa1b2c3d4;

// ---- Hand-written vectors (checklist §1.1-§1.8) ----

// clang-format off

const Bytes kDiscovery = {0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78};

const Bytes kAdvertisementV4 = {
    0x02, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78,  // type, reserved, nonce
    0xc0, 0x34, 0xc1, 0x01,                          // 192.52.193.1
};

const Bytes kAdvertisementV6 = {
    0x02, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78,                                  // header
    0x20, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01,  // 2001:3::1
};

const Bytes kRequestP0 = {0x03, 0x00, 0x00, 0x00, 0x87, 0x65, 0x43, 0x21};
const Bytes kRequestP1 = {0x03, 0x01, 0x00, 0x00, 0x87, 0x65, 0x43, 0x21};

// IPv4 Query, L=0 G=0, QRV 2, QQIC 125, MRC 1: 48 octets.
const Bytes kQueryV4 = {
    0x04, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,  // type, MAC, nonce
    0x46, 0xc0, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x44, 0x13,  // IHL 6, TTL 1
    0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00,  // 0/0 -> 224.0.0.1, RA
    0x11, 0x01, 0xec, 0x81, 0x00, 0x00, 0x00, 0x00, 0x02, 0x7d, 0x00, 0x00,  // IGMPv3 query
};

// IPv4 Query, L=1 G=1, QRV 3, QQIC 60, MRC 100, gateway 198.51.100.7:50000: 66 octets.
const Bytes kQueryV4WithG = {
    0x04, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,  // L|G
    0x46, 0xc0, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x44, 0x13,
    0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00,
    0x11, 0x64, 0xeb, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x03, 0x3c, 0x00, 0x00,  // MRC 100, QRV 3
    0xc3, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // port, ::
    0x00, 0x00, 0xc6, 0x33, 0x64, 0x07,                                      // 198.51.100.7
};

// IPv6 Query, L=0 G=0, QRV 2, QQIC 125, MRC 1: 88 octets.
const Bytes kQueryV6 = {
    0x04, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01,  // payload 36, next header 0, hop limit 1
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // fe80::1
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,  // Hop-by-Hop: Router Alert, PadN
    0x82, 0x00, 0x7d, 0xa5, 0x00, 0x01, 0x00, 0x00,  // MLD 130, checksum, MRC 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x7d, 0x00, 0x00,  // QRV 2, QQIC 125, no sources
};

// IPv6 Query, L=0 G=1, QRV 3, QQIC 60, MRC 10000, gateway [2001:db8::42]:2268: 106 octets.
const Bytes kQueryV6WithG = {
    0x04, 0x01, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x82, 0x00, 0x55, 0xd7, 0x27, 0x10, 0x00, 0x00,  // MRC 10000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x3c, 0x00, 0x00,
    0x08, 0xdc,  // port 2268, then 2001:db8::42
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42,
};

// Update carrying IGMPv3 ALLOW(232.1.1.1, {192.0.2.1}) from 0.0.0.0: 12 + 44 octets.
const Bytes kUpdateV4 = {
    0x05, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0x46, 0xc0, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x43, 0xf6,
    0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00,  // -> 224.0.0.22
    0x22, 0x00, 0x2d, 0xf9, 0x00, 0x00, 0x00, 0x01,                          // v3 report, 1 record
    0x05, 0x00, 0x00, 0x01, 0xe8, 0x01, 0x01, 0x01, 0xc0, 0x00, 0x02, 0x01,  // ALLOW, 1 source
};

// Update carrying MLDv2 ALLOW(ff3e::8000:1, {}) from ::: 12 + 76 octets.
const Bytes kUpdateV6 = {
    0x05, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x8f, 0x00, 0xed, 0x4e, 0x00, 0x00, 0x00, 0x01,  // v2 report, 1 record
    0x05, 0x00, 0x00, 0x00,                          // ALLOW, no sources
    0xff, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01,
};

// Multicast Data around an IPv4 UDP packet 192.0.2.1 -> 232.1.1.1 (checksums not the codec's).
const Bytes kDataV4 = {
    0x06, 0x00,                                                              // type, reserved
    0x45, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x11, 0x00, 0x00,  // IPv4
    0xc0, 0x00, 0x02, 0x01, 0xe8, 0x01, 0x01, 0x01,
    0x13, 0x88, 0x13, 0x88, 0x00, 0x09, 0x00, 0x00, 0x2a,  // UDP + 1 octet
};

// Multicast Data around an IPv6 UDP packet 2001:db8::1 -> ff3e::8000:1.
const Bytes kDataV6 = {
    0x06, 0x00,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x09, 0x11, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xff, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01,
    0x13, 0x88, 0x13, 0x88, 0x00, 0x09, 0x00, 0x00, 0x2a,
};

// Teardown for gateway 198.51.100.7:50000, IPv4-compatible ::198.51.100.7: 30 octets.
const Bytes kTeardownV4 = {
    0x07, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0xc3, 0x50,  // port 50000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x33, 0x64, 0x07,
};

// Teardown for gateway [2001:db8::42]:2268.
const Bytes kTeardownV6 = {
    0x07, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xa1, 0xb2, 0xc3, 0xd4,
    0x08, 0xdc,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42,
};
// clang-format on

// ---- Field checks of the encapsulated general queries (checklist §1.8) ----

void expect_igmpv3_general_query(ByteView d, uint8_t mrc, uint8_t qrv, uint8_t qqic) {
    ASSERT_EQ(d.size(), 36u);
    EXPECT_EQ(d[0], 0x46);              // version 4, IHL 6
    EXPECT_EQ(d[1], 0xc0);              // TOS
    EXPECT_EQ(be16(d, 2), 36);          // total length
    EXPECT_EQ(be16(d, 6) & 0x3fff, 0);  // not a fragment
    EXPECT_EQ(d[8], 1);                 // TTL
    EXPECT_EQ(d[9], 2);                 // IGMP
    EXPECT_EQ(vec(d.subspan(12, 4)), (Bytes{0, 0, 0, 0}));
    EXPECT_EQ(vec(d.subspan(16, 4)), (Bytes{224, 0, 0, 1}));
    EXPECT_EQ(vec(d.subspan(20, 4)), (Bytes{0x94, 0x04, 0x00, 0x00}));  // Router Alert
    EXPECT_TRUE(ref_verifies(d.first(24))) << "IPv4 header checksum";
    const ByteView m = d.subspan(24);
    EXPECT_EQ(m[0], 0x11);
    EXPECT_EQ(m[1], mrc);
    EXPECT_TRUE(ref_verifies(m)) << "IGMP checksum";
    EXPECT_EQ(vec(m.subspan(4, 4)), (Bytes{0, 0, 0, 0}));  // general: group 0
    EXPECT_EQ(m[8], qrv);                                  // Resv=0, S=0, QRV
    EXPECT_EQ(m[9], qqic);
    EXPECT_EQ(be16(m, 10), 0);  // no sources
}

void expect_mldv2_general_query(ByteView d, uint16_t mrc, uint8_t qrv, uint8_t qqic) {
    ASSERT_EQ(d.size(), 76u);
    EXPECT_EQ(vec(d.first(4)), (Bytes{0x60, 0, 0, 0}));  // version 6, class 0, flow 0
    EXPECT_EQ(be16(d, 4), 36);                           // payload length
    EXPECT_EQ(d[6], 0);                                  // Hop-by-Hop
    EXPECT_EQ(d[7], 1);                                  // hop limit
    // Linux gateways drop an MLD query unless its source is link-local, its hop limit 1 and it
    // carries Router Alert (MLD): all three are checked here (issue 18, item 8).
    EXPECT_EQ(d[8], 0xfe);
    EXPECT_EQ(d[9] & 0xc0, 0x80);  // fe80::/10
    Bytes all_nodes(16, 0);
    all_nodes[0] = 0xff;
    all_nodes[1] = 0x02;
    all_nodes[15] = 0x01;
    EXPECT_EQ(vec(d.subspan(24, 16)), all_nodes);
    EXPECT_EQ(vec(d.subspan(40, 8)), (Bytes{0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00}));
    const ByteView m = d.subspan(48);
    EXPECT_EQ(m[0], 130);
    EXPECT_EQ(m[1], 0);
    EXPECT_TRUE(ref_verifies(m, ref_icmpv6_pseudo_sum(d, 28))) << "ICMPv6 checksum";
    EXPECT_EQ(be16(m, 4), mrc);
    EXPECT_EQ(be16(m, 6), 0);
    EXPECT_EQ(vec(m.subspan(8, 16)), Bytes(16, 0));  // general: ::
    EXPECT_EQ(m[24], qrv);
    EXPECT_EQ(m[25], qqic);
    EXPECT_EQ(be16(m, 26), 0);
}

// Dispatches to the parser of `t`, for tests that run every parser over one input.
ParseError parse_as(MessageType t, ByteView m) {
    switch (t) {
        case MessageType::relay_discovery: {
            Discovery x;
            return parse_discovery(m, x);
        }
        case MessageType::relay_advertisement: {
            Advertisement x;
            return parse_advertisement(m, x);
        }
        case MessageType::request: {
            Request x;
            return parse_request(m, x);
        }
        case MessageType::membership_query: {
            MembershipQuery x;
            return parse_membership_query(m, x);
        }
        case MessageType::membership_update: {
            MembershipUpdate x;
            return parse_membership_update(m, x);
        }
        case MessageType::multicast_data: {
            MulticastData x;
            return parse_multicast_data(m, x);
        }
        case MessageType::teardown: {
            Teardown x;
            return parse_teardown(m, x);
        }
    }
    return ParseError::ok;
}

constexpr MessageType kAllTypes[] = {
    MessageType::relay_discovery,  MessageType::relay_advertisement, MessageType::request,
    MessageType::membership_query, MessageType::membership_update,   MessageType::multicast_data,
    MessageType::teardown,
};

// A message of `size` octets whose octet 0 is `octet0`; the rest is a recognisable pattern.
Bytes message_of(uint8_t octet0, size_t size) {
    Bytes m(size);
    for (size_t i = 0; i < size; ++i)
        m[i] = static_cast<uint8_t>(0x30 + i);
    if (size > 0) m[0] = octet0;
    return m;
}

// ---- Random field values ----

uint32_t rand_u32(std::mt19937& rng) {
    return static_cast<uint32_t>(rng());
}

ResponseMac rand_mac(std::mt19937& rng) {
    ResponseMac m;
    for (auto& b : m)
        b = static_cast<uint8_t>(rng());
    return m;
}

// A unicast address: IPv4 in 1.0.0.0-223.255.255.255 (not 127/8); IPv6 in 2000::/3.
IpAddress rand_unicast(std::mt19937& rng, Family f) {
    if (f == Family::ipv4) {
        uint32_t a = rand_u32(rng);
        uint32_t first = 1 + (a >> 24) % 223;
        if (first == 127) first = 128;
        return IpAddress::v4((first << 24) | (a & 0xffffff));
    }
    uint8_t raw[16];
    for (auto& b : raw)
        b = static_cast<uint8_t>(rng());
    raw[0] = static_cast<uint8_t>(0x20 | (raw[0] & 0x1f));
    return IpAddress::v6_from_bytes(raw);
}

Family rand_family(std::mt19937& rng) {
    return rng() % 2 ? Family::ipv4 : Family::ipv6;
}

UdpEndpoint rand_endpoint(std::mt19937& rng) {
    return {rand_unicast(rng, rand_family(rng)), static_cast<uint16_t>(1 + rng() % 65535)};
}

IpAddress rand_group(std::mt19937& rng, Family f) {
    if (f == Family::ipv4) return IpAddress::v4(0xe8000000 | (rand_u32(rng) & 0xffffff));
    uint8_t raw[16] = {0xff, 0x3e};
    for (size_t i = 12; i < 16; ++i)
        raw[i] = static_cast<uint8_t>(rng());
    return IpAddress::v6_from_bytes(raw);
}

// A report datagram with up to 4 records of up to 5 sources each.
Bytes rand_report(std::mt19937& rng, Family f) {
    return build([&](MutByteView out) {
        ReportBuilder b(out, f, rand_unicast(rng, f));
        const size_t records = rng() % 5;
        for (size_t r = 0; r < records; ++r) {
            std::vector<IpAddress> sources(rng() % 6);
            for (auto& s : sources)
                s = rand_unicast(rng, f);
            EXPECT_TRUE(
                b.add_record(static_cast<RecordType>(1 + rng() % 6), rand_group(rng, f), sources));
        }
        return b.finish();
    });
}

constexpr int kIterations = 300;

// ============================================================================================
// Byte-exact vectors
// ============================================================================================

TEST(Discovery, ByteExact) {
    EXPECT_EQ(build([](MutByteView o) { return build_discovery(o, {.nonce = 0x12345678}); }),
              kDiscovery);
    Discovery d;
    ASSERT_EQ(parse_discovery(kDiscovery, d), ParseError::ok);
    EXPECT_EQ(d.nonce, 0x12345678u);
    MessageType t{};
    ASSERT_EQ(peek_message_type(kDiscovery, t), ParseError::ok);
    EXPECT_EQ(t, MessageType::relay_discovery);
}

TEST(Advertisement, ByteExactIpv4Is12Octets) {
    const Bytes got = build([](MutByteView o) {
        return build_advertisement(o, {.nonce = 0x12345678, .relay = ip("192.52.193.1")});
    });
    EXPECT_EQ(got.size(), advertisement_size_v4);
    EXPECT_EQ(got, kAdvertisementV4);
    Advertisement a;
    ASSERT_EQ(parse_advertisement(kAdvertisementV4, a), ParseError::ok);
    EXPECT_EQ(a.nonce, 0x12345678u);
    EXPECT_EQ(a.relay, ip("192.52.193.1"));
    EXPECT_TRUE(a.relay.is_v4());
}

TEST(Advertisement, ByteExactIpv6Is24Octets) {
    const Bytes got = build([](MutByteView o) {
        return build_advertisement(o, {.nonce = 0x12345678, .relay = ip("2001:3::1")});
    });
    EXPECT_EQ(got.size(), advertisement_size_v6);
    EXPECT_EQ(got, kAdvertisementV6);
    Advertisement a;
    ASSERT_EQ(parse_advertisement(kAdvertisementV6, a), ParseError::ok);
    EXPECT_EQ(a.nonce, 0x12345678u);
    EXPECT_EQ(a.relay, ip("2001:3::1"));
    EXPECT_TRUE(a.relay.is_v6());
}

TEST(Request, ByteExactBothP) {
    EXPECT_EQ(build([](MutByteView o) { return build_request(o, {.nonce = 0x87654321}); }),
              kRequestP0);
    EXPECT_EQ(build([](MutByteView o) {
                  return build_request(o, {.nonce = 0x87654321, .flags = request_p_flag});
              }),
              kRequestP1);
    Request r;
    ASSERT_EQ(parse_request(kRequestP0, r), ParseError::ok);
    EXPECT_EQ(r.nonce, 0x87654321u);
    EXPECT_FALSE(r.rfc_p());
    EXPECT_FALSE(r.linux_p());
    ASSERT_EQ(parse_request(kRequestP1, r), ParseError::ok);
    EXPECT_EQ(r.nonce, 0x87654321u);
    EXPECT_TRUE(r.rfc_p());
    EXPECT_FALSE(r.linux_p());
}

TEST(MembershipQuery, ByteExactIpv4WithoutGIs48Octets) {
    const Bytes got = build(
        [](MutByteView o) { return build_membership_query(o, {.mac = kMac, .nonce = kNonce}); });
    EXPECT_EQ(got.size(), 48u);
    EXPECT_EQ(membership_query_size(Family::ipv4, false), 48u);
    EXPECT_EQ(got, kQueryV4);
    expect_igmpv3_general_query(ByteView(kQueryV4).subspan(12), 1, 2, 125);

    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(kQueryV4, q), ParseError::ok);
    EXPECT_FALSE(q.l_flag);
    EXPECT_EQ(q.mac, kMac);
    EXPECT_EQ(q.nonce, kNonce);
    EXPECT_FALSE(q.gateway.has_value());
    EXPECT_EQ(vec(q.encapsulated), vec(ByteView(kQueryV4).subspan(12)));
}

TEST(MembershipQuery, ByteExactIpv4WithLAndGIs66Octets) {
    const UdpEndpoint gw{ip("198.51.100.7"), 50000};
    const Bytes got = build([&](MutByteView o) {
        return build_membership_query(o,
                                      {.l_flag = true,
                                       .mac = kMac,
                                       .nonce = kNonce,
                                       .query = {.robustness = 3, .qqic = 60, .max_resp_code = 100},
                                       .gateway = gw});
    });
    EXPECT_EQ(got.size(), 66u);
    EXPECT_EQ(membership_query_size(Family::ipv4, true), 66u);
    EXPECT_EQ(got, kQueryV4WithG);
    expect_igmpv3_general_query(ByteView(kQueryV4WithG).subspan(12, 36), 100, 3, 60);

    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(kQueryV4WithG, q), ParseError::ok);
    EXPECT_TRUE(q.l_flag);
    EXPECT_EQ(q.mac, kMac);
    EXPECT_EQ(q.nonce, kNonce);
    ASSERT_TRUE(q.gateway.has_value());
    EXPECT_EQ(*q.gateway, gw);
    EXPECT_TRUE(q.gateway->ip.is_v4());
    EXPECT_EQ(q.encapsulated.size(), 36u);
}

TEST(MembershipQuery, ByteExactIpv6WithoutGIs88Octets) {
    const Bytes got = build([](MutByteView o) {
        return build_membership_query(o,
                                      {.mac = kMac, .nonce = kNonce, .query_family = Family::ipv6});
    });
    EXPECT_EQ(got.size(), 88u);
    EXPECT_EQ(membership_query_size(Family::ipv6, false), 88u);
    EXPECT_EQ(got, kQueryV6);
    expect_mldv2_general_query(ByteView(kQueryV6).subspan(12), 1, 2, 125);

    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(kQueryV6, q), ParseError::ok);
    EXPECT_FALSE(q.l_flag);
    EXPECT_FALSE(q.gateway.has_value());
    EXPECT_EQ(q.encapsulated.size(), 76u);
}

TEST(MembershipQuery, ByteExactIpv6WithGIs106Octets) {
    const UdpEndpoint gw{ip("2001:db8::42"), 2268};
    const Bytes got = build([&](MutByteView o) {
        return build_membership_query(
            o, {.mac = kMac,
                .nonce = kNonce,
                .query_family = Family::ipv6,
                .query = {.robustness = 3, .qqic = 60, .max_resp_code = 10000},
                .gateway = gw});
    });
    EXPECT_EQ(got.size(), 106u);
    EXPECT_EQ(membership_query_size(Family::ipv6, true), 106u);
    EXPECT_EQ(got, kQueryV6WithG);
    expect_mldv2_general_query(ByteView(kQueryV6WithG).subspan(12, 76), 10000, 3, 60);

    MembershipQuery q;
    ASSERT_EQ(parse_membership_query(kQueryV6WithG, q), ParseError::ok);
    EXPECT_FALSE(q.l_flag);
    ASSERT_TRUE(q.gateway.has_value());
    EXPECT_EQ(*q.gateway, gw);
    EXPECT_EQ(q.encapsulated.size(), 76u);
}

TEST(MembershipQuery, EncapsulatedQueriesParseAsGeneralQueries) {
    struct Case {
        const Bytes* msg;
        Family family;
        uint16_t mrc;
        uint8_t qrv, qqic;
    };
    for (const Case& c :
         {Case{&kQueryV4, Family::ipv4, 1, 2, 125}, Case{&kQueryV4WithG, Family::ipv4, 100, 3, 60},
          Case{&kQueryV6, Family::ipv6, 1, 2, 125},
          Case{&kQueryV6WithG, Family::ipv6, 10000, 3, 60}}) {
        MembershipQuery q;
        ASSERT_EQ(parse_membership_query(*c.msg, q), ParseError::ok);
        GeneralQuery g;
        ASSERT_EQ(parse_general_query(q.encapsulated, g), ParseError::ok);
        EXPECT_EQ(g.family, c.family);
        EXPECT_EQ(g.max_resp_code, c.mrc);
        EXPECT_EQ(g.robustness, c.qrv);
        EXPECT_EQ(g.qqic, c.qqic);
        EXPECT_EQ(g.datagram_length, q.encapsulated.size());
    }
}

TEST(MembershipUpdate, ByteExactIgmpv3) {
    const Bytes report = build([](MutByteView o) {
        ReportBuilder b(o, Family::ipv4);
        const IpAddress src[] = {ip("192.0.2.1")};
        EXPECT_TRUE(b.add_record(RecordType::allow_new_sources, ip("232.1.1.1"), src));
        return b.finish();
    });
    EXPECT_EQ(report, vec(ByteView(kUpdateV4).subspan(12)));
    EXPECT_EQ(
        build([&](MutByteView o) { return build_membership_update(o, kMac, kNonce, report); }),
        kUpdateV4);
    MembershipUpdate u;
    ASSERT_EQ(parse_membership_update(kUpdateV4, u), ParseError::ok);
    EXPECT_EQ(u.mac, kMac);
    EXPECT_EQ(u.nonce, kNonce);
    EXPECT_EQ(vec(u.encapsulated), report);
    EXPECT_TRUE(ref_verifies(u.encapsulated.first(24)));
    EXPECT_TRUE(ref_verifies(u.encapsulated.subspan(24)));
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(u.encapsulated, r), ParseError::ok);
    EXPECT_EQ(r.kind, ReportKind::igmpv3_report);
    EXPECT_EQ(r.num_records, 1);
}

TEST(MembershipUpdate, ByteExactMldv2) {
    const Bytes report = build([](MutByteView o) {
        ReportBuilder b(o, Family::ipv6);
        EXPECT_TRUE(b.add_record(RecordType::allow_new_sources, ip("ff3e::8000:1"), {}));
        return b.finish();
    });
    EXPECT_EQ(report, vec(ByteView(kUpdateV6).subspan(12)));
    EXPECT_EQ(
        build([&](MutByteView o) { return build_membership_update(o, kMac, kNonce, report); }),
        kUpdateV6);
    MembershipUpdate u;
    ASSERT_EQ(parse_membership_update(kUpdateV6, u), ParseError::ok);
    EXPECT_EQ(u.mac, kMac);
    EXPECT_EQ(u.nonce, kNonce);
    EXPECT_EQ(vec(u.encapsulated), report);
    EXPECT_TRUE(
        ref_verifies(u.encapsulated.subspan(48), ref_icmpv6_pseudo_sum(u.encapsulated, 28)));
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(u.encapsulated, r), ParseError::ok);
    EXPECT_EQ(r.kind, ReportKind::mldv2_report);
    EXPECT_EQ(r.num_records, 1);
}

TEST(MulticastData, ByteExactBothFamilies) {
    for (const Bytes* expected : {&kDataV4, &kDataV6}) {
        const ByteView packet = ByteView(*expected).subspan(2);
        EXPECT_EQ(build([&](MutByteView o) { return build_multicast_data(o, packet); }), *expected);
        MulticastData d;
        ASSERT_EQ(parse_multicast_data(*expected, d), ParseError::ok);
        EXPECT_EQ(vec(d.packet), vec(packet));
        EXPECT_EQ(d.packet.data(), expected->data() + 2);  // a view, not a copy
    }
    EXPECT_EQ(build([](MutByteView o) { return build_multicast_data_header(o); }),
              (Bytes{0x06, 0x00}));
}

TEST(Teardown, ByteExactIpv4CompatibleGatewayIs30Octets) {
    const Teardown t{.mac = kMac, .nonce = kNonce, .gateway = {ip("198.51.100.7"), 50000}};
    const Bytes got = build([&](MutByteView o) { return build_teardown(o, t); });
    EXPECT_EQ(got.size(), 30u);
    EXPECT_EQ(got, kTeardownV4);
    Teardown p;
    ASSERT_EQ(parse_teardown(kTeardownV4, p), ParseError::ok);
    EXPECT_EQ(p.mac, kMac);
    EXPECT_EQ(p.nonce, kNonce);
    EXPECT_EQ(p.gateway, t.gateway);
    EXPECT_TRUE(p.gateway.ip.is_v4());
}

TEST(Teardown, ByteExactIpv6Gateway) {
    const Teardown t{.mac = kMac, .nonce = kNonce, .gateway = {ip("2001:db8::42"), 2268}};
    EXPECT_EQ(build([&](MutByteView o) { return build_teardown(o, t); }), kTeardownV6);
    Teardown p;
    ASSERT_EQ(parse_teardown(kTeardownV6, p), ParseError::ok);
    EXPECT_EQ(p.gateway, t.gateway);
    EXPECT_TRUE(p.gateway.ip.is_v6());
}

TEST(Teardown, GatewayFieldForms) {
    // Checklist §6 item 20: IPv4-mapped is read leniently as IPv4, :: is rejected.
    Bytes mapped = kTeardownV4;
    mapped[24] = 0xff;
    mapped[25] = 0xff;
    Teardown p;
    ASSERT_EQ(parse_teardown(mapped, p), ParseError::ok);
    EXPECT_EQ(p.gateway.ip, ip("198.51.100.7"));

    Bytes unspecified = kTeardownV4;
    std::fill(unspecified.begin() + 14, unspecified.end(), 0);
    EXPECT_EQ(parse_teardown(unspecified, p), ParseError::bad_gateway_address);
}

TEST(MembershipQuery, UnspecifiedGatewayRejected) {
    Bytes q = kQueryV4WithG;
    std::fill(q.end() - 16, q.end(), 0);
    MembershipQuery out;
    EXPECT_EQ(parse_membership_query(q, out), ParseError::bad_gateway_address);
}

TEST(MembershipQuery, GFlagWithoutRoomForGatewayFields) {
    MembershipQuery out;
    Bytes q = kQueryV4;
    q[1] = query_g_flag;
    q.resize(29);  // G set, fewer than 12 + 18 octets
    EXPECT_EQ(parse_membership_query(q, out), ParseError::truncated_message);
    q = kQueryV4WithG;
    q.erase(q.begin() + 12, q.begin() + 48);  // exactly 12 + 18: the gateway fields, no datagram
    EXPECT_EQ(parse_membership_query(q, out), ParseError::missing_encapsulated_packet);
    q.resize(12);
    q[1] = 0;
    EXPECT_EQ(parse_membership_query(q, out), ParseError::missing_encapsulated_packet);
}

TEST(Builders, ReturnZeroWhenBufferTooSmall) {
    std::array<uint8_t, 128> buf{};
    const auto small = [&](size_t n) { return MutByteView(buf).first(n); };
    EXPECT_EQ(build_discovery(small(7), {}), 0u);
    EXPECT_EQ(build_advertisement(small(11), {.relay = ip("192.0.2.1")}), 0u);
    EXPECT_EQ(build_advertisement(small(23), {.relay = ip("2001:db8::1")}), 0u);
    EXPECT_EQ(build_request(small(7), {}), 0u);
    EXPECT_EQ(build_membership_query(small(47), {}), 0u);
    EXPECT_EQ(build_membership_query(small(65), {.gateway = UdpEndpoint{ip("192.0.2.1"), 1}}), 0u);
    EXPECT_EQ(build_membership_query(small(87), {.query_family = Family::ipv6}), 0u);
    const Bytes report = vec(ByteView(kUpdateV4).subspan(12));
    EXPECT_EQ(build_membership_update(small(55), kMac, kNonce, report), 0u);
    EXPECT_EQ(build_membership_update(small(128), kMac, kNonce, {}), 0u);  // no datagram
    EXPECT_EQ(build_multicast_data_header(small(1)), 0u);
    EXPECT_EQ(build_multicast_data(small(30), ByteView(kDataV4).subspan(2)), 0u);
    EXPECT_EQ(build_multicast_data(small(128), {}), 0u);  // no packet
    EXPECT_EQ(build_teardown(small(29), {}), 0u);
}

TEST(MembershipQuery, Ipv4MaxRespCodeAbove255CannotBeEncoded) {
    // The IGMPv3 Max Resp Code is 8 bits; amt_messages.hpp promises 0 when the fields cannot be
    // encoded. Truncating 300 to 44 would tell gateways 4.4 s instead of 30 s.
    const Bytes got = build(
        [](MutByteView o) { return build_membership_query(o, {.query = {.max_resp_code = 300}}); });
    EXPECT_EQ(got.size(), 0u) << "MRC 300 was encoded as " << (got.size() > 37 ? got[37] : 0);
}

// ============================================================================================
// Random round trips: build -> parse -> the same fields
// ============================================================================================

TEST(RoundTrip, Discovery) {
    std::mt19937 rng(101);
    for (int i = 0; i < kIterations; ++i) {
        const Discovery m{rand_u32(rng)};
        const Bytes b = build([&](MutByteView o) { return build_discovery(o, m); });
        Discovery p;
        ASSERT_EQ(parse_discovery(b, p), ParseError::ok);
        EXPECT_EQ(p.nonce, m.nonce);
    }
}

TEST(RoundTrip, Advertisement) {
    std::mt19937 rng(102);
    for (int i = 0; i < kIterations; ++i) {
        uint8_t raw[16];
        for (auto& x : raw)
            x = static_cast<uint8_t>(rng());
        const Advertisement m{rand_u32(rng), rng() % 2 ? IpAddress::v4_from_bytes(raw)
                                                       : IpAddress::v6_from_bytes(raw)};
        const Bytes b = build([&](MutByteView o) { return build_advertisement(o, m); });
        ASSERT_EQ(b.size(), m.relay.is_v4() ? 12u : 24u);
        Advertisement p;
        ASSERT_EQ(parse_advertisement(b, p), ParseError::ok);
        EXPECT_EQ(p.nonce, m.nonce);
        EXPECT_EQ(p.relay, m.relay);
    }
}

TEST(RoundTrip, Request) {
    std::mt19937 rng(103);
    for (int i = 0; i < kIterations; ++i) {
        const Request m{rand_u32(rng), static_cast<uint8_t>(rng())};
        const Bytes b = build([&](MutByteView o) { return build_request(o, m); });
        Request p;
        ASSERT_EQ(parse_request(b, p), ParseError::ok);
        EXPECT_EQ(p.nonce, m.nonce);
        EXPECT_EQ(p.flags, m.flags);
        EXPECT_EQ(p.rfc_p(), (m.flags & 0x01) != 0);
        EXPECT_EQ(p.linux_p(), (m.flags & 0x80) != 0);
    }
}

TEST(RoundTrip, MembershipQuery) {
    std::mt19937 rng(104);
    for (int i = 0; i < kIterations; ++i) {
        QueryFields f;
        f.l_flag = rng() % 2;
        f.mac = rand_mac(rng);
        f.nonce = rand_u32(rng);
        f.query_family = rand_family(rng);
        f.query.robustness = static_cast<uint8_t>(1 + rng() % 7);
        f.query.qqic = static_cast<uint8_t>(rng());
        f.query.max_resp_code =
            static_cast<uint16_t>(f.query_family == Family::ipv4 ? rng() % 256 : rng() % 65536);
        if (rng() % 2) f.gateway = rand_endpoint(rng);
        const Bytes b = build([&](MutByteView o) { return build_membership_query(o, f); });
        ASSERT_EQ(b.size(), membership_query_size(f.query_family, f.gateway.has_value()));

        MembershipQuery q;
        ASSERT_EQ(parse_membership_query(b, q), ParseError::ok);
        EXPECT_EQ(q.l_flag, f.l_flag);
        EXPECT_EQ(q.mac, f.mac);
        EXPECT_EQ(q.nonce, f.nonce);
        EXPECT_EQ(q.gateway, f.gateway);
        GeneralQuery g;
        ASSERT_EQ(parse_general_query(q.encapsulated, g), ParseError::ok);
        EXPECT_EQ(g.family, f.query_family);
        EXPECT_EQ(g.robustness, f.query.robustness);
        EXPECT_EQ(g.qqic, f.query.qqic);
        EXPECT_EQ(g.max_resp_code, f.query.max_resp_code);
        EXPECT_EQ(g.datagram_length, q.encapsulated.size());
    }
}

TEST(RoundTrip, MembershipUpdate) {
    std::mt19937 rng(105);
    for (int i = 0; i < kIterations; ++i) {
        const ResponseMac mac = rand_mac(rng);
        const uint32_t nonce = rand_u32(rng);
        const Bytes report = rand_report(rng, rand_family(rng));
        const Bytes b =
            build([&](MutByteView o) { return build_membership_update(o, mac, nonce, report); });
        ASSERT_EQ(b.size(), 12 + report.size());
        MembershipUpdate u;
        ASSERT_EQ(parse_membership_update(b, u), ParseError::ok);
        EXPECT_EQ(u.mac, mac);
        EXPECT_EQ(u.nonce, nonce);
        EXPECT_EQ(vec(u.encapsulated), report);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(u.encapsulated, r), ParseError::ok);
        EXPECT_EQ(r.datagram_length, report.size());
    }
}

TEST(RoundTrip, MulticastData) {
    std::mt19937 rng(106);
    for (int i = 0; i < kIterations; ++i) {
        Bytes packet(1 + rng() % 1500);
        for (auto& x : packet)
            x = static_cast<uint8_t>(rng());
        const Bytes b = build([&](MutByteView o) { return build_multicast_data(o, packet); });
        MulticastData d;
        ASSERT_EQ(parse_multicast_data(b, d), ParseError::ok);
        EXPECT_EQ(vec(d.packet), packet);
    }
}

TEST(RoundTrip, Teardown) {
    std::mt19937 rng(107);
    for (int i = 0; i < kIterations; ++i) {
        const Teardown m{rand_mac(rng), rand_u32(rng), rand_endpoint(rng)};
        const Bytes b = build([&](MutByteView o) { return build_teardown(o, m); });
        ASSERT_EQ(b.size(), teardown_size);
        Teardown p;
        ASSERT_EQ(parse_teardown(b, p), ParseError::ok);
        EXPECT_EQ(p.mac, m.mac);
        EXPECT_EQ(p.nonce, m.nonce);
        EXPECT_EQ(p.gateway, m.gateway);
    }
}

// ============================================================================================
// Checklist §6, AMT layer (items 1-5)
// ============================================================================================

TEST(Malformed, Item1_EmptyPayload) {
    MessageType t{};
    EXPECT_EQ(peek_message_type({}, t), ParseError::empty_message);
    for (MessageType type : kAllTypes) {
        EXPECT_EQ(parse_as(type, {}), ParseError::empty_message) << int(type);
    }
}

TEST(Malformed, Item1_OneOctetPayload) {
    for (MessageType type : kAllTypes) {
        const Bytes m = {static_cast<uint8_t>(type)};
        MessageType t{};
        EXPECT_EQ(peek_message_type(m, t), ParseError::ok);
        EXPECT_EQ(t, type);
        EXPECT_EQ(parse_as(type, m), ParseError::truncated_message) << int(type);
    }
}

TEST(Malformed, Item1_EveryTypeTruncatedBelowItsMinimum) {
    const std::pair<MessageType, size_t> minimum[] = {
        {MessageType::relay_discovery, 8},
        {MessageType::relay_advertisement, 12},
        {MessageType::request, 8},
        {MessageType::membership_query, 12},
        {MessageType::membership_update, 12},
        {MessageType::multicast_data, 2},
        {MessageType::teardown, 30},
    };
    for (const auto& [type, min] : minimum) {
        for (size_t n = 1; n < min; ++n) {
            EXPECT_EQ(parse_as(type, message_of(static_cast<uint8_t>(type), n)),
                      ParseError::truncated_message)
                << "type " << int(type) << ", " << n << " octets";
        }
    }
}

TEST(Malformed, Item1_DiscoveryShorterThan8) {
    for (size_t n = 1; n < 8; ++n) {
        Discovery d;
        EXPECT_EQ(parse_discovery(ByteView(kDiscovery).first(n), d), ParseError::truncated_message);
    }
}

TEST(Malformed, Item1_RequestShorterThan8) {
    for (size_t n = 1; n < 8; ++n) {
        Request r;
        EXPECT_EQ(parse_request(ByteView(kRequestP1).first(n), r), ParseError::truncated_message);
    }
}

TEST(Malformed, Item1_UpdateShorterThan12) {
    for (size_t n = 1; n < 12; ++n) {
        MembershipUpdate u;
        EXPECT_EQ(parse_membership_update(ByteView(kUpdateV4).first(n), u),
                  ParseError::truncated_message);
    }
}

TEST(Malformed, Item1_UpdateOfExactly12Octets) {
    MembershipUpdate u;
    EXPECT_EQ(parse_membership_update(ByteView(kUpdateV4).first(12), u),
              ParseError::missing_encapsulated_packet);
}

TEST(Malformed, Item1_TeardownShorterThan30) {
    for (size_t n = 1; n < 30; ++n) {
        Teardown t;
        EXPECT_EQ(parse_teardown(ByteView(kTeardownV6).first(n), t), ParseError::truncated_message);
    }
}

TEST(Malformed, Item1_DataOfExactly2Octets) {
    MulticastData d;
    EXPECT_EQ(parse_multicast_data(ByteView(kDataV4).first(2), d),
              ParseError::missing_encapsulated_packet);
}

TEST(Malformed, Item2_DiscoveryWithTrailingBytesAccepted) {
    Bytes m = kDiscovery;
    m.insert(m.end(), {0xde, 0xad, 0xbe, 0xef, 0x00});
    Discovery d;
    ASSERT_EQ(parse_discovery(m, d), ParseError::ok);
    EXPECT_EQ(d.nonce, 0x12345678u);
}

TEST(Malformed, Item2_VlcNineOctetRequestAccepted) {
    Bytes m = kRequestP1;
    m.push_back(0x00);  // VLC sends 9 octets
    Request r;
    ASSERT_EQ(parse_request(m, r), ParseError::ok);
    EXPECT_EQ(r.nonce, 0x87654321u);
    EXPECT_TRUE(r.rfc_p());
    m.insert(m.end(), 100, 0xee);
    ASSERT_EQ(parse_request(m, r), ParseError::ok);
    EXPECT_EQ(r.nonce, 0x87654321u);
}

TEST(Malformed, Item2_TeardownLongerThan30Accepted) {
    Bytes m = kTeardownV4;
    m.insert(m.end(), {0x01, 0x02, 0x03});
    Teardown t;
    ASSERT_EQ(parse_teardown(m, t), ParseError::ok);
    EXPECT_EQ(t.gateway, (UdpEndpoint{ip("198.51.100.7"), 50000}));
    EXPECT_EQ(t.nonce, kNonce);
}

TEST(Malformed, Item2_UpdateWithJunkAfterInnerDatagramIgnored) {
    for (const Bytes* update : {&kUpdateV4, &kUpdateV6}) {
        Bytes m = *update;
        m.insert(m.end(), {0xba, 0xad, 0xf0, 0x0d, 0x99});
        MembershipUpdate u;
        ASSERT_EQ(parse_membership_update(m, u), ParseError::ok);
        EXPECT_EQ(u.encapsulated.size(), update->size() - 12 + 5);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(u.encapsulated, r), ParseError::ok);
        EXPECT_EQ(r.datagram_length, update->size() - 12);  // the junk is excluded
        EXPECT_EQ(r.num_records, 1);
    }
}

TEST(Malformed, Item2_PaddedAdvertisementRejected) {
    for (size_t n : {13u, 16u, 20u, 23u, 25u, 40u}) {
        Bytes m = kAdvertisementV6;
        m.resize(n, 0);
        Advertisement a;
        EXPECT_EQ(parse_advertisement(m, a), ParseError::bad_advertisement_length) << n;
    }
}

TEST(Malformed, Item3_NonZeroVersionWithEveryType) {
    for (unsigned v = 1; v < 16; ++v) {
        for (unsigned t = 0; t < 16; ++t) {
            const Bytes m = message_of(static_cast<uint8_t>(v << 4 | t), 64);
            MessageType type{};
            EXPECT_EQ(peek_message_type(m, type), ParseError::bad_version);
            for (MessageType parser : kAllTypes) {
                EXPECT_EQ(parse_as(parser, m), ParseError::bad_version) << v << "/" << t;
            }
        }
    }
}

TEST(Malformed, Item3_TypeZeroAndTypes8To15) {
    for (unsigned t : {0u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u}) {
        const Bytes m = message_of(static_cast<uint8_t>(t), 64);
        MessageType type{};
        EXPECT_EQ(peek_message_type(m, type), ParseError::unknown_type) << t;
        for (MessageType parser : kAllTypes) {
            EXPECT_EQ(parse_as(parser, m), ParseError::unknown_type) << t;
        }
    }
}

TEST(Malformed, Item3_RelayBoundTypes2_4_6AreIdentifiedNotMisparsed) {
    // Advertisement, Query and Data are relay-to-gateway: the relay's dispatcher sees their type
    // (and drops them, no reflection); no relay-side parser accepts them as something else.
    for (const Bytes* m : {&kAdvertisementV4, &kQueryV4, &kDataV4}) {
        MessageType type{};
        ASSERT_EQ(peek_message_type(*m, type), ParseError::ok);
        EXPECT_EQ(static_cast<uint8_t>(type), (*m)[0]);
        for (MessageType parser : {MessageType::relay_discovery, MessageType::request,
                                   MessageType::membership_update, MessageType::teardown}) {
            EXPECT_EQ(parse_as(parser, *m), ParseError::unknown_type);
        }
    }
}

TEST(Malformed, Item4_NonZeroReservedBitsIgnored) {
    Bytes d = kDiscovery;
    d[1] = d[2] = d[3] = 0xff;
    Discovery disc;
    ASSERT_EQ(parse_discovery(d, disc), ParseError::ok);
    EXPECT_EQ(disc.nonce, 0x12345678u);

    Bytes r = kRequestP1;
    r[1] |= 0x7e;  // reserved bits of octet 1 other than 0x80
    r[2] = r[3] = 0xff;
    Request req;
    ASSERT_EQ(parse_request(r, req), ParseError::ok);
    EXPECT_TRUE(req.rfc_p());
    EXPECT_FALSE(req.linux_p());
    EXPECT_EQ(req.nonce, 0x87654321u);

    Bytes u = kUpdateV4;
    u[1] = 0xff;
    MembershipUpdate upd;
    ASSERT_EQ(parse_membership_update(u, upd), ParseError::ok);
    EXPECT_EQ(upd.nonce, kNonce);

    Bytes t = kTeardownV4;
    t[1] = 0xff;
    Teardown td;
    ASSERT_EQ(parse_teardown(t, td), ParseError::ok);
    EXPECT_EQ(td.nonce, kNonce);
}

TEST(Malformed, Item4_LinuxPAt0x80) {
    Bytes m = kRequestP0;
    m[1] = request_p_flag_linux;
    Request r;
    ASSERT_EQ(parse_request(m, r), ParseError::ok);
    EXPECT_TRUE(r.linux_p());
    EXPECT_FALSE(r.rfc_p());
    EXPECT_EQ(r.flags, 0x80);
}

TEST(Malformed, Item5_ZeroNoncesAccepted) {
    Discovery d{.nonce = 1};
    ASSERT_EQ(parse_discovery(Bytes{0x01, 0, 0, 0, 0, 0, 0, 0}, d), ParseError::ok);
    EXPECT_EQ(d.nonce, 0u);
    Request r{.nonce = 1};
    ASSERT_EQ(parse_request(Bytes{0x03, 0, 0, 0, 0, 0, 0, 0}, r), ParseError::ok);
    EXPECT_EQ(r.nonce, 0u);
    EXPECT_EQ(build([](MutByteView o) { return build_request(o, {}); }),
              (Bytes{0x03, 0, 0, 0, 0, 0, 0, 0}));
}

}  // namespace
