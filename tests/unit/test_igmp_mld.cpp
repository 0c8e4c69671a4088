// IGMPv3/v2 and MLDv2/v1 inside AMT (checklist §1.5, §1.8, §4.1): general queries, reports and
// leaves, record iteration, group/source checks, and the malformed inputs of checklist §6 items
// 13-17. Expected bytes are written by hand; checksums are checked with the tests' own sum.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include "codec_test_support.hpp"
#include "common/igmp_mld.hpp"

using namespace amt;

namespace {

void put(Bytes& b, ByteView v) {
    b.insert(b.end(), v.begin(), v.end());
}

void put16(Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

// ICMPv6 pseudo-header sum (RFC 8200 §8.1) from the addresses' octets.
uint16_t ref_pseudo6(const IpAddress& src, const IpAddress& dst, size_t length) {
    Bytes ph;
    put(ph, src.wire());
    put(ph, dst.wire());
    put16(ph, length >> 16);
    put16(ph, length & 0xffff);
    ph.insert(ph.end(), {0, 0, 0, 58});
    return ref_sum(ph);
}

// Checks the IGMP part (after a 24-octet header) or MLD part (after 40 + 8) of a datagram.
void expect_checksums_verify(ByteView d) {
    if (d[0] >> 4 == 4) {
        const size_t ihl = size_t{d[0] & 0x0fu} * 4;
        EXPECT_TRUE(ref_verifies(d.first(ihl))) << "IPv4 header checksum";
        EXPECT_TRUE(ref_verifies(d.subspan(ihl))) << "IGMP checksum";
    } else {
        const ByteView m = d.subspan(48);
        EXPECT_TRUE(ref_verifies(m, ref_pseudo6(IpAddress::v6_from_bytes(d.data() + 8),
                                                IpAddress::v6_from_bytes(d.data() + 24), m.size())))
            << "ICMPv6 checksum";
    }
}

// ---- Hand-written vectors ----

// clang-format off

// IPv4 + IGMPv3 general query, QRV 7, QQIC 127, MRC 255.
const Bytes kIgmpQuery = {
    0x46, 0xc0, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x44, 0x13,  // IHL 6, TTL 1, IGMP
    0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00,  // -> 224.0.0.1, RA
    0x11, 0xff, 0xe6, 0x81, 0x00, 0x00, 0x00, 0x00, 0x07, 0x7f, 0x00, 0x00,
};

// IPv6 + Hop-by-Hop + MLDv2 general query, QRV 7, QQIC 127, MRC 65535.
const Bytes kMldQuery = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // fe80::1
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x82, 0x00, 0x78, 0xa4, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x7f, 0x00, 0x00,
};

// IGMPv3 report from 0.0.0.0: IS_IN(232.1.1.1, {192.0.2.1, 192.0.2.2}), TO_EX(239.1.2.3, {}).
const Bytes kIgmpv3Report = {
    0x46, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x43, 0xea,
    0x00, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00,  // -> 224.0.0.22
    0x22, 0x00, 0x7a, 0xef, 0x00, 0x00, 0x00, 0x02,                          // 2 records
    0x01, 0x00, 0x00, 0x02, 0xe8, 0x01, 0x01, 0x01,                          // IS_IN, 2 sources
    0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
    0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02, 0x03,  // TO_EX, no sources
};

// MLDv2 report from fe80::1: ALLOW(ff3e::8000:1, {2001:db8::7}).
const Bytes kMldv2Report = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x34, 0x00, 0x01,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x8f, 0x00, 0xc0, 0xfb, 0x00, 0x00, 0x00, 0x01,  // 1 record
    0x05, 0x00, 0x00, 0x01,                          // ALLOW, 1 source
    0xff, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
};

// IGMPv2 report / leave for 239.1.2.3 from 192.0.2.10 (report to the group, leave to 224.0.0.2).
const Bytes kIgmpv2Report = {
    0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x71, 0x09,
    0xc0, 0x00, 0x02, 0x0a, 0xef, 0x01, 0x02, 0x03, 0x94, 0x04, 0x00, 0x00,
    0x16, 0x00, 0xf8, 0xfa, 0xef, 0x01, 0x02, 0x03,
};
const Bytes kIgmpv2Leave = {
    0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x82, 0x0b,
    0xc0, 0x00, 0x02, 0x0a, 0xe0, 0x00, 0x00, 0x02, 0x94, 0x04, 0x00, 0x00,
    0x17, 0x00, 0xf7, 0xfa, 0xef, 0x01, 0x02, 0x03,
};

// MLDv1 report / done for ff05::1:3 from fe80::1 (report to the group, done to ff02::2).
const Bytes kMldv1Report = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xff, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x83, 0x00, 0x80, 0x17, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03,
};
const Bytes kMldv1Done = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01,
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00,
    0x84, 0x00, 0x7f, 0x1c, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03,
};
// clang-format on

// ---- Datagram composer for malformed inputs (checksums by the reference sum) ----

const Bytes kRouterAlert = {0x94, 0x04, 0x00, 0x00};
const Bytes kHopByHopRa = {0x3a, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00};

struct V4Spec {
    Bytes options = kRouterAlert;
    uint8_t ttl = 1;
    uint8_t protocol = 2;
    uint16_t flags_offset = 0;
    uint32_t src = 0;
    uint32_t dst = 0xe0000016;
};

// IPv4 header + `igmp`, with the IGMP checksum (octets 2-3) and the header checksum filled in.
Bytes make_v4(Bytes igmp, const V4Spec& s = {}) {
    if (igmp.size() >= 4) {
        igmp[2] = igmp[3] = 0;
        store_be16(&igmp[2], ref_checksum(igmp));
    }
    const size_t hl = 20 + s.options.size();
    Bytes d(20, 0);
    d[0] = static_cast<uint8_t>(0x40 | hl / 4);
    d[1] = 0xc0;
    store_be16(&d[2], static_cast<uint16_t>(hl + igmp.size()));
    store_be16(&d[6], s.flags_offset);
    d[8] = s.ttl;
    d[9] = s.protocol;
    store_be32(&d[12], s.src);
    store_be32(&d[16], s.dst);
    put(d, s.options);
    store_be16(&d[10], ref_checksum(d));
    put(d, igmp);
    return d;
}

struct V6Spec {
    uint8_t next_header = 0;
    Bytes ext = kHopByHopRa;  // extension headers, each with its own next-header octet
    uint8_t hop_limit = 1;
    IpAddress src = ip("::");
    IpAddress dst = ip("ff02::16");
};

// IPv6 header + `ext` + `mld`, with the ICMPv6 checksum filled in from src and dst.
Bytes make_v6(Bytes mld, const V6Spec& s = {}) {
    if (mld.size() >= 4) {
        mld[2] = mld[3] = 0;
        store_be16(&mld[2], ref_checksum(mld, ref_pseudo6(s.src, s.dst, mld.size())));
    }
    Bytes d = {0x60, 0x00, 0x00, 0x00};
    put16(d, s.ext.size() + mld.size());
    d.push_back(s.next_header);
    d.push_back(s.hop_limit);
    put(d, s.src.wire());
    put(d, s.dst.wire());
    put(d, s.ext);
    put(d, mld);
    return d;
}

