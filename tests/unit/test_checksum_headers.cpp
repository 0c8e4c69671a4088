// Checksums (RFC 1071, RFC 1624), pseudo-headers, the outer IPv4/IPv6 + UDP headers, reply-source
// checks (checklist §6 items 6-7) and IpAddress. Expected bytes are written by hand and checked
// with the tests' own one's-complement sum, never with the codec's.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"
#include "common/checksum.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"
#include "common/parse_error.hpp"

using namespace amt;

namespace {

// The pseudo-header itself, octet by octet (RFC 768; RFC 8200 §8.1).
Bytes ref_pseudo_header(const IpAddress& src, const IpAddress& dst, uint8_t proto, uint32_t len) {
    Bytes b = vec(src.wire());
    const Bytes d = vec(dst.wire());
    b.insert(b.end(), d.begin(), d.end());
    if (src.is_v4()) {
        b.insert(b.end(), {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
    } else {
        b.insert(b.end(),
                 {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                  static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0, 0, proto});
    }
    return b;
}

// Checks a whole IPv4 or IPv6 + UDP datagram with the reference sum.
void expect_datagram_checksums_verify(ByteView d) {
    const bool v4 = d[0] >> 4 == 4;
    const size_t hl = v4 ? size_t{d[0] & 0x0fu} * 4 : 40;
    if (v4) {
        EXPECT_TRUE(ref_verifies(d.first(hl))) << "IPv4 header checksum";
    }
    const ByteView udp = d.subspan(hl);
    const IpAddress src = v4 ? IpAddress::v4_from_bytes(&d[12]) : IpAddress::v6_from_bytes(&d[8]);
    const IpAddress dst = v4 ? IpAddress::v4_from_bytes(&d[16]) : IpAddress::v6_from_bytes(&d[24]);
    const Bytes ph = ref_pseudo_header(src, dst, 17, static_cast<uint32_t>(udp.size()));
    EXPECT_TRUE(ref_verifies(udp, ref_sum(ph))) << "UDP checksum";
}

// Recomputes the IPv4 header checksum after a test changed a header field.
Bytes with_ipv4_checksum(Bytes d) {
    const size_t hl = size_t{d[0] & 0x0fu} * 4;
    d[10] = d[11] = 0;
    store_be16(&d[10], ref_checksum(ByteView(d).first(hl)));
    return d;
}

ParseError parse(ByteView d, bool verify = true) {
    UdpDatagram u;
    return parse_udp_datagram(d, u, verify);
}

// clang-format off

// 192.0.2.1:50000 -> 198.51.100.2:2268, TOS 0, TTL 64, ID 0x1234, DF; payload: a Request.
const Bytes kUdp4 = {
    0x45, 0x00, 0x00, 0x24, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3c, 0x5e,  // IPv4
    0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02,
    0xc3, 0x50, 0x08, 0xdc, 0x00, 0x10, 0xdb, 0xbd,                          // UDP
    0x03, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78,
};

// [2001:db8::1]:50000 -> [2001:db8::2]:2268, traffic class 0xb8, hop limit 64; a Discovery.
const Bytes kUdp6 = {
    0x6b, 0x80, 0x00, 0x00, 0x00, 0x10, 0x11, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0xc3, 0x50, 0x08, 0xdc, 0x00, 0x10, 0x6e, 0x80,
    0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78,
};

// clang-format on

const UdpEndpoint kGw4{IpAddress::v4(0xc0000201), 50000};    // 192.0.2.1:50000
const UdpEndpoint kRelay4{IpAddress::v4(0xc6336402), 2268};  // 198.51.100.2:2268

Bytes random_bytes(std::mt19937& rng, size_t n) {
    Bytes b(n);
    for (auto& x : b)
        x = static_cast<uint8_t>(rng());
    return b;
}

IpAddress rand_address(std::mt19937& rng, Family f) {
    const Bytes raw = random_bytes(rng, 16);
    return f == Family::ipv4 ? IpAddress::v4_from_bytes(raw.data())
                             : IpAddress::v6_from_bytes(raw.data());
}

// ============================================================================================
// RFC 1071 checksum
// ============================================================================================

TEST(Checksum, Rfc1071Example) {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    const Bytes data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(checksum_add(data), 0xddf2u);
    EXPECT_EQ(checksum_finish(checksum_add(data)), 0x220d);
    EXPECT_EQ(ref_sum(data), 0xddf2);
    // At an odd address, and with the checksum appended: the sum verifies.
    Bytes shifted = {0xaa};
    shifted.insert(shifted.end(), data.begin(), data.end());
    shifted.insert(shifted.end(), {0x22, 0x0d});
    EXPECT_EQ(checksum_add(ByteView(shifted).subspan(1, 8)), 0xddf2u);
    EXPECT_TRUE(checksum_verifies(checksum_add(ByteView(shifted).subspan(1))));
}

TEST(Checksum, KnownVectors) {
    EXPECT_EQ(checksum_add({}), 0u);
    EXPECT_EQ(checksum_add(Bytes{0xff, 0xff}), 0xffffu);
    EXPECT_EQ(checksum_add(Bytes{0x01}), 0x0100u);                    // odd octet padded right
    EXPECT_EQ(checksum_add(Bytes{0xab, 0xcd, 0xef}), 0x9aceu);        // abcd + ef00, carried
    EXPECT_EQ(checksum_add(Bytes{0x80, 0x00, 0x80, 0x00}), 0x0001u);  // end-around carry
    EXPECT_EQ(checksum_add(Bytes(65536, 0xff)), 0xffffu);
    EXPECT_EQ(checksum_add(ByteView(kUdp4).first(20)), 0xffffu);  // a valid IPv4 header
    EXPECT_EQ(checksum_add(Bytes(9, 0x00)), 0u);
}

TEST(Checksum, LengthsAndAlignmentsMatchReference) {
    std::mt19937 rng(301);
    const Bytes buf = random_bytes(rng, 2048);
    for (int i = 0; i < 1000; ++i) {
        const size_t off = rng() % 16;
        const size_t len = i < 300 ? static_cast<size_t>(i) % 70 : rng() % 2000;
        const ByteView v = ByteView(buf).subspan(off, len);
        EXPECT_EQ(checksum_add(v), ref_sum(v)) << "offset " << off << " length " << len;
    }
}

TEST(Checksum, ChainingEqualsOneShot) {
    std::mt19937 rng(302);
    for (int i = 0; i < 500; ++i) {
        const Bytes data = random_bytes(rng, rng() % 300);
        // Cut at up to three even offsets; only the last piece may be odd.
        std::vector<size_t> cuts = {0, data.size()};
        for (int c = 0; c < 3; ++c)
            cuts.push_back((rng() % (data.size() / 2 + 1)) * 2);
        std::sort(cuts.begin(), cuts.end());
        uint32_t sum = 0;
        for (size_t c = 0; c + 1 < cuts.size(); ++c) {
            sum = checksum_add(ByteView(data).subspan(cuts[c], cuts[c + 1] - cuts[c]), sum);
        }
        EXPECT_EQ(sum, checksum_add(data));
        EXPECT_EQ(sum, ref_sum(data));
    }
}

TEST(Checksum, UnfoldedInitialSums) {
    std::mt19937 rng(303);
    for (uint32_t initial : {0x0u, 0xffffu, 0x10000u, 0x1fffeu, 0xfffffffeu, 0xffffffffu}) {
        EXPECT_EQ(checksum_add({}, initial), ref_sum({}, initial)) << initial;
        const Bytes data = random_bytes(rng, 33);
        EXPECT_EQ(checksum_add(data, initial), ref_sum(data, initial)) << initial;
    }
}

TEST(Checksum, FinishVerifyAndUdpField) {
    EXPECT_EQ(checksum_finish(0), 0xffff);
    EXPECT_EQ(checksum_finish(0xffff), 0x0000);
    EXPECT_EQ(checksum_finish(0x1fffe), 0x0000);  // folds to ffff first
    EXPECT_EQ(checksum_finish(0x2ddf0), 0x220d);  // RFC 1071 example, unfolded
    EXPECT_TRUE(checksum_verifies(0xffff));
    EXPECT_FALSE(checksum_verifies(0xfffe));
    EXPECT_EQ(udp_checksum_field(0), 0xffff);
    EXPECT_EQ(udp_checksum_field(0x1234), 0x1234);
    EXPECT_EQ(udp_checksum_field(0xffff), 0xffff);
}

// ============================================================================================
// RFC 1624 incremental update
// ============================================================================================

TEST(Checksum, Rfc1624Example) {
    // RFC 1624 §4: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives 0x0000 by eqn. 3 (not 0xFFFF).
    EXPECT_EQ(checksum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(Checksum, IncrementalUpdateEqualsFullRecompute) {
    std::mt19937 rng(304);
    for (int i = 0; i < 1000; ++i) {
        Bytes data = random_bytes(rng, 6 + 2 * (rng() % 40));  // at least 3 words
        data[0] |= 0x40;  // never all zero (like the version nibble of an IP header)
        uint16_t c = ref_checksum(data);
        for (int step = 0; step < 5; ++step) {
            const size_t words = data.size() / 2;
            if (rng() % 2) {
                const size_t w = 1 + rng() % (words - 1);
                const uint16_t old_word = load_be16(&data[2 * w]);
                const uint16_t new_word = static_cast<uint16_t>(rng());
                store_be16(&data[2 * w], new_word);
                c = checksum_update16(c, old_word, new_word);
            } else {
                const size_t w = 1 + rng() % (words - 2);
                const uint32_t old_value = load_be32(&data[2 * w]);
                const uint32_t new_value = static_cast<uint32_t>(rng());
                store_be32(&data[2 * w], new_value);
                c = checksum_update32(c, old_value, new_value);
            }
            ASSERT_EQ(c, ref_checksum(data)) << "iteration " << i << " step " << step;
        }
    }
}

TEST(Checksum, IncrementalTtlAndAddressRewriteOfIpv4Header) {
    Bytes h = vec(ByteView(kUdp4).first(20));
    uint16_t c = load_be16(&h[10]);
    h[10] = h[11] = 0;  // the checksum field is covered data: keep it zero while editing
    const uint16_t old_ttl_proto = load_be16(&h[8]);
    h[8] -= 1;
    c = checksum_update16(c, old_ttl_proto, load_be16(&h[8]));
    EXPECT_EQ(c, ref_checksum(h));
    const uint32_t old_dst = load_be32(&h[16]);
    store_be32(&h[16], 0xcb007107);  // 203.0.113.7
    c = checksum_update32(c, old_dst, 0xcb007107);
    EXPECT_EQ(c, ref_checksum(h));
    store_be16(&h[10], c);
    EXPECT_TRUE(ref_verifies(h));
}

// ============================================================================================
// Pseudo-headers
// ============================================================================================

TEST(PseudoHeader, KnownValues) {
    EXPECT_EQ(ref_sum({}, pseudo_header_sum(ip("192.0.2.1"), ip("198.51.100.2"), 17, 16)), 0xec58);
    EXPECT_EQ(ref_sum({}, pseudo_header_sum(ip("2001:db8::1"), ip("2001:db8::2"), 17, 16)), 0x5b96);
    // A 32-bit upper-layer length (IPv6): both halves count.
    EXPECT_EQ(ref_sum({}, pseudo_header_sum(ip("2001:db8::1"), ip("ff02::16"), 58, 0x12345)),
              0x5053);
}

TEST(PseudoHeader, RandomMatchesReference) {
    std::mt19937 rng(305);
    for (int i = 0; i < 500; ++i) {
        const Family f = rng() % 2 ? Family::ipv4 : Family::ipv6;
        const IpAddress s = rand_address(rng, f);
        const IpAddress d = rand_address(rng, f);
        const uint8_t proto = rng() % 2 ? 17 : 58;
        const uint32_t len = f == Family::ipv4 ? rng() % 65536 : static_cast<uint32_t>(rng());
        EXPECT_EQ(ref_sum({}, pseudo_header_sum(s, d, proto, len)),
                  ref_sum(ref_pseudo_header(s, d, proto, len)));
    }
}

// ============================================================================================
// IPv4/IPv6 + UDP
// ============================================================================================

TEST(UdpDatagram, Ipv4ByteExact) {
    const Bytes payload = vec(ByteView(kUdp4).subspan(28));
    const Bytes got = build([&](MutByteView o) {
        return build_udp_datagram(o, kGw4, kRelay4, payload, {.ttl = 64, .ipv4_id = 0x1234});
    });
    EXPECT_EQ(got, kUdp4);
    expect_datagram_checksums_verify(kUdp4);

    UdpDatagram u;
    ASSERT_EQ(parse_udp_datagram(kUdp4, u, true), ParseError::ok);
    EXPECT_EQ(u.src, kGw4);
    EXPECT_EQ(u.dst, kRelay4);
    EXPECT_EQ(u.tos, 0);
    EXPECT_EQ(u.ttl, 64);
    EXPECT_EQ(u.udp_checksum, 0xdbbd);
    EXPECT_EQ(vec(u.payload), payload);
}

TEST(UdpDatagram, Ipv6ByteExact) {
    const UdpEndpoint src{ip("2001:db8::1"), 50000};
    const UdpEndpoint dst{ip("2001:db8::2"), 2268};
    const Bytes payload = vec(ByteView(kUdp6).subspan(48));
    const Bytes got = build([&](MutByteView o) {
        return build_udp_datagram(o, src, dst, payload, {.tos = 0xb8, .ttl = 64});
    });
    EXPECT_EQ(got, kUdp6);
    expect_datagram_checksums_verify(kUdp6);

    UdpDatagram u;
    ASSERT_EQ(parse_udp_datagram(kUdp6, u, true), ParseError::ok);
    EXPECT_EQ(u.src, src);
    EXPECT_EQ(u.dst, dst);
    EXPECT_EQ(u.tos, 0xb8);
    EXPECT_EQ(u.ttl, 64);
    EXPECT_EQ(vec(u.payload), payload);
}

TEST(UdpDatagram, HeadersFromPayloadSumMatchWholeDatagram) {
    std::mt19937 rng(306);
    for (int i = 0; i < 200; ++i) {
        const Family f = rng() % 2 ? Family::ipv4 : Family::ipv6;
        const UdpEndpoint s{rand_address(rng, f), static_cast<uint16_t>(rng())};
        const UdpEndpoint d{rand_address(rng, f), amt_udp_port};
        const Bytes payload = random_bytes(rng, rng() % 1000);
        const Bytes whole =
            build([&](MutByteView o) { return build_udp_datagram(o, s, d, payload); });
        Bytes split = build([&](MutByteView o) {
            return build_ip_udp_headers(o, s, d, payload.size(), checksum_add(payload));
        });
        ASSERT_EQ(split.size(), ip_udp_header_size(f));
        split.insert(split.end(), payload.begin(), payload.end());
        EXPECT_EQ(split, whole);
    }
}

TEST(UdpDatagram, ZeroChecksumOptionIsIpv4Only) {
    const Bytes payload = {1, 2, 3};
    const Bytes v4 = build([&](MutByteView o) {
        return build_udp_datagram(o, kGw4, kRelay4, payload, {.udp_checksum = false});
    });
    EXPECT_EQ(load_be16(&v4[26]), 0);
    EXPECT_EQ(parse(v4, false), ParseError::ok);
    const UdpEndpoint s{ip("2001:db8::1"), 1}, d{ip("2001:db8::2"), 2};
    const Bytes v6 = build([&](MutByteView o) {
        return build_udp_datagram(o, s, d, payload, {.udp_checksum = false});
    });
    EXPECT_NE(load_be16(&v6[46]), 0);
    expect_datagram_checksums_verify(v6);
    EXPECT_EQ(parse(v6), ParseError::ok);
}

TEST(UdpDatagram, ComputedZeroIsSentAsFfff) {
    const UdpEndpoint s6{ip("2001:db8::1"), 1}, d6{ip("2001:db8::2"), 2};
    for (const auto& ends : {std::pair{kGw4, kRelay4}, std::pair{s6, d6}}) {
        const UdpEndpoint& s = ends.first;
        const UdpEndpoint& d = ends.second;
        // With payload word w = the checksum for payload 0000, the sum becomes ffff: checksum 0.
        const size_t off = ip_udp_header_size(s.ip.family()) - 2;
        const Bytes zero = build([&](MutByteView o) {
            return build_udp_datagram(o, s, d, Bytes{0, 0});
        });
        const uint16_t w = load_be16(&zero[off]);
        const Bytes got = build([&](MutByteView o) {
            return build_udp_datagram(o, s, d,
                                      Bytes{static_cast<uint8_t>(w >> 8), static_cast<uint8_t>(w)});
        });
        EXPECT_EQ(load_be16(&got[off]), 0xffff);
        expect_datagram_checksums_verify(got);
        EXPECT_EQ(parse(got), ParseError::ok);
    }
}

TEST(UdpDatagram, RoundTripRandom) {
    std::mt19937 rng(307);
    for (int i = 0; i < 300; ++i) {
        const Family f = rng() % 2 ? Family::ipv4 : Family::ipv6;
        const UdpEndpoint s{rand_address(rng, f), static_cast<uint16_t>(rng())};
        const UdpEndpoint d{rand_address(rng, f), static_cast<uint16_t>(rng())};
        const OuterIpFields fields{static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()),
                                   static_cast<uint16_t>(rng()), true, true};
        const Bytes payload = random_bytes(rng, rng() % 600);
        const Bytes dg =
            build([&](MutByteView o) { return build_udp_datagram(o, s, d, payload, fields); });
        ASSERT_EQ(dg.size(), ip_udp_header_size(f) + payload.size());
        expect_datagram_checksums_verify(dg);
        UdpDatagram u;
        ASSERT_EQ(parse_udp_datagram(dg, u, true), ParseError::ok);
        EXPECT_EQ(u.src, s);
        EXPECT_EQ(u.dst, d);
        EXPECT_EQ(u.tos, fields.tos);
        EXPECT_EQ(u.ttl, fields.ttl);
        EXPECT_EQ(vec(u.payload), payload);
        if (f == Family::ipv4) {
            EXPECT_EQ(load_be16(&dg[4]), fields.ipv4_id);
            EXPECT_EQ(load_be16(&dg[6]), 0x4000);  // DF
        }
    }
}

TEST(UdpDatagram, BuildLimits) {
    std::array<uint8_t, 64> buf{};
    const UdpEndpoint v6{ip("2001:db8::1"), 1};
    EXPECT_EQ(build_ip_udp_headers(buf, kGw4, v6, 0, 0), 0u);  // families differ
    EXPECT_EQ(build_ip_udp_headers(MutByteView(buf).first(27), kGw4, kRelay4, 0, 0), 0u);
    EXPECT_EQ(build_ip_udp_headers(buf, kGw4, kRelay4, 65535 - 28, 0), 28u);
    EXPECT_EQ(build_ip_udp_headers(buf, kGw4, kRelay4, 65535 - 27, 0), 0u);
    EXPECT_EQ(build_ip_udp_headers(buf, v6, v6, 65535 - 8, 0), 48u);
    EXPECT_EQ(build_ip_udp_headers(buf, v6, v6, 65535 - 7, 0), 0u);
    EXPECT_EQ(build_udp_datagram(MutByteView(buf).first(30), kGw4, kRelay4, Bytes(3, 0)), 0u);
}

TEST(UdpDatagram, EthernetPaddingIgnored) {
    Bytes d = kUdp4;
    d.insert(d.end(), 10, 0);
    UdpDatagram u;
    ASSERT_EQ(parse_udp_datagram(d, u, true), ParseError::ok);
    EXPECT_EQ(u.payload.size(), 8u);
}

TEST(UdpDatagram, OuterIpv4HeaderErrors) {
    EXPECT_EQ(parse({}), ParseError::truncated_ip_header);
    Bytes d = kUdp4;
    d[0] = 0x55;
    EXPECT_EQ(parse(d), ParseError::bad_ip_version);
    d[0] = 0x05;
    EXPECT_EQ(parse(d), ParseError::bad_ip_version);
    d[0] = 0x44;
    EXPECT_EQ(parse(d), ParseError::bad_ipv4_ihl);
    EXPECT_EQ(parse(ByteView(kUdp4).first(19)), ParseError::truncated_ip_header);
    d = kUdp4;
    d[0] = 0x4f;  // 60-octet header in 36 octets
    EXPECT_EQ(parse(d), ParseError::truncated_ip_header);
    d = kUdp4;
    d[3] = 37;  // total length beyond the packet
    EXPECT_EQ(parse(with_ipv4_checksum(d)), ParseError::bad_ip_total_length);
    d[3] = 19;  // total length below the header
    EXPECT_EQ(parse(with_ipv4_checksum(d)), ParseError::bad_ip_total_length);
    d = kUdp4;
    d[11] ^= 1;
    EXPECT_EQ(parse(d), ParseError::bad_ipv4_header_checksum);
    for (uint16_t frag : {0x2000, 0x0001, 0x6000}) {
        d = kUdp4;
        store_be16(&d[6], frag);
        EXPECT_EQ(parse(with_ipv4_checksum(d)), ParseError::ipv4_fragment) << frag;
    }
    d = kUdp4;
    d[9] = 6;
    EXPECT_EQ(parse(with_ipv4_checksum(d)), ParseError::not_udp);
}

TEST(UdpDatagram, OuterIpv6HeaderErrors) {
    EXPECT_EQ(parse(ByteView(kUdp6).first(39)), ParseError::truncated_ip_header);
    Bytes d = kUdp6;
    d[5] = 17;  // payload length beyond the packet
    EXPECT_EQ(parse(d), ParseError::bad_ip_total_length);
    for (uint8_t nh : {0, 6, 44, 58}) {  // extension headers are not expected on AMT control
        d = kUdp6;
        d[6] = nh;
        EXPECT_EQ(parse(d), ParseError::not_udp) << int(nh);
    }
}

TEST(UdpDatagram, UdpHeaderErrors) {
    Bytes d = kUdp4;
    d[3] = 27;  // 7 octets of UDP
    EXPECT_EQ(parse(with_ipv4_checksum(d)), ParseError::truncated_udp_header);
    d = kUdp4;
    d[25] = 7;
    EXPECT_EQ(parse(d, false), ParseError::bad_udp_length);
    d[25] = 17;
    EXPECT_EQ(parse(d, false), ParseError::bad_udp_length);
    d = kUdp6;
    d[45] = 7;
    EXPECT_EQ(parse(d, false), ParseError::bad_udp_length);
    // A UDP length shorter than the IP payload bounds the payload (and the checksum).
    d = kUdp4;
    d[25] = 12;
    UdpDatagram u;
    ASSERT_EQ(parse_udp_datagram(d, u, false), ParseError::ok);
    EXPECT_EQ(u.payload.size(), 4u);
    EXPECT_EQ(parse(d, true), ParseError::bad_udp_checksum);
}

TEST(Ethernet, UntaggedAndVlan) {
    const MacAddress dst = {1, 2, 3, 4, 5, 6}, src = {0xa, 0xb, 0xc, 0xd, 0xe, 0xf};
    Bytes f = build([&](MutByteView o) { return build_ethernet(o, dst, src, ethertype_ipv6); });
    EXPECT_EQ(f, (Bytes{1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x86, 0xdd}));
    EthernetHeader h;
    ASSERT_EQ(parse_ethernet(f, h), ParseError::ok);
    EXPECT_EQ(h.dst, dst);
    EXPECT_EQ(h.src, src);
    EXPECT_EQ(h.ethertype, ethertype_ipv6);
    EXPECT_EQ(h.vlan_tci, 0);
    EXPECT_EQ(h.size, 14u);
    Bytes tagged = {1,   2,   3,   4,    5,    6,    0xa,  0xb,  0xc,
                    0xd, 0xe, 0xf, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00};
    ASSERT_EQ(parse_ethernet(tagged, h), ParseError::ok);
    EXPECT_EQ(h.vlan_tci, 0x2064);
    EXPECT_EQ(h.ethertype, ethertype_ipv4);
    EXPECT_EQ(h.size, 18u);
    EXPECT_EQ(parse_ethernet(ByteView(tagged).first(17), h), ParseError::truncated_ip_header);
    EXPECT_EQ(parse_ethernet(ByteView(tagged).first(13), h), ParseError::truncated_ip_header);
    std::array<uint8_t, 13> small{};
    EXPECT_EQ(build_ethernet(small, dst, src, ethertype_ipv4), 0u);
}

TEST(Ipv4Header, OptionsAndLimits) {
    const Bytes ra = {0x94, 0x04, 0x00, 0x00};
    const Bytes h = build([&](MutByteView o) {
        return write_ipv4_header(o, {.tos = 0xc0,
                                     .total_length = 32,
                                     .dont_fragment = false,
                                     .ttl = 1,
                                     .protocol = 2,
                                     .src = 0,
                                     .dst = 0xe0000016,
                                     .options = ra});
    });
    ASSERT_EQ(h.size(), 24u);
    EXPECT_EQ(h, (Bytes{0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x44, 0x02,
                        0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00}));
    EXPECT_TRUE(ref_verifies(h));
    std::array<uint8_t, 80> buf{};
    const Bytes forty(40, 1), forty_four(44, 1), three(3, 1);
    EXPECT_EQ(write_ipv4_header(buf, {.options = forty}), 60u);
    EXPECT_EQ(buf[0], 0x4f);
    EXPECT_EQ(write_ipv4_header(buf, {.options = forty_four}), 0u);
    EXPECT_EQ(write_ipv4_header(buf, {.options = three}), 0u);
    EXPECT_EQ(write_ipv4_header(MutByteView(buf).first(19), {}), 0u);
}

TEST(Ipv6Header, FieldsAndLimits) {
    const Bytes h = build([&](MutByteView o) {
        return write_ipv6_header(o, {.traffic_class = 0xab,
                                     .flow_label = 0x12345,
                                     .payload_length = 0x0102,
                                     .next_header = 17,
                                     .hop_limit = 9,
                                     .src = ip("2001:db8::1"),
                                     .dst = ip("ff3e::1")});
    });
    ASSERT_EQ(h.size(), 40u);
    EXPECT_EQ(vec(ByteView(h).first(8)), (Bytes{0x6a, 0xb1, 0x23, 0x45, 0x01, 0x02, 17, 9}));
    EXPECT_EQ(IpAddress::v6_from_bytes(&h[8]), ip("2001:db8::1"));
    EXPECT_EQ(IpAddress::v6_from_bytes(&h[24]), ip("ff3e::1"));
    std::array<uint8_t, 40> buf{};
    EXPECT_EQ(write_ipv6_header(buf, {.src = ip("192.0.2.1"), .dst = ip("ff3e::1")}), 0u);
    EXPECT_EQ(write_ipv6_header(MutByteView(buf).first(39),
                                {.src = ip("2001:db8::1"), .dst = ip("ff3e::1")}),
              0u);
}

// ============================================================================================
// Checklist §6 item 6: sources the relay must never answer
// ============================================================================================

TEST(Malformed, Item6_MulticastSource) {
    for (const char* a : {"224.0.0.1", "232.1.1.1", "239.255.255.255", "ff02::1", "ff3e::1"}) {
        EXPECT_EQ(check_reply_source({ip(a), 5000}), ParseError::source_multicast) << a;
    }
}

TEST(Malformed, Item6_BroadcastSource) {
    EXPECT_EQ(check_reply_source({ip("255.255.255.255"), 5000}), ParseError::source_broadcast);
}

TEST(Malformed, Item6_UnspecifiedSource) {
    EXPECT_EQ(check_reply_source({ip("0.0.0.0"), 5000}), ParseError::source_unspecified);
    EXPECT_EQ(check_reply_source({ip("::"), 5000}), ParseError::source_unspecified);
}

TEST(Malformed, Item6_LoopbackSource) {
    for (const char* a : {"127.0.0.1", "127.255.255.254", "127.1.2.3", "::1"}) {
        EXPECT_EQ(check_reply_source({ip(a), 5000}), ParseError::source_loopback) << a;
    }
}

TEST(Malformed, Item6_SourcePortZero) {
    EXPECT_EQ(check_reply_source({ip("192.0.2.1"), 0}), ParseError::source_port_zero);
    EXPECT_EQ(check_reply_source({ip("2001:db8::1"), 0}), ParseError::source_port_zero);
}

TEST(Malformed, Item6_UnicastSourcesAccepted) {
    for (const char* a : {"192.0.2.1", "10.0.0.1", "223.255.255.254", "2001:db8::1", "fe80::1"}) {
        EXPECT_EQ(check_reply_source({ip(a), 1}), ParseError::ok) << a;
        EXPECT_EQ(check_reply_source({ip(a), 2268}), ParseError::ok) << a;
    }
}

// ============================================================================================
// Checklist §6 item 7: UDP checksums of control messages
// ============================================================================================

TEST(Malformed, Item7_ZeroUdpChecksumIpv4) {
    const Bytes d = build([&](MutByteView o) {
        return build_udp_datagram(o, kGw4, kRelay4, Bytes{3, 0, 0, 0, 1, 2, 3, 4},
                                  {.udp_checksum = false});
    });
    EXPECT_EQ(parse(d, true), ParseError::zero_udp_checksum);
    EXPECT_EQ(parse(d, false), ParseError::ok);  // the data path may accept it
    Bytes z = kUdp4;
    z[26] = z[27] = 0;
    EXPECT_EQ(parse(z, true), ParseError::zero_udp_checksum);
}

TEST(Malformed, Item7_ZeroUdpChecksumIpv6) {
    Bytes d = kUdp6;
    d[46] = d[47] = 0;
    EXPECT_EQ(parse(d, true), ParseError::zero_udp_checksum);
}

TEST(Malformed, Item7_WrongUdpChecksum) {
    for (const Bytes* good : {&kUdp4, &kUdp6}) {
        const size_t udp = (*good)[0] >> 4 == 4 ? 20 : 40;
        Bytes d = *good;
        d[udp + 7] ^= 0x01;  // checksum field
        EXPECT_EQ(parse(d, true), ParseError::bad_udp_checksum);
        EXPECT_EQ(parse(d, false), ParseError::ok);
        d = *good;
        d.back() ^= 0x80;  // payload
        EXPECT_EQ(parse(d, true), ParseError::bad_udp_checksum);
        d = *good;
        d[udp] ^= 0x01;  // source port
        EXPECT_EQ(parse(d, true), ParseError::bad_udp_checksum);
    }
    // The pseudo-header counts: a different source address (IPv4 header checksum fixed up).
    Bytes d = kUdp4;
    d[15] = 0x02;
    EXPECT_EQ(parse(with_ipv4_checksum(d), true), ParseError::bad_udp_checksum);
    d = kUdp6;
    d[23] = 0x03;
    EXPECT_EQ(parse(d, true), ParseError::bad_udp_checksum);
}

// ============================================================================================
// IpAddress
// ============================================================================================

TEST(IpAddress, ParseAndToString) {
    struct Case {
        const char* text;
        const char* canonical;
        Family family;
    };
    for (const Case& c :
         {Case{"192.0.2.1", "192.0.2.1", Family::ipv4}, Case{"0.0.0.0", "0.0.0.0", Family::ipv4},
          Case{"255.255.255.255", "255.255.255.255", Family::ipv4},
          Case{"2001:db8::1", "2001:db8::1", Family::ipv6},
          Case{"2001:DB8:0:0:0:0:0:1", "2001:db8::1", Family::ipv6}, Case{"::", "::", Family::ipv6},
          Case{"::1", "::1", Family::ipv6},
          Case{"::ffff:192.0.2.1", "::ffff:192.0.2.1", Family::ipv6},
          Case{"ff3e:0::8000:1", "ff3e::8000:1", Family::ipv6}}) {
        const auto a = IpAddress::parse(c.text);
        ASSERT_TRUE(a.has_value()) << c.text;
        EXPECT_EQ(a->family(), c.family) << c.text;
        EXPECT_EQ(a->to_string(), c.canonical);
        EXPECT_EQ(IpAddress::parse(a->to_string()), a);
    }
}

TEST(IpAddress, ParseRejectsGarbage) {
    for (std::string_view t : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", " 1.2.3.4", "1.2.3.4 ",
                               "1.2.3.4/24", "2001:db8::1::2", "gggg::1", "[::1]", "localhost",
                               "2001:db8::1%eth0", "1:2:3:4:5:6:7:8:9"}) {
        EXPECT_FALSE(IpAddress::parse(t).has_value()) << t;
    }
    EXPECT_FALSE(IpAddress::parse(std::string(100, '1')).has_value());
}

TEST(IpAddress, ParseRejectsEmbeddedNul) {
    // parse() copies the view into a C string for inet_pton, so the NUL ends the text early.
    using namespace std::string_view_literals;
    EXPECT_FALSE(IpAddress::parse("1.2.3.4\0junk"sv).has_value());
    EXPECT_FALSE(IpAddress::parse("2001:db8::1\0"sv).has_value());
}

TEST(IpAddress, Representations) {
    const IpAddress a = IpAddress::v4(0xc0000201);
    EXPECT_EQ(a, ip("192.0.2.1"));
    EXPECT_TRUE(a.is_v4());
    EXPECT_FALSE(a.is_v6());
    EXPECT_EQ(a.family(), Family::ipv4);
    EXPECT_EQ(a.v4_value(), 0xc0000201u);
    EXPECT_EQ(a.wire_size(), 4u);
    EXPECT_EQ(vec(a.wire()), (Bytes{0xc0, 0x00, 0x02, 0x01}));
    std::array<uint8_t, 16> compatible{};
    compatible[12] = 0xc0;
    compatible[14] = 0x02;
    compatible[15] = 0x01;
    EXPECT_EQ(a.canonical16(), compatible);  // ::192.0.2.1, the AMT Gateway IP form
    const uint8_t raw[4] = {0xc0, 0x00, 0x02, 0x01};
    EXPECT_EQ(IpAddress::v4_from_bytes(raw), a);

    const IpAddress b = ip("2001:db8::1");
    EXPECT_TRUE(b.is_v6());
    EXPECT_EQ(b.wire_size(), 16u);
    EXPECT_EQ(vec(b.wire()), vec(b.canonical16()));
    EXPECT_EQ(IpAddress::v6_from_bytes(b.canonical16().data()), b);
    // Same 16 octets, different family: an IPv6 ::192.0.2.1 is not the IPv4 address.
    EXPECT_NE(IpAddress::v6_from_bytes(compatible.data()), a);
    EXPECT_EQ(IpAddress{}, IpAddress::v4(0));
}

TEST(IpAddress, FromGatewayField) {
    const auto field = [](const char* v6_text) { return ip(v6_text).canonical16(); };
    IpAddress a = IpAddress::from_gateway_field(field("::198.51.100.7").data());  // compatible
    EXPECT_TRUE(a.is_v4());
    EXPECT_EQ(a, ip("198.51.100.7"));
    a = IpAddress::from_gateway_field(field("::ffff:198.51.100.7").data());  // mapped
    EXPECT_TRUE(a.is_v4());
    EXPECT_EQ(a, ip("198.51.100.7"));
    a = IpAddress::from_gateway_field(field("::").data());
    EXPECT_TRUE(a.is_v6());
    EXPECT_TRUE(a.is_unspecified());
    a = IpAddress::from_gateway_field(field("2001:db8::42").data());
    EXPECT_TRUE(a.is_v6());
    EXPECT_EQ(a, ip("2001:db8::42"));
    a = IpAddress::from_gateway_field(field("::1:ffff:c633:6407").data());  // neither form
    EXPECT_TRUE(a.is_v6());

    std::mt19937 rng(308);
    for (int i = 0; i < 300; ++i) {
        const IpAddress v4 = IpAddress::v4(1 + static_cast<uint32_t>(rng() % 0xfffffffe));
        EXPECT_EQ(IpAddress::from_gateway_field(v4.canonical16().data()), v4);
        Bytes raw = random_bytes(rng, 16);
        raw[0] = static_cast<uint8_t>(0x20 | (raw[0] & 0x1f));
        const IpAddress v6 = IpAddress::v6_from_bytes(raw.data());
        EXPECT_EQ(IpAddress::from_gateway_field(v6.canonical16().data()), v6);
    }
}

TEST(IpAddress, Classification) {
    enum : unsigned { U = 1, M = 2, L = 4, B = 8, LLM = 16, SSM = 32, LLU = 64 };
    struct Case {
        const char* text;
        unsigned flags;
    };
    for (const Case& c : {Case{"0.0.0.0", U},
                          Case{"192.0.2.1", 0},
                          Case{"127.0.0.1", L},
                          Case{"127.255.255.254", L},
                          Case{"128.0.0.1", 0},
                          Case{"255.255.255.255", B},
                          Case{"255.255.255.254", 0},
                          Case{"224.0.0.0", M | LLM},
                          Case{"224.0.0.1", M | LLM},
                          Case{"224.0.0.255", M | LLM},
                          Case{"224.0.1.0", M},
                          Case{"232.0.0.0", M | SSM},
                          Case{"232.255.255.255", M | SSM},
                          Case{"233.0.0.1", M},
                          Case{"239.255.255.255", M},
                          Case{"240.0.0.1", 0},
                          Case{"169.254.0.1", LLU},
                          Case{"169.255.0.1", 0},
                          Case{"::", U},
                          Case{"::1", L},
                          Case{"::2", 0},
                          Case{"2001:db8::1", 0},
                          Case{"fe80::1", LLU},
                          Case{"febf:ffff::1", LLU},
                          Case{"fec0::1", 0},
                          Case{"ff00::1", M | LLM},
                          Case{"ff01::1", M | LLM},
                          Case{"ff02::1", M | LLM},
                          Case{"ff12::1", M | LLM},
                          Case{"ff05::1", M},
                          Case{"ff0e::1", M},
                          Case{"ff3e::8000:1", M | SSM},
                          Case{"ff32::1", M | LLM | SSM},
                          Case{"ff3e:1::1", M}}) {
        const IpAddress a = ip(c.text);
        SCOPED_TRACE(c.text);
        EXPECT_EQ(a.is_unspecified(), (c.flags & U) != 0);
        EXPECT_EQ(a.is_multicast(), (c.flags & M) != 0);
        EXPECT_EQ(a.is_loopback(), (c.flags & L) != 0);
        EXPECT_EQ(a.is_limited_broadcast(), (c.flags & B) != 0);
        EXPECT_EQ(a.is_link_local_multicast(), (c.flags & LLM) != 0);
        EXPECT_EQ(a.is_ssm(), (c.flags & SSM) != 0);
        EXPECT_EQ(a.is_link_local_unicast(), (c.flags & LLU) != 0);
    }
}

TEST(IpAddress, EndpointToString) {
    EXPECT_EQ((UdpEndpoint{ip("192.0.2.1"), 2268}).to_string(), "192.0.2.1:2268");
    EXPECT_EQ((UdpEndpoint{ip("2001:db8::1"), 50000}).to_string(), "[2001:db8::1]:50000");
    EXPECT_EQ((UdpEndpoint{ip("::"), 0}).to_string(), "[::]:0");
}

TEST(ParseErrorNames, DistinctAndStable) {
    std::set<std::string_view> names;
    for (size_t i = 0; i < parse_error_count; ++i) {
        const std::string_view n = to_string(static_cast<ParseError>(i));
        EXPECT_FALSE(n.empty());
        EXPECT_NE(n, "invalid");
        EXPECT_TRUE(names.insert(n).second) << n;
    }
    EXPECT_EQ(to_string(ParseError::ok), "ok");
    EXPECT_EQ(to_string(ParseError::zero_udp_checksum), "zero_udp_checksum");
    EXPECT_EQ(to_string(ParseError::source_not_unicast), "source_not_unicast");
    EXPECT_EQ(to_string(static_cast<ParseError>(parse_error_count)), "invalid");
}

}  // namespace