// One group record (checklist §4.1) with `aux_words` 32-bit words of aux data.
Bytes record(uint8_t type, const IpAddress& group, std::initializer_list<IpAddress> sources = {},
             uint8_t aux_words = 0) {
    Bytes r = {type, aux_words};
    put16(r, sources.size());
    put(r, group.wire());
    for (const IpAddress& s : sources)
        put(r, s.wire());
    r.insert(r.end(), size_t{aux_words} * 4, 0xa5);
    return r;
}

// A v3 (IGMP 0x22) or v2 (MLD 143) report: 8-octet header, then records and any trailing octets.
Bytes report_message(uint8_t type, size_t num_records, std::initializer_list<Bytes> records = {},
                     const Bytes& trailing = {}) {
    Bytes m = {type, 0, 0, 0, 0, 0};
    put16(m, num_records);
    for (const Bytes& r : records)
        put(m, r);
    put(m, trailing);
    return m;
}

// IGMPv2 (8 octets) or MLDv1 (24 octets) message for `group`.
Bytes v2_message(uint8_t type, const IpAddress& group) {
    Bytes m = {type, 0, 0, 0};
    if (group.is_v6()) m.insert(m.end(), 4, 0);  // Maximum Response Delay, Reserved
    put(m, group.wire());
    return m;
}

ParseError parse(ByteView d) {
    MembershipReport r;
    return parse_membership_report(d, r);
}

struct Rec {
    uint8_t type = 0;
    IpAddress group;
    std::vector<IpAddress> sources;
    bool operator==(const Rec&) const = default;
};

std::vector<Rec> read_records(const MembershipReport& r) {
    std::vector<Rec> out;
    GroupRecord g;
    RecordIterator it = r.records();
    while (it.next(g)) {
        Rec x{g.type, g.group, {}};
        for (size_t i = 0; i < g.num_sources; ++i)
            x.sources.push_back(g.source(i));
        out.push_back(x);
    }
    return out;
}

// Parses `d` and returns its records; fails the test if it does not parse.
std::vector<Rec> parse_records(ByteView d) {
    MembershipReport r;
    EXPECT_EQ(parse_membership_report(d, r), ParseError::ok);
    return read_records(r);
}

// ---- Random values ----

IpAddress rand_unicast(std::mt19937& rng, Family f) {
    if (f == Family::ipv4) {
        const uint32_t a = static_cast<uint32_t>(rng());
        return IpAddress::v4(((1 + (a >> 24) % 126) << 24) | (a & 0xffffff));  // 1-126.x.y.z
    }
    uint8_t raw[16];
    for (auto& b : raw)
        b = static_cast<uint8_t>(rng());
    raw[0] = static_cast<uint8_t>(0x20 | (raw[0] & 0x1f));
    return IpAddress::v6_from_bytes(raw);
}

IpAddress rand_group(std::mt19937& rng, Family f) {
    if (f == Family::ipv4) {
        return IpAddress::v4(0xe0000100 + static_cast<uint32_t>(rng() % 0x0fffff00));
    }
    uint8_t raw[16];
    for (auto& b : raw)
        b = static_cast<uint8_t>(rng());
    raw[0] = 0xff;
    return IpAddress::v6_from_bytes(raw);
}

constexpr int kIterations = 300;

// ============================================================================================
// General queries (checklist §1.8)
// ============================================================================================

TEST(GeneralQuery, Igmpv3ByteExact) {
    const Bytes got = build([](MutByteView o) {
        return build_igmpv3_general_query(o, {.robustness = 7, .qqic = 127, .max_resp_code = 255});
    });
    EXPECT_EQ(got.size(), igmpv3_general_query_size);
    EXPECT_EQ(got, kIgmpQuery);
    expect_checksums_verify(kIgmpQuery);
    GeneralQuery g;
    ASSERT_EQ(parse_general_query(kIgmpQuery, g), ParseError::ok);
    EXPECT_EQ(g.family, Family::ipv4);
    EXPECT_EQ(g.robustness, 7);
    EXPECT_EQ(g.qqic, 127);
    EXPECT_EQ(g.max_resp_code, 255);
    EXPECT_EQ(g.datagram_length, 36u);
}

TEST(GeneralQuery, Mldv2ByteExact) {
    const Bytes got = build([](MutByteView o) {
        return build_mldv2_general_query(o, {.robustness = 7, .qqic = 127, .max_resp_code = 65535});
    });
    EXPECT_EQ(got.size(), mldv2_general_query_size);
    EXPECT_EQ(got, kMldQuery);
    expect_checksums_verify(kMldQuery);
    GeneralQuery g;
    ASSERT_EQ(parse_general_query(kMldQuery, g), ParseError::ok);
    EXPECT_EQ(g.family, Family::ipv6);
    EXPECT_EQ(g.robustness, 7);
    EXPECT_EQ(g.qqic, 127);
    EXPECT_EQ(g.max_resp_code, 65535);
    EXPECT_EQ(g.datagram_length, 76u);
}

TEST(GeneralQuery, RoundTripRandomParameters) {
    std::mt19937 rng(201);
    for (int i = 0; i < kIterations; ++i) {
        const bool v4 = rng() % 2;
        const QueryParameters q{static_cast<uint8_t>(1 + rng() % 7), static_cast<uint8_t>(rng()),
                                static_cast<uint16_t>(v4 ? rng() % 256 : rng() % 65536)};
        const Bytes d = build([&](MutByteView o) {
            return v4 ? build_igmpv3_general_query(o, q) : build_mldv2_general_query(o, q);
        });
        ASSERT_EQ(d.size(), v4 ? 36u : 76u);
        expect_checksums_verify(d);
        GeneralQuery g;
        ASSERT_EQ(parse_general_query(d, g), ParseError::ok);
        EXPECT_EQ(g.family, v4 ? Family::ipv4 : Family::ipv6);
        EXPECT_EQ(g.robustness, q.robustness);
        EXPECT_EQ(g.qqic, q.qqic);
        EXPECT_EQ(g.max_resp_code, q.max_resp_code);
        EXPECT_EQ(g.datagram_length, d.size());
    }
}

TEST(GeneralQuery, BuildersNeedRoom) {
    std::array<uint8_t, 80> buf{};
    EXPECT_EQ(build_igmpv3_general_query(MutByteView(buf).first(35), {}), 0u);
    EXPECT_EQ(build_mldv2_general_query(MutByteView(buf).first(75), {}), 0u);
}

TEST(GeneralQuery, ParseRejectsWhatIsNotAGeneralQuery) {
    GeneralQuery g;
    EXPECT_EQ(parse_general_query({}, g), ParseError::inner_truncated);
    EXPECT_EQ(parse_general_query(kIgmpv3Report, g), ParseError::not_general_query);
    EXPECT_EQ(parse_general_query(kMldv2Report, g), ParseError::not_general_query);
    Bytes bad = kIgmpQuery;
    bad[35] ^= 1;
    EXPECT_EQ(parse_general_query(bad, g), ParseError::igmp_bad_checksum);
    bad = kMldQuery;
    bad[75] ^= 1;
    EXPECT_EQ(parse_general_query(bad, g), ParseError::mld_bad_checksum);
    bad = kIgmpQuery;
    bad[0] = 0x56;
    EXPECT_EQ(parse_general_query(bad, g), ParseError::inner_bad_version);
    // IGMPv2 (8 octets) and MLDv1 (24 octets) queries are valid router queries but not the
    // IGMPv3 / MLDv2 general query a relay must send.
    EXPECT_EQ(parse_general_query(make_v4({0x11, 10, 0, 0, 0, 0, 0, 0}, {.dst = 0xe0000001}), g),
              ParseError::not_general_query);
    EXPECT_EQ(parse_general_query(make_v6(v2_message(130, ip("::")), {.dst = ip("ff02::1")}), g),
              ParseError::not_general_query);
    RouterQuery q;
    EXPECT_EQ(parse_router_query(make_v4({0x11, 10, 0, 0, 0, 0, 0, 0}, {.dst = 0xe0000001}), q),
              ParseError::ok);
    EXPECT_EQ(q.version, 2);
    EXPECT_EQ(parse_router_query(make_v4({0x11, 10, 0, 0, 0, 0, 0}, {.dst = 0xe0000001}), q),
              ParseError::igmp_truncated);
}

TEST(GeneralQuery, GroupSpecificQueryIsNotGeneral) {
    // RFC 3376 §4.1.9 / RFC 3810 §5.1.10: a General Query has group address 0 / ::. A
    // group-specific query is not one (ParseError::not_general_query).
    Bytes igmp = {0x11, 10, 0, 0, 239, 1, 2, 3, 2, 125, 0, 0};
    GeneralQuery g;
    EXPECT_EQ(parse_general_query(make_v4(igmp, {.dst = 0xef010203}), g),
              ParseError::not_general_query);
    Bytes mld = {130, 0, 0, 0, 0x03, 0xe8, 0, 0};
    put(mld, ip("ff3e::8000:1").wire());
    mld.insert(mld.end(), {2, 125, 0, 0});
    EXPECT_EQ(parse_general_query(make_v6(mld, {.dst = ip("ff3e::8000:1")}), g),
              ParseError::not_general_query);
}

TEST(GeneralQuery, RobustnessAbove7EncodesQrvZero) {
    // RFC 3376 §4.1.6 and RFC 3810 §5.1.8: if the Robustness Variable exceeds 7, QRV is set to 0.
    for (uint8_t rv = 8; rv <= 15; ++rv) {
        const Bytes v4 =
            build([&](MutByteView o) { return build_igmpv3_general_query(o, {.robustness = rv}); });
        const Bytes v6 =
            build([&](MutByteView o) { return build_mldv2_general_query(o, {.robustness = rv}); });
        ASSERT_EQ(v4.size(), 36u);
        ASSERT_EQ(v6.size(), 76u);
        EXPECT_EQ(v4[32] & 0x07, 0) << "IGMP robustness " << int(rv);
        EXPECT_EQ(v6[72] & 0x07, 0) << "MLD robustness " << int(rv);
    }
}

// ============================================================================================
// Reports and leaves: byte-exact builders
// ============================================================================================

TEST(ReportBuilder, Igmpv3TwoRecordsByteExact) {
    const Bytes got = build([](MutByteView o) {
        ReportBuilder b(o, Family::ipv4);
        const IpAddress s[] = {ip("192.0.2.1"), ip("192.0.2.2")};
        EXPECT_TRUE(b.add_record(RecordType::mode_is_include, ip("232.1.1.1"), s));
        EXPECT_TRUE(b.add_record(RecordType::change_to_exclude, ip("239.1.2.3"), {}));
        return b.finish();
    });
    EXPECT_EQ(got, kIgmpv3Report);
    expect_checksums_verify(kIgmpv3Report);

    MembershipReport r;
    ASSERT_EQ(parse_membership_report(kIgmpv3Report, r), ParseError::ok);
    EXPECT_EQ(r.kind, ReportKind::igmpv3_report);
    EXPECT_EQ(r.family, Family::ipv4);
    EXPECT_TRUE(r.is_state_report());
    EXPECT_EQ(r.inner_src, ip("0.0.0.0"));
    EXPECT_EQ(r.inner_dst, ip("224.0.0.22"));
    EXPECT_EQ(r.hop_limit, 1);
    EXPECT_TRUE(r.router_alert);
    EXPECT_EQ(r.datagram_length, kIgmpv3Report.size());
    EXPECT_EQ(r.num_records, 2);
    const std::vector<Rec> expected = {
        {1, ip("232.1.1.1"), {ip("192.0.2.1"), ip("192.0.2.2")}},
        {4, ip("239.1.2.3"), {}},
    };
    EXPECT_EQ(read_records(r), expected);
}

TEST(ReportBuilder, Mldv2ByteExactWithInnerSource) {
    const Bytes got = build([](MutByteView o) {
        ReportBuilder b(o, Family::ipv6, ip("fe80::1"));
        const IpAddress s[] = {ip("2001:db8::7")};
        EXPECT_TRUE(b.add_record(RecordType::allow_new_sources, ip("ff3e::8000:1"), s));
        return b.finish();
    });
    EXPECT_EQ(got, kMldv2Report);
    expect_checksums_verify(kMldv2Report);

    MembershipReport r;
    ASSERT_EQ(parse_membership_report(kMldv2Report, r), ParseError::ok);
    EXPECT_EQ(r.kind, ReportKind::mldv2_report);
    EXPECT_EQ(r.family, Family::ipv6);
    EXPECT_EQ(r.inner_src, ip("fe80::1"));
    EXPECT_EQ(r.inner_dst, ip("ff02::16"));
    EXPECT_EQ(r.hop_limit, 1);
    EXPECT_TRUE(r.router_alert);
    EXPECT_EQ(r.datagram_length, kMldv2Report.size());
    const std::vector<Rec> expected = {{5, ip("ff3e::8000:1"), {ip("2001:db8::7")}}};
    EXPECT_EQ(read_records(r), expected);
}

TEST(ReportBuilder, EmptyReports) {
    for (Family f : {Family::ipv4, Family::ipv6}) {
        const Bytes d = build([&](MutByteView o) { return ReportBuilder(o, f).finish(); });
        ASSERT_EQ(d.size(), f == Family::ipv4 ? 32u : 56u);
        expect_checksums_verify(d);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
        EXPECT_EQ(r.num_records, 0);
        EXPECT_TRUE(read_records(r).empty());
    }
}

TEST(ReportBuilder, RejectedRecordLeavesReportUnchanged) {
    std::array<uint8_t, 44> buf{};  // room for a 32-octet empty IGMPv3 report + one 12-octet record
    ReportBuilder b(buf, Family::ipv4);
    const IpAddress one[] = {ip("192.0.2.1")};
    const IpAddress two[] = {ip("192.0.2.1"), ip("192.0.2.2")};
    const IpAddress v6[] = {ip("2001:db8::1")};
    EXPECT_FALSE(b.add_record(RecordType::allow_new_sources, ip("232.1.1.1"), two));  // too big
    EXPECT_FALSE(b.add_record(RecordType::allow_new_sources, ip("ff3e::1"), {}));     // family
    EXPECT_FALSE(b.add_record(RecordType::allow_new_sources, ip("232.1.1.1"), v6));   // family
    EXPECT_TRUE(b.add_record(RecordType::allow_new_sources, ip("232.1.1.1"), one));
    EXPECT_FALSE(b.add_record(RecordType::allow_new_sources, ip("232.1.1.2"), {}));  // full
    ASSERT_EQ(b.finish(), 44u);
    const std::vector<Rec> expected = {{5, ip("232.1.1.1"), {ip("192.0.2.1")}}};
    EXPECT_EQ(parse_records(buf), expected);

    std::array<uint8_t, 31> tiny{};
    EXPECT_EQ(ReportBuilder(tiny, Family::ipv4).finish(), 0u);
}

TEST(V1V2, ByteExactReportsAndLeaves) {
    struct Case {
        ReportKind kind;
        const char* group;
        const char* src;
        const Bytes* expected;
        const char* dst;
    };
    for (const Case& c :
         {Case{ReportKind::igmpv2_report, "239.1.2.3", "192.0.2.10", &kIgmpv2Report, "239.1.2.3"},
          Case{ReportKind::igmpv2_leave, "239.1.2.3", "192.0.2.10", &kIgmpv2Leave, "224.0.0.2"},
          Case{ReportKind::mldv1_report, "ff05::1:3", "fe80::1", &kMldv1Report, "ff05::1:3"},
          Case{ReportKind::mldv1_done, "ff05::1:3", "fe80::1", &kMldv1Done, "ff02::2"}}) {
        SCOPED_TRACE(c.dst);
        EXPECT_EQ(build([&](MutByteView o) {
                      return build_v1v2_message(o, c.kind, ip(c.group), ip(c.src));
                  }),
                  *c.expected);
        expect_checksums_verify(*c.expected);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(*c.expected, r), ParseError::ok);
        EXPECT_EQ(r.kind, c.kind);
        EXPECT_FALSE(r.is_state_report());
        EXPECT_EQ(r.group, ip(c.group));
        EXPECT_EQ(r.inner_src, ip(c.src));
        EXPECT_EQ(r.inner_dst, ip(c.dst));
        EXPECT_EQ(r.hop_limit, 1);
        EXPECT_TRUE(r.router_alert);
        EXPECT_EQ(r.datagram_length, c.expected->size());
    }
}

TEST(V1V2, BuilderRejectsMismatchedFamiliesAndKinds) {
    std::array<uint8_t, 128> buf{};
    EXPECT_EQ(build_v1v2_message(buf, ReportKind::igmpv2_report, ip("ff05::1"), ip("0.0.0.0")), 0u);
    EXPECT_EQ(build_v1v2_message(buf, ReportKind::mldv1_done, ip("ff05::1"), ip("0.0.0.0")), 0u);
    EXPECT_EQ(build_v1v2_message(buf, ReportKind::igmpv3_report, ip("239.1.1.1"), ip("0.0.0.0")),
              0u);
    EXPECT_EQ(build_v1v2_message(MutByteView(buf).first(31), ReportKind::igmpv2_report,
                                 ip("239.1.1.1"), ip("0.0.0.0")),
              0u);
}

// ============================================================================================
// Random round trips
// ============================================================================================

TEST(RoundTrip, ReportsWithSeveralRecordsAndSources) {
    std::mt19937 rng(202);
    for (int i = 0; i < kIterations; ++i) {
        const Family f = rng() % 2 ? Family::ipv4 : Family::ipv6;
        const IpAddress src =
            rng() % 4 ? rand_unicast(rng, f) : ip(f == Family::ipv4 ? "0.0.0.0" : "::");
        std::vector<Rec> recs(rng() % 9);
        for (Rec& r : recs) {
            r.type = static_cast<uint8_t>(1 + rng() % 6);
            r.group = rand_group(rng, f);
            r.sources.resize(rng() % 12);
            for (IpAddress& s : r.sources)
                s = rand_unicast(rng, f);
        }
        const Bytes d = build([&](MutByteView o) {
            ReportBuilder b(o, f, src);
            for (const Rec& r : recs) {
                EXPECT_TRUE(b.add_record(static_cast<RecordType>(r.type), r.group, r.sources));
            }
            return b.finish();
        });
        ASSERT_FALSE(d.empty());
        expect_checksums_verify(d);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
        EXPECT_EQ(r.kind, f == Family::ipv4 ? ReportKind::igmpv3_report : ReportKind::mldv2_report);
        EXPECT_EQ(r.family, f);
        EXPECT_EQ(r.inner_src, src);
        EXPECT_EQ(r.inner_dst, ip(f == Family::ipv4 ? "224.0.0.22" : "ff02::16"));
        EXPECT_EQ(r.hop_limit, 1);
        EXPECT_TRUE(r.router_alert);
        EXPECT_EQ(r.datagram_length, d.size());
        EXPECT_EQ(size_t{r.num_records}, recs.size());
        EXPECT_EQ(read_records(r), recs);
    }
}

TEST(RoundTrip, V1V2Messages) {
    std::mt19937 rng(203);
    const ReportKind kinds[] = {ReportKind::igmpv2_report, ReportKind::igmpv2_leave,
                                ReportKind::mldv1_report, ReportKind::mldv1_done};
    for (int i = 0; i < kIterations; ++i) {
        const ReportKind kind = kinds[rng() % 4];
        const Family f = kind == ReportKind::igmpv2_report || kind == ReportKind::igmpv2_leave
                             ? Family::ipv4
                             : Family::ipv6;
        const IpAddress group = rand_group(rng, f);
        const IpAddress src = rand_unicast(rng, f);
        const Bytes d =
            build([&](MutByteView o) { return build_v1v2_message(o, kind, group, src); });
        ASSERT_EQ(d.size(), f == Family::ipv4 ? 32u : 72u);
        expect_checksums_verify(d);
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
        EXPECT_EQ(r.kind, kind);
        EXPECT_EQ(r.group, group);
        EXPECT_EQ(r.inner_src, src);
    }
}

// ============================================================================================
// Record iteration and acceptance rules (checklist §4.1, §2.6)
// ============================================================================================

TEST(RecordIterator, HandMadeIteratorStopsAtTruncation) {
    const Bytes rec1 = record(1, ip("232.1.1.1"), {ip("192.0.2.1")});
    Bytes bytes = rec1;
    const Bytes rec2 = record(2, ip("232.1.1.2"), {ip("192.0.2.1"), ip("192.0.2.2")});
    bytes.insert(bytes.end(), rec2.begin(), rec2.end() - 2);  // second record cut short
    RecordIterator it(bytes, 3, Family::ipv4);
    GroupRecord g;
    ASSERT_TRUE(it.next(g));
    EXPECT_EQ(g.group, ip("232.1.1.1"));
    EXPECT_FALSE(it.next(g));
    EXPECT_FALSE(it.next(g));
    RecordIterator none(bytes, 0, Family::ipv4);
    EXPECT_FALSE(none.next(g));
}

TEST(Report, AnyInnerSourceAccepted) {
    for (uint32_t src : {0u, 0x0a010203u, 0xc000020au}) {
        EXPECT_EQ(parse(make_v4(report_message(0x22, 0), {.src = src})), ParseError::ok);
    }
    for (const char* src : {"::", "fe80::1", "2001:db8::9"}) {
        EXPECT_EQ(parse(make_v6(report_message(143, 0), {.src = ip(src)})), ParseError::ok);
    }
}

TEST(Report, LooseHeaderFieldsAreReportedNotRejected) {
    // Checklist §8.4: TTL != 1, no Router Alert, DF and odd destinations only count and log.
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(
                  make_v4(report_message(0x22, 0),
                          {.options = {}, .ttl = 64, .flags_offset = 0x4000, .dst = 0x0a000001}),
                  r),
              ParseError::ok);
    EXPECT_EQ(r.hop_limit, 64);
    EXPECT_FALSE(r.router_alert);
    EXPECT_EQ(r.inner_dst, ip("10.0.0.1"));
    ASSERT_EQ(parse_membership_report(
                  make_v6(report_message(143, 0), {.hop_limit = 255, .dst = ip("ff02::1")}), r),
              ParseError::ok);
    EXPECT_EQ(r.hop_limit, 255);
    EXPECT_TRUE(r.router_alert);
}

// Checklist §8.4 (issue 18, item 6): what is accepted but odd is named, per message kind.
TEST(Report, InnerAnomaliesPerKind) {
    const auto anomalies = [](const Bytes& d) {
        MembershipReport r;
        EXPECT_EQ(parse_membership_report(d, r), ParseError::ok);
        std::set<std::string_view> out;
        const uint8_t bits = inner_anomalies(r);
        for (size_t i = 0; i < inner_anomaly_count; ++i) {
            if (bits & (1u << i)) out.insert(to_string(static_cast<InnerAnomaly>(i)));
        }
        return out;
    };
    using Names = std::set<std::string_view>;
    const IpAddress g4 = ip("239.1.1.1"), g6 = ip("ff3e::1");
    // As RFC 3376 / 3810 send them: nothing to report.
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0))), Names{});
    EXPECT_EQ(anomalies(make_v6(report_message(143, 0))), Names{});
    EXPECT_EQ(anomalies(make_v4(v2_message(0x16, g4), {.dst = 0xef010101})), Names{});
    EXPECT_EQ(anomalies(make_v4(v2_message(0x17, g4), {.dst = 0xe0000002})), Names{});
    EXPECT_EQ(anomalies(make_v4(v2_message(0x17, g4), {.dst = 0xef010101})), Names{});
    EXPECT_EQ(anomalies(make_v6(v2_message(131, g6), {.dst = g6})), Names{});
    EXPECT_EQ(anomalies(make_v6(v2_message(132, g6), {.dst = ip("ff02::2")})), Names{});
    // Each anomaly alone, then all three.
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0), {.options = {}})),
              Names{"missing_router_alert"});
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0), {.options = {0, 0, 0, 0}})),
              Names{"missing_router_alert"});  // VLC's all-zero option word
    EXPECT_EQ(anomalies(make_v6(report_message(143, 0), {.next_header = 58, .ext = {}})),
              Names{"missing_router_alert"});
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0), {.ttl = 64})), Names{"ttl_not_1"});
    EXPECT_EQ(anomalies(make_v6(report_message(143, 0), {.hop_limit = 255})), Names{"ttl_not_1"});
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0), {.dst = 0xe0000001})),
              Names{"unexpected_destination"});
    EXPECT_EQ(anomalies(make_v6(report_message(143, 0), {.dst = ip("ff02::1")})),
              Names{"unexpected_destination"});
    EXPECT_EQ(anomalies(make_v4(v2_message(0x16, g4), {.dst = 0xe0000016})),
              Names{"unexpected_destination"});
    EXPECT_EQ(anomalies(make_v4(report_message(0x22, 0), {.options = {}, .ttl = 2, .dst = 1})),
              (Names{"missing_router_alert", "ttl_not_1", "unexpected_destination"}));
}

// ============================================================================================
// Checklist §6 item 13: inner IP header
// ============================================================================================

TEST(Malformed, Item13_InnerVersionNot4Or6) {
    EXPECT_EQ(parse({}), ParseError::inner_truncated);
    for (uint8_t v : {0, 1, 2, 3, 5, 7, 15}) {
        Bytes d = kIgmpv3Report;
        d[0] = static_cast<uint8_t>(v << 4 | 6);
        EXPECT_EQ(parse(d), ParseError::inner_bad_version) << int(v);
    }
}

TEST(Malformed, Item13_Ipv4TruncatedHeader) {
    for (size_t n = 1; n < 20; ++n) {
        EXPECT_EQ(parse(ByteView(kIgmpv2Report).first(n)), ParseError::inner_truncated) << n;
    }
}

TEST(Malformed, Item13_Ipv4IhlBelow5) {
    for (uint8_t ihl = 0; ihl < 5; ++ihl) {
        Bytes d = kIgmpv2Report;
        d[0] = static_cast<uint8_t>(0x40 | ihl);
        EXPECT_EQ(parse(d), ParseError::inner_bad_ihl) << int(ihl);
    }
}

TEST(Malformed, Item13_Ipv4IhlBeyondAvailable) {
    Bytes d = kIgmpv2Report;
    d[0] = 0x4f;  // 60 octets > 32
    EXPECT_EQ(parse(d), ParseError::inner_header_overrun);
    EXPECT_EQ(parse(ByteView(kIgmpv2Report).first(22)), ParseError::inner_header_overrun);
}

TEST(Malformed, Item13_Ipv4TotalLengthBelowIhl) {
    Bytes d = kIgmpv2Report;
    store_be16(&d[2], 23);
    EXPECT_EQ(parse(d), ParseError::inner_total_length_short);
}

TEST(Malformed, Item13_Ipv4TotalLengthBeyondAvailable) {
    Bytes d = kIgmpv2Report;
    store_be16(&d[2], 33);
    EXPECT_EQ(parse(d), ParseError::inner_total_length_overrun);
    EXPECT_EQ(parse(ByteView(kIgmpv3Report).first(kIgmpv3Report.size() - 1)),
              ParseError::inner_total_length_overrun);
}

TEST(Malformed, Item13_Ipv4TotalLengthBelowAvailableIgnoresTail) {
    Bytes d = kIgmpv3Report;
    d.insert(d.end(), {1, 2, 3, 4, 5});
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
    EXPECT_EQ(r.datagram_length, kIgmpv3Report.size());
    EXPECT_EQ(read_records(r).size(), 2u);
}

TEST(Malformed, Item13_Ipv4BadHeaderChecksum) {
    Bytes d = kIgmpv2Report;
    d[11] ^= 0x01;
    EXPECT_EQ(parse(d), ParseError::inner_bad_header_checksum);
    d = kIgmpv2Report;
    d[8] = 2;  // TTL changed, checksum not updated
    EXPECT_EQ(parse(d), ParseError::inner_bad_header_checksum);
}

TEST(Malformed, Item13_Ipv4Fragment) {
    for (uint16_t frag : {0x2000, 0x0001, 0x2001, 0x1fff, 0x6000}) {
        EXPECT_EQ(parse(make_v4(report_message(0x22, 0), {.flags_offset = frag})),
                  ParseError::inner_fragment)
            << frag;
    }
    EXPECT_EQ(parse(make_v4(report_message(0x22, 0), {.flags_offset = 0x4000})), ParseError::ok);
}

TEST(Malformed, Item13_Ipv4ProtocolNot2) {
    for (uint8_t proto : {0, 1, 6, 17, 103}) {
        EXPECT_EQ(parse(make_v4(report_message(0x22, 0), {.protocol = proto})),
                  ParseError::inner_not_igmp)
            << int(proto);
    }
}

TEST(Malformed, Item13_Ipv4MalformedOptions) {
    const Bytes bad_options[] = {
        {0x94, 0x00, 0x00, 0x00},  // length 0
        {0x94, 0x01, 0x00, 0x00},  // length 1
        {0x94, 0x08, 0x00, 0x00},  // length beyond the header
        {0x94, 0x03, 0x00, 0x00},  // Router Alert of 3 octets: it has 4 (RFC 2113; issue 18)
        {0x94, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ... or of 6
        {0x01, 0x01, 0x01, 0x94},                          // type in the last octet, no length
        {0x07, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x83, 0x09, 0x00, 0x00, 0x00},  // 2nd overruns
    };
    for (const Bytes& opts : bad_options) {
        EXPECT_EQ(parse(make_v4(report_message(0x22, 0), {.options = opts})),
                  ParseError::inner_bad_option);
    }
}

TEST(Malformed, Item13_Ipv4OptionVariantsAccepted) {
    MembershipReport r;
    // NOP, Router Alert, End of List, padding.
    ASSERT_EQ(parse_membership_report(
                  make_v4(report_message(0x22, 0), {.options = {1, 0x94, 4, 0, 0, 0, 0, 0}}), r),
              ParseError::ok);
    EXPECT_TRUE(r.router_alert);
    ASSERT_EQ(parse_membership_report(make_v4(report_message(0x22, 0), {.options = {}}), r),
              ParseError::ok);
    EXPECT_FALSE(r.router_alert);
}

TEST(Malformed, Item13_VlcIhl6AllZeroOptionWordAccepted) {
    MembershipReport r;
    const Bytes d = make_v4(report_message(0x22, 1, {record(4, ip("239.1.1.1"))}, {0, 0, 0, 0}),
                            {.options = {0, 0, 0, 0}});
    ASSERT_EQ(d[0], 0x46);
    ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
    EXPECT_FALSE(r.router_alert);
    const std::vector<Rec> expected = {{4, ip("239.1.1.1"), {}}};
    EXPECT_EQ(read_records(r), expected);
}

TEST(Malformed, Item13_Ipv6TruncatedHeader) {
    for (size_t n = 1; n < 40; ++n) {
        EXPECT_EQ(parse(ByteView(kMldv2Report).first(n)), ParseError::inner_truncated) << n;
    }
}

TEST(Malformed, Item13_Ipv6PayloadLengthMismatch) {
    Bytes d = kMldv2Report;
    store_be16(&d[4], static_cast<uint16_t>(d.size() - 40 + 1));
    EXPECT_EQ(parse(d), ParseError::inner_total_length_overrun);
    EXPECT_EQ(parse(ByteView(kMldv2Report).first(kMldv2Report.size() - 1)),
              ParseError::inner_total_length_overrun);
    d = kMldv2Report;  // payload length shorter than what is there: the tail is ignored
    d.insert(d.end(), {9, 9, 9, 9});
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
    EXPECT_EQ(r.datagram_length, kMldv2Report.size());
}

TEST(Malformed, Item13_Ipv6MissingHopByHopAccepted) {
    MembershipReport r;
    const Bytes d = make_v6(report_message(143, 1, {record(5, ip("ff3e::1"), {ip("2001:db8::1")})}),
                            {.next_header = 58, .ext = {}});
    ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
    EXPECT_FALSE(r.router_alert);
    EXPECT_EQ(r.datagram_length, d.size());
    EXPECT_EQ(read_records(r).size(), 1u);
}

TEST(Malformed, Item13_Ipv6RouterAlertOfWrongLength) {
    // Hop-by-Hop: Router Alert with 3 octets of value (RFC 2711 gives it 2), then Pad1.
    const Bytes ext = {0x3a, 0x00, 0x05, 0x03, 0x00, 0x00, 0x00, 0x00};
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = ext})), ParseError::inner_bad_option);
}

TEST(Malformed, Item13_Ipv6TwoHopByHopHeaders) {
    Bytes ext = {0x00, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00};  // HbH -> HbH
    put(ext, kHopByHopRa);
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = ext})),
              ParseError::inner_bad_extension_header);
}

TEST(Malformed, Item13_Ipv6HopByHopLengthOverrun) {
    Bytes ext = kHopByHopRa;
    ext[1] = 0xff;  // claims 2048 octets
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = ext})),
              ParseError::inner_extension_overrun);
    // An option running past the end of its header.
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = {0x3a, 0, 0x05, 0x06, 0, 0, 0, 0}})),
              ParseError::inner_extension_overrun);
    // An option type in the last octet, without its length.
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = {0x3a, 0, 0, 0, 0, 0, 0, 0x05}})),
              ParseError::inner_extension_overrun);
    // Fewer than 8 octets of payload for the Hop-by-Hop header.
    EXPECT_EQ(parse(make_v6({}, {.ext = {0x3a, 0, 0x01, 0x02}})),
              ParseError::inner_extension_overrun);
}

TEST(Malformed, Item13_Ipv6UnknownOrLongExtensionChain) {
    // Hop-by-Hop followed by Routing (43), Fragment (44), Destination Options (60).
    for (uint8_t nh : {43, 44, 60, 135, 253}) {
        Bytes ext = kHopByHopRa;
        ext[0] = nh;
        ext.insert(ext.end(), {58, 0, 0, 0, 0, 0, 0, 0});
        EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = ext})),
                  ParseError::inner_bad_extension_header)
            << int(nh);
    }
    // A chain that does not start with Hop-by-Hop.
    EXPECT_EQ(parse(make_v6(report_message(143, 0),
                            {.next_header = 60, .ext = {58, 0, 1, 4, 0, 0, 0, 0}})),
              ParseError::inner_bad_extension_header);
}

TEST(Malformed, Item13_Ipv6NextHeaderNot58) {
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.next_header = 17, .ext = {}})),
              ParseError::inner_not_icmpv6);
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.next_header = 59, .ext = {}})),
              ParseError::inner_not_icmpv6);
    Bytes ext = kHopByHopRa;
    ext[0] = 6;
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = ext})), ParseError::inner_not_icmpv6);
}

TEST(Malformed, Item13_Ipv6JumboOption) {
    EXPECT_EQ(parse(make_v6(report_message(143, 0), {.ext = {0x3a, 0, 0xc2, 4, 0, 1, 0, 0}})),
              ParseError::inner_jumbo_option);
}

// ============================================================================================
// Checklist §6 item 14: IGMP / ICMPv6 checks
// ============================================================================================

TEST(Malformed, Item14_IgmpWrongChecksum) {
    Bytes d = kIgmpv3Report;
    d[27] ^= 0x40;
    EXPECT_EQ(parse(d), ParseError::igmp_bad_checksum);
    d = kIgmpv3Report;
    d[43] ^= 0x01;  // a source address changed
    EXPECT_EQ(parse(d), ParseError::igmp_bad_checksum);
    d = kIgmpv2Report;
    d[26] = d[27] = 0;
    EXPECT_EQ(parse(d), ParseError::igmp_bad_checksum);
}

TEST(Malformed, Item14_MldWrongChecksum) {
    Bytes d = kMldv2Report;
    d[50] ^= 0x01;
    EXPECT_EQ(parse(d), ParseError::mld_bad_checksum);
    d = kMldv1Done;
    d[71] ^= 0x10;
    EXPECT_EQ(parse(d), ParseError::mld_bad_checksum);
}

TEST(Malformed, Item14_MldPseudoHeaderWithWrongSource) {
    Bytes d = kMldv2Report;  // checksummed with fe80::1
    std::fill(d.begin() + 8, d.begin() + 24, 0);
    EXPECT_EQ(parse(d), ParseError::mld_bad_checksum);
    d = kMldv2Report;
    d[39] = 0x01;  // destination ff02::1 instead of ff02::16
    EXPECT_EQ(parse(d), ParseError::mld_bad_checksum);
}

TEST(Malformed, Item14_IgmpQueryInUpdate) {
    EXPECT_EQ(parse(kIgmpQuery), ParseError::igmp_not_report);
    EXPECT_EQ(parse(make_v4({0x11, 100, 0, 0, 0, 0, 0, 0})), ParseError::igmp_not_report);
}

TEST(Malformed, Item14_IgmpV1ReportInUpdate) {
    EXPECT_EQ(parse(make_v4(v2_message(0x12, ip("239.1.2.3")))), ParseError::igmp_not_report);
}

TEST(Malformed, Item14_UnknownIgmpAndIcmpv6Types) {
    for (uint8_t t : {0x00, 0x13, 0x1e, 0x23, 0xff}) {
        EXPECT_EQ(parse(make_v4(report_message(t, 0))), ParseError::igmp_not_report) << int(t);
    }
    for (uint8_t t : {1, 128, 133, 144}) {
        EXPECT_EQ(parse(make_v6(v2_message(t, ip("ff05::1")))), ParseError::mld_not_report)
            << int(t);
    }
}

TEST(Malformed, Item14_MldQueryInUpdate) {
    EXPECT_EQ(parse(kMldQuery), ParseError::mld_not_report);
    EXPECT_EQ(parse(make_v6(v2_message(130, ip("::")), {.dst = ip("ff02::1")})),
              ParseError::mld_not_report);
}

TEST(Malformed, Item14_IgmpShorterThan8) {
    for (size_t n = 0; n < 8; ++n) {
        EXPECT_EQ(parse(make_v4(vec(ByteView(kIgmpv2Report).subspan(24, n)))),
                  ParseError::igmp_truncated)
            << n;
    }
}

TEST(Malformed, Item14_MldShorterThanItsType) {
    const Bytes v1 = v2_message(131, ip("ff05::1:3"));
    for (size_t n = 0; n < 24; ++n) {
        const Bytes m(v1.begin(), v1.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ(parse(make_v6(m)), ParseError::mld_truncated) << "MLDv1, " << n;
    }
    const Bytes v2 = report_message(143, 0);
    for (size_t n = 0; n < 8; ++n) {
        const Bytes m(v2.begin(), v2.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ(parse(make_v6(m)), ParseError::mld_truncated) << "MLDv2, " << n;
    }
}

TEST(Malformed, Item14_IgmpV2WithTrailingBytesAccepted) {
    for (uint8_t type : {igmp_v2_report, igmp_v2_leave}) {
        Bytes m = v2_message(type, ip("239.1.2.3"));
        m.insert(m.end(), {0xaa, 0xbb, 0xcc, 0xdd, 0xee});
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(make_v4(m), r), ParseError::ok);
        EXPECT_EQ(r.group, ip("239.1.2.3"));
        EXPECT_EQ(r.kind,
                  type == igmp_v2_report ? ReportKind::igmpv2_report : ReportKind::igmpv2_leave);
    }
}

TEST(Malformed, Item14_MldV1WithTrailingBytesAccepted) {
    for (uint8_t type : {mld_v1_report, mld_v1_done}) {
        Bytes m = v2_message(type, ip("ff05::1:3"));
        m.insert(m.end(), {0xaa, 0xbb, 0xcc});
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(make_v6(m), r), ParseError::ok);
        EXPECT_EQ(r.group, ip("ff05::1:3"));
        EXPECT_EQ(r.kind,
                  type == mld_v1_report ? ReportKind::mldv1_report : ReportKind::mldv1_done);
    }
}

// ============================================================================================
// Checklist §6 item 15: v3/v2 report fields
// ============================================================================================

TEST(Malformed, Item15_NumRecordsLargerThanFits) {
    const Bytes r4 = record(1, ip("232.1.1.1"), {ip("192.0.2.1")});
    EXPECT_EQ(parse(make_v4(report_message(0x22, 2, {r4}))), ParseError::record_header_overrun);
    const Bytes r6 = record(1, ip("ff3e::1"), {ip("2001:db8::1")});
    EXPECT_EQ(parse(make_v6(report_message(143, 3, {r6, r6}))), ParseError::record_header_overrun);
    // A partial record header after the last full record.
    EXPECT_EQ(parse(make_v4(report_message(0x22, 2, {r4, {1, 0, 0, 0, 232}}))),
              ParseError::record_header_overrun);
}

TEST(Malformed, Item15_NumRecordsZeroAccepted) {
    for (const Bytes& d : {make_v4(report_message(0x22, 0)), make_v6(report_message(143, 0)),
                           make_v4(report_message(0x22, 0, {}, {1, 2, 3, 4}))}) {
        MembershipReport r;
        ASSERT_EQ(parse_membership_report(d, r), ParseError::ok);
        EXPECT_EQ(r.num_records, 0);
        EXPECT_TRUE(read_records(r).empty());
    }
}

TEST(Malformed, Item15_65535Records) {
    const Bytes r4 = record(6, ip("232.1.1.1"), {ip("192.0.2.1")});
    EXPECT_EQ(parse(make_v4(report_message(0x22, 65535, {r4, r4}))),
              ParseError::record_header_overrun);
    EXPECT_EQ(parse(make_v6(report_message(143, 65535))), ParseError::record_header_overrun);
}

TEST(Malformed, Item15_NumSourcesOverrun) {
    Bytes r4 = record(1, ip("232.1.1.1"), {ip("192.0.2.1"), ip("192.0.2.2")});
    r4[3] = 3;
    EXPECT_EQ(parse(make_v4(report_message(0x22, 1, {r4}))), ParseError::record_sources_overrun);
    Bytes r6 = record(1, ip("ff3e::1"), {ip("2001:db8::1")});
    r6[3] = 2;
    EXPECT_EQ(parse(make_v6(report_message(143, 1, {r6}))), ParseError::record_sources_overrun);
}

TEST(Malformed, Item15_NumSources65535) {
    Bytes r4 = record(1, ip("232.1.1.1"), {ip("192.0.2.1")});
    r4[2] = r4[3] = 0xff;
    EXPECT_EQ(parse(make_v4(report_message(0x22, 1, {r4}))), ParseError::record_sources_overrun);
    Bytes r6 = record(1, ip("ff3e::1"), {ip("2001:db8::1")});
    r6[2] = r6[3] = 0xff;
    EXPECT_EQ(parse(make_v6(report_message(143, 1, {r6}))), ParseError::record_sources_overrun);
}

TEST(Malformed, Item15_AuxDataLenOverrun) {
    Bytes r4 = record(2, ip("239.1.1.1"), {}, 1);
    r4[1] = 2;
    EXPECT_EQ(parse(make_v4(report_message(0x22, 1, {r4}))), ParseError::record_aux_overrun);
    Bytes r6 = record(2, ip("ff05::1"), {ip("2001:db8::1")}, 0);
    r6[1] = 0xff;
    EXPECT_EQ(parse(make_v6(report_message(143, 1, {r6}))), ParseError::record_aux_overrun);
}

TEST(Malformed, Item15_AuxDataIgnored) {
    const Bytes d = make_v4(report_message(
        0x22, 2,
        {record(1, ip("232.1.1.1"), {ip("192.0.2.1")}, 2), record(5, ip("232.1.1.2"), {}, 1)}));
    const std::vector<Rec> expected = {{1, ip("232.1.1.1"), {ip("192.0.2.1")}},
                                       {5, ip("232.1.1.2"), {}}};
    EXPECT_EQ(parse_records(d), expected);
    const Bytes d6 = make_v6(report_message(
        143, 2, {record(3, ip("ff05::1"), {}, 3), record(6, ip("ff3e::2"), {ip("2001:db8::2")})}));
    const std::vector<Rec> expected6 = {{3, ip("ff05::1"), {}},
                                        {6, ip("ff3e::2"), {ip("2001:db8::2")}}};
    EXPECT_EQ(parse_records(d6), expected6);
}

TEST(Malformed, Item15_UnknownRecordTypesYieldedRaw) {
    const Bytes d = make_v4(report_message(
        0x22, 5,
        {record(0, ip("232.0.0.1"), {ip("192.0.2.1")}),
         record(1, ip("232.0.0.2"), {ip("192.0.2.2")}), record(7, ip("232.0.0.3")),
         record(200, ip("232.0.0.4"), {}, 1), record(6, ip("232.0.0.5"), {ip("192.0.2.5")})}));
    const std::vector<Rec> records = parse_records(d);
    ASSERT_EQ(records.size(), 5u);
    const uint8_t types[] = {0, 1, 7, 200, 6};
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(records[i].type, types[i]);
        EXPECT_EQ(is_known_record_type(records[i].type), types[i] >= 1 && types[i] <= 6);
    }
    EXPECT_EQ(records[4].group, ip("232.0.0.5"));
    EXPECT_EQ(records[4].sources, std::vector<IpAddress>{ip("192.0.2.5")});
    const Bytes d6 = make_v6(report_message(
        143, 2, {record(9, ip("ff3e::1")), record(5, ip("ff3e::2"), {ip("2001:db8::")})}));
    const std::vector<Rec> expected6 = {{9, ip("ff3e::1"), {}},
                                        {5, ip("ff3e::2"), {ip("2001:db8::")}}};
    EXPECT_EQ(parse_records(d6), expected6);
}

TEST(Malformed, Item15_RepeatedGroupAndDuplicateSourcesParsed) {
    const Bytes d =
        make_v4(report_message(0x22, 2,
                               {record(5, ip("232.1.1.1"), {ip("192.0.2.1"), ip("192.0.2.1")}),
                                record(6, ip("232.1.1.1"), {ip("192.0.2.1")})}));
    const std::vector<Rec> expected = {{5, ip("232.1.1.1"), {ip("192.0.2.1"), ip("192.0.2.1")}},
                                       {6, ip("232.1.1.1"), {ip("192.0.2.1")}}};
    EXPECT_EQ(parse_records(d), expected);
}

TEST(Malformed, Item15_TrailingOctetsAfterLastRecordAccepted) {
    // VLC: 4 pad octets after a record without sources; covered by the checksum, then ignored.
    const Bytes d = make_v4(report_message(0x22, 1, {record(3, ip("239.1.1.1"))}, {0, 0, 0, 0}));
    const std::vector<Rec> expected = {{3, ip("239.1.1.1"), {}}};
    EXPECT_EQ(parse_records(d), expected);
    Bytes bad = d;
    bad.back() = 1;  // the trailing octets are inside the checksum
    EXPECT_EQ(parse(bad), ParseError::igmp_bad_checksum);
}

// ============================================================================================
// Checklist §6 items 16-17: record contents (the engine applies the rules)
// ============================================================================================

TEST(Malformed, Item16_GroupNotMulticast) {
    for (const char* g : {"0.0.0.0", "10.1.2.3", "192.0.2.1", "223.255.255.255", "240.0.0.1",
                          "255.255.255.255", "::", "2001:db8::1", "fe80::1", "::ffff:239.1.1.1"}) {
        EXPECT_EQ(check_group_address(ip(g)), ParseError::group_not_multicast) << g;
    }
}

TEST(Malformed, Item16_GroupLinkLocal) {
    for (const char* g : {"224.0.0.0", "224.0.0.1", "224.0.0.22", "224.0.0.255", "ff02::1",
                          "ff02::16", "ff01::1", "ff00::1", "ff12::1", "ff32::8000:1"}) {
        EXPECT_EQ(check_group_address(ip(g)), ParseError::group_link_local) << g;
    }
    for (const char* g : {"224.0.1.1", "232.1.1.1", "239.255.255.255", "ff05::1", "ff0e::1",
                          "ff3e::8000:1", "ff15::1"}) {
        EXPECT_EQ(check_group_address(ip(g)), ParseError::ok) << g;
    }
}

TEST(Malformed, Item16_SourceNotUnicast) {
    for (const char* s : {"0.0.0.0", "224.0.0.1", "239.1.1.1", "255.255.255.255", "127.0.0.1",
                          "169.254.1.1", "::", "::1", "ff0e::1", "fe80::1", "febf::1"}) {
        EXPECT_EQ(check_source_address(ip(s)), ParseError::source_not_unicast) << s;
    }
    for (const char* s : {"192.0.2.1", "10.0.0.1", "198.51.100.255", "2001:db8::1"}) {
        EXPECT_EQ(check_source_address(ip(s)), ParseError::ok) << s;
    }
}

TEST(Malformed, Item17_SsmRangeClassification) {
    for (const char* g : {"232.0.0.0", "232.0.0.1", "232.255.255.255", "ff3e::8000:1", "ff30::1",
                          "ff35::1234", "ff3f::", "ff3e::ffff:ffff:ffff:ffff"}) {
        EXPECT_TRUE(ip(g).is_ssm()) << g;
    }
    for (const char* g : {"231.255.255.255", "233.0.0.0", "224.0.0.1", "239.1.1.1", "10.232.0.1",
                          "ff3e:1::1", "ff3e:8000::1", "ff2e::1", "ff1e::1", "ff0e::1", "fe3e::1",
                          "2001:db8::1", "::232.1.1.1"}) {
        EXPECT_FALSE(ip(g).is_ssm()) << g;
    }
}

TEST(Malformed, Item17_SsmGroupWithAsmRecordsIsParsedForTheEngine) {
    // IS_EX / TO_EX for SSM groups, and v2/v1 joins of SSM groups, parse; the engine ignores them.
    const std::vector<Rec> records = parse_records(make_v4(report_message(
        0x22, 2, {record(2, ip("232.1.1.1")), record(4, ip("232.1.1.2"), {ip("192.0.2.1")})})));
    ASSERT_EQ(records.size(), 2u);
    EXPECT_TRUE(records[0].group.is_ssm());
    EXPECT_TRUE(records[1].group.is_ssm());
    MembershipReport r;
    ASSERT_EQ(parse_membership_report(make_v4(v2_message(igmp_v2_report, ip("232.1.1.1"))), r),
              ParseError::ok);
    EXPECT_TRUE(r.group.is_ssm());
    ASSERT_EQ(parse_membership_report(make_v6(v2_message(mld_v1_report, ip("ff3e::1"))), r),
              ParseError::ok);
    EXPECT_TRUE(r.group.is_ssm());
}

}  // namespace
