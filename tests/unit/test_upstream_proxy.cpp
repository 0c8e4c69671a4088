// The upstream IGMPv3 / MLDv2 host proxy (RFC 3376 §5, RFC 3810 §6, RFC 4605): state-change
// reports and their robustness-1 repeats, current-state answers to general, group-specific and
// group-and-source-specific queries (IGMPv3/v2, MLDv2/v1) after the random delay the Max Resp
// Code allows, report splitting, leave_all() and malformed queries. Every datagram the proxy
// sends is parsed back with parse_membership_report(); time is synthetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/checksum.hpp"
#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/membership_db.hpp"
#include "controlplane/upstream_proxy.hpp"

namespace amt {
// Readable values in failure messages (internal linkage: other files of this executable print
// them their own way).
[[maybe_unused]] static void PrintTo(const IpAddress& a, std::ostream* os) {
    *os << a.to_string();
}
[[maybe_unused]] static void PrintTo(ParseError e, std::ostream* os) {
    *os << to_string(e);
}
}  // namespace amt

using namespace amt;
using namespace std::chrono_literals;

namespace {

using Bytes = std::vector<uint8_t>;
using Sources = std::vector<IpAddress>;

constexpr Family v4 = Family::ipv4;
constexpr Family v6 = Family::ipv6;
constexpr Family both_families[] = {v4, v6};
constexpr Time t0 = 1000s;

constexpr RecordType is_in = RecordType::mode_is_include;
constexpr RecordType is_ex = RecordType::mode_is_exclude;
constexpr RecordType to_in = RecordType::change_to_include;
constexpr RecordType to_ex = RecordType::change_to_exclude;
constexpr RecordType allow = RecordType::allow_new_sources;
constexpr RecordType block = RecordType::block_old_sources;

const char* family_name(Family f) {
    return f == v4 ? "IPv4" : "IPv6";
}

// ---------------------------------------------------------------------------------------------
// Addresses: group i is 232.1.x.y / ff3e::1:i, source i is 10.0.x.y / 2001:db8::i.

IpAddress ip6(uint16_t first, uint16_t second, uint32_t tail) {
    uint8_t raw[16] = {};
    store_be16(raw, first);
    store_be16(raw + 2, second);
    store_be32(raw + 12, tail);
    return IpAddress::v6_from_bytes(raw);
}

IpAddress unspecified(Family f) {
    return f == v4 ? IpAddress::v4(0) : ip6(0, 0, 0);
}

IpAddress group(Family f, uint32_t i) {
    return f == v4 ? IpAddress::v4(0xe8010000u + i) : ip6(0xff3e, 0, 0x10000u + i);
}

IpAddress source(Family f, uint32_t i) {
    return f == v4 ? IpAddress::v4(0x0a000000u + i) : ip6(0x2001, 0x0db8, i);
}

FlowKey star(Family f, uint32_t g) {
    return {unspecified(f), group(f, g)};
}

FlowKey sg(Family f, uint32_t s, uint32_t g) {
    return {source(f, s), group(f, g)};
}

int current_version(Family f) {  // IGMPv3, MLDv2
    return f == v4 ? 3 : 2;
}

int old_version(Family f) {  // IGMPv2, MLDv1
    return f == v4 ? 2 : 1;
}

// ---------------------------------------------------------------------------------------------
// Group records as the tests compare them.

struct Rec {
    RecordType type;
    IpAddress group;
    Sources sources;  // sorted
    friend bool operator==(const Rec&, const Rec&) = default;
};
using Recs = std::vector<Rec>;

const char* type_name(RecordType t) {
    switch (t) {
        case is_in:
            return "IS_IN";
        case is_ex:
            return "IS_EX";
        case to_in:
            return "TO_IN";
        case to_ex:
            return "TO_EX";
        case allow:
            return "ALLOW";
        case block:
            return "BLOCK";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& os, const Rec& r) {
    os << type_name(r.type) << ' ' << r.group.to_string() << " {";
    for (size_t i = 0; i < r.sources.size(); ++i)
        os << (i ? "," : "") << r.sources[i].to_string();
    return os << '}';
}

Rec rec(RecordType type, const IpAddress& g, Sources sources = {}) {
    std::sort(sources.begin(), sources.end());
    return {type, g, std::move(sources)};
}

Recs sorted(Recs r) {
    std::sort(r.begin(), r.end(), [](const Rec& a, const Rec& b) {
        return std::tie(a.group, a.type, a.sources) < std::tie(b.group, b.type, b.sources);
    });
    return r;
}

// Every source that records of `type` for group `g` name, sorted; duplicates are kept so that a
// source reported twice shows.
Sources sources_of(const Recs& recs, RecordType type, const IpAddress& g) {
    Sources all;
    for (const Rec& r : recs) {
        if (r.type == type && r.group == g)
            all.insert(all.end(), r.sources.begin(), r.sources.end());
    }
    std::sort(all.begin(), all.end());
    return all;
}

Sources first_sources(Family f, uint32_t n) {
    Sources s;
    for (uint32_t i = 1; i <= n; ++i)
        s.push_back(source(f, i));
    return s;
}

// ---------------------------------------------------------------------------------------------
// The recording sink: every datagram must be a valid report from the configured source.

struct Report {
    Family family = v4;
    size_t size = 0;
    Recs records;
};

Recs records_of(const std::vector<Report>& reports) {
    Recs all;
    for (const Report& r : reports)
        all.insert(all.end(), r.records.begin(), r.records.end());
    return all;
}

UpstreamConfig make_config(uint8_t robustness = 2, Time interval = 1s) {
    UpstreamConfig c;
    c.source_v4 = IpAddress::v4(0xc000020a);  // 192.0.2.10
    c.source_v6 = ip6(0xfe80, 0, 0x10);       // fe80::10
    c.robustness = robustness;
    c.unsolicited_report_interval = interval;
    return c;
}

class RecordingSink final : public UpstreamSink {
  public:
    explicit RecordingSink(const UpstreamConfig& c)
        : source_v4_(c.source_v4), source_v6_(c.source_v6) {}

    void send_upstream(Family family, ByteView datagram) override {
        ++datagrams_;
        SCOPED_TRACE(std::string("datagram of ") + family_name(family));
        MembershipReport m;
        const ParseError e = parse_membership_report(datagram, m);
        ASSERT_EQ(e, ParseError::ok);
        EXPECT_EQ(m.family, family);
        EXPECT_EQ(m.kind, family == v4 ? ReportKind::igmpv3_report : ReportKind::mldv2_report);
        EXPECT_TRUE(m.router_alert);
        EXPECT_EQ(m.hop_limit, 1);
        EXPECT_EQ(m.inner_dst, family == v4 ? IpAddress::v4(0xe0000016) : ip6(0xff02, 0, 0x16));
        EXPECT_EQ(m.inner_src, family == v4 ? source_v4_ : source_v6_);
        EXPECT_EQ(m.datagram_length, datagram.size());
        EXPECT_LE(datagram.size(), 1500u);
        EXPECT_GT(m.num_records, 0u) << "a report without records";

        Report r{family, datagram.size(), {}};
        const size_t addr = family == v4 ? 4 : 16;
        size_t record_octets = 0;
        RecordIterator it = m.records();
        for (GroupRecord g; it.next(g);) {
            EXPECT_TRUE(is_known_record_type(g.type)) << int{g.type};
            EXPECT_EQ(g.group.family(), family);
            Sources s;
            for (size_t i = 0; i < g.num_sources; ++i)
                s.push_back(g.source(i));
            r.records.push_back(rec(static_cast<RecordType>(g.type), g.group, std::move(s)));
            record_octets += 4 + addr * (1 + size_t{g.num_sources});
        }
        EXPECT_EQ(r.records.size(), m.num_records);
        // No auxiliary data, nothing after the last record.
        EXPECT_EQ(record_octets, m.record_bytes.size());
        reports_.push_back(std::move(r));
    }

    std::vector<Report> take() { return std::exchange(reports_, {}); }
    size_t datagrams() const { return datagrams_; }

  private:
    IpAddress source_v4_;
    IpAddress source_v6_;
    std::vector<Report> reports_;
    size_t datagrams_ = 0;
};

// The proxy, its sink and the synthetic clock.
struct Harness {
    explicit Harness(const UpstreamConfig& c = make_config())
        : config(c), sink(c), proxy(c, sink) {}

    // What one change sends now.
    Recs change(const FlowKey& key, bool join) {
        proxy.change(key, join, now);
        return records_of(sink.take());
    }
    Recs advance_to(Time t) {
        now = t;
        proxy.advance(now);
        return records_of(sink.take());
    }
    Recs advance_by(Time d) { return advance_to(now + d); }
    void query(ByteView datagram) { proxy.handle_query(datagram, now); }
    // Lets every pending repeat go out, and forgets what was sent.
    void settle() {
        for (int i = 0; i <= config.robustness; ++i)
            advance_by(config.unsolicited_report_interval);
        sink.take();
    }

    UpstreamConfig config;
    RecordingSink sink;
    UpstreamProxy proxy;
    Time now = t0;
};

// A fixed state in both families, repeats done: IPv4 group 1 INCLUDE{1,2}, group 2 EXCLUDE{}
// (source 3 joined under it); IPv6 group 3 INCLUDE{4}, group 4 EXCLUDE{}.
void populate(Harness& h) {
    h.change(sg(v4, 1, 1), true);
    h.change(sg(v4, 2, 1), true);
    h.change(star(v4, 2), true);
    h.change(sg(v4, 3, 2), true);
    h.change(sg(v6, 4, 3), true);
    h.change(star(v6, 4), true);
    h.settle();
}

// The current state populate() leaves, as a general query's answer reports it.
Recs populated_state(Family f) {
    if (f == v4) {
        return {rec(is_in, group(v4, 1), {source(v4, 1), source(v4, 2)}), rec(is_ex, group(v4, 2))};
    }
    return {rec(is_in, group(v6, 3), {source(v6, 4)}), rec(is_ex, group(v6, 4))};
}

// ---------------------------------------------------------------------------------------------
// Queries as routers send them.

// IP lengths and every checksum from the datagram's size (IPv4 with options, or IPv6 with the
// 8-octet Hop-by-Hop header the query builders write); the message runs to the end. A message
// too short for its checksum field keeps none.
void fix_lengths_and_checksums(Bytes& d) {
    if ((d[0] >> 4) == 4) {
        const size_t ihl = size_t{d[0] & 0x0fu} * 4;
        store_be16(&d[2], static_cast<uint16_t>(d.size()));
        store_be16(&d[10], 0);
        store_be16(&d[10], checksum_finish(checksum_add(ByteView(d).first(ihl))));
        const ByteView m = ByteView(d).subspan(ihl);
        if (m.size() < 4) return;
        store_be16(&d[ihl + 2], 0);
        store_be16(&d[ihl + 2], checksum_finish(checksum_add(m)));
        return;
    }
    const size_t h = mldv2_general_query_size - 28;
    store_be16(&d[4], static_cast<uint16_t>(d.size() - 40));
    const ByteView m = ByteView(d).subspan(h);
    if (m.size() < 4) return;
    const uint32_t pseudo =
        pseudo_header_sum(IpAddress::v6_from_bytes(&d[8]), IpAddress::v6_from_bytes(&d[24]),
                          ip_proto_icmpv6, static_cast<uint32_t>(m.size()));
    store_be16(&d[h + 2], 0);
    store_be16(&d[h + 2], checksum_finish(checksum_add(m, pseudo)));
}

size_t query_header_size(Family f) {
    return f == v4 ? igmpv3_general_query_size - 12 : mldv2_general_query_size - 28;
}

// A general query (group unspecified), group-specific query, or group-and-source-specific query
// (sources given) of IGMP version 3 or 2 / MLD version 2 or 1: the library's general query with
// the group, sources, code and length patched in, sent to the group when it names one.
Bytes make_query(Family f, int version, const IpAddress& g, uint16_t max_resp_code,
                 const Sources& sources = {}) {
    const size_t addr = f == v4 ? 4 : 16;
    const size_t header = query_header_size(f);
    const size_t fixed = f == v4 ? 12 : 28;
    const QueryParameters params{.robustness = 2, .qqic = 125, .max_resp_code = 0};
    Bytes d(header + fixed + addr * sources.size());
    const size_t n =
        f == v4 ? build_igmpv3_general_query(d, params) : build_mldv2_general_query(d, params);
    EXPECT_EQ(n, header + fixed);
    uint8_t* m = d.data() + header;
    if (f == v4) {
        EXPECT_LE(max_resp_code, 0xffu);
        m[1] = static_cast<uint8_t>(max_resp_code);
    } else {
        store_be16(m + 4, max_resp_code);
    }
    if (!g.is_unspecified()) {
        std::memcpy(m + (f == v4 ? 4 : 8), g.wire().data(), addr);
        std::memcpy(d.data() + (f == v4 ? 16 : 24), g.wire().data(), addr);
    }
    store_be16(m + fixed - 2, static_cast<uint16_t>(sources.size()));
    for (size_t i = 0; i < sources.size(); ++i)
        std::memcpy(m + fixed + i * addr, sources[i].wire().data(), addr);
    const bool old = version == old_version(f);
    d.resize(header + (old ? (f == v4 ? 8 : 24) : fixed + addr * sources.size()));
    fix_lengths_and_checksums(d);
    return d;
}

// IGMPv3 / MLDv2 general query from the library's builders.
Bytes general_query(Family f, uint16_t max_resp_code) {
    Bytes d(f == v4 ? igmpv3_general_query_size : mldv2_general_query_size);
    const QueryParameters params{.robustness = 2, .qqic = 125, .max_resp_code = max_resp_code};
    const size_t n =
        f == v4 ? build_igmpv3_general_query(d, params) : build_mldv2_general_query(d, params);
    EXPECT_EQ(n, d.size());
    return d;
}

Bytes group_query(const IpAddress& g, uint16_t max_resp_code, const Sources& sources = {}) {
    return make_query(g.family(), current_version(g.family()), g, max_resp_code, sources);
}

// Sends a group-specific query of `version` for each of 64 joined groups at once and checks that
// they are answered within `max`, and not all within max / 2 (each delay is uniform over
// [0, max]: 2^-64 that all fall in the first half).
void expect_max_response(Family f, int version, uint16_t code, Time max) {
    SCOPED_TRACE(std::string(family_name(f)) + " version " + std::to_string(version) + " code " +
                 std::to_string(code));
    constexpr uint32_t n = 64;
    Harness h;
    for (uint32_t i = 1; i <= n; ++i)
        h.change(sg(f, 1, i), true);
    h.settle();
    const Time asked = h.now;
    for (uint32_t i = 1; i <= n; ++i)
        h.query(make_query(f, version, group(f, i), code));
    EXPECT_TRUE(h.sink.take().empty()) << "answered before any delay";
    const size_t early = h.advance_to(asked + max / 2).size();
    const size_t late = h.advance_to(asked + max).size();
    EXPECT_LT(early, n) << "every answer came within half the maximum: the code was read too small";
    EXPECT_EQ(early + late, n) << "answers still pending after the maximum response time";
    EXPECT_TRUE(h.advance_by(100000s).empty());
}

// ---------------------------------------------------------------------------------------------
// State-change reports.

TEST(UpstreamProxy, MldReportsComeFromALinkLocalAddress) {
    const std::array<uint8_t, 6> mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    const IpAddress global = *IpAddress::parse("2001:db8:10::3");
    const IpAddress ll = *IpAddress::parse("fe80::1234");
    // A global upstream address is never the source (RFC 3810 §5.2.13: routers discard it).
    EXPECT_EQ(mld_report_source({IpAddress::v4(0x0a000102), global}, mac),
              *IpAddress::parse("fe80::11:22ff:fe33:4455"))
        << "modified EUI-64 of the port's MAC";
    EXPECT_EQ(mld_report_source({global, ll}, mac), ll) << "a configured link-local one wins";
    EXPECT_EQ(mld_report_source({}, {0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc}),
              *IpAddress::parse("fe80::21b:21ff:feaa:bbcc"));
}

TEST(UpstreamProxy, SourceJoinsAndLeavesSendAllowAndBlock) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        const IpAddress g = group(f, 1), s1 = source(f, 1), s2 = source(f, 2);
        EXPECT_EQ(h.change({s1, g}, true), Recs{rec(allow, g, {s1})});
        EXPECT_TRUE(h.proxy.joined({s1, g}));
        EXPECT_FALSE(h.proxy.joined({unspecified(f), g}));
        EXPECT_EQ(h.proxy.groups(), 1u);

        EXPECT_EQ(h.change({s2, g}, true), Recs{rec(allow, g, {s2})});
        EXPECT_TRUE(h.proxy.joined({s2, g}));
        EXPECT_EQ(h.proxy.groups(), 1u);

        EXPECT_EQ(h.change({s1, g}, false), Recs{rec(block, g, {s1})});
        EXPECT_FALSE(h.proxy.joined({s1, g}));
        EXPECT_TRUE(h.proxy.joined({s2, g}));

        EXPECT_EQ(h.change({s2, g}, false), Recs{rec(block, g, {s2})});
        EXPECT_FALSE(h.proxy.joined({s2, g}));
        EXPECT_EQ(h.proxy.groups(), 0u);
        EXPECT_EQ(h.proxy.reports_sent(), 4u);
        EXPECT_EQ(h.sink.datagrams(), 4u);
    }
}

TEST(UpstreamProxy, AnySourceJoinSwitchesToExcludeAndItsLeaveBackToInclude) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        const IpAddress g = group(f, 1), s1 = source(f, 1), s2 = source(f, 2);
        const FlowKey any = star(f, 1);
        EXPECT_EQ(h.change({s1, g}, true), Recs{rec(allow, g, {s1})});
        EXPECT_EQ(h.change(any, true), Recs{rec(to_ex, g)});
        EXPECT_TRUE(h.proxy.joined(any));

        // (S,G) changes under EXCLUDE{} change nothing upstream.
        EXPECT_EQ(h.change({s2, g}, true), Recs{});
        EXPECT_EQ(h.change({s1, g}, false), Recs{});
        EXPECT_EQ(h.change(sg(f, 3, 1), true), Recs{});
        EXPECT_EQ(h.change(sg(f, 3, 1), false), Recs{});

        // Back to INCLUDE with the (S,G) joins still present.
        EXPECT_EQ(h.change(any, false), Recs{rec(to_in, g, {s2})});
        EXPECT_FALSE(h.proxy.joined(any));
        EXPECT_TRUE(h.proxy.joined({s2, g}));
        EXPECT_FALSE(h.proxy.joined({s1, g}));
        EXPECT_EQ(h.proxy.groups(), 1u);

        // (*,G) alone: TO_EX{} then TO_IN{}, and the group is gone.
        const IpAddress g2 = group(f, 2);
        EXPECT_EQ(h.change(star(f, 2), true), Recs{rec(to_ex, g2)});
        EXPECT_EQ(h.proxy.groups(), 2u);
        EXPECT_EQ(h.change(star(f, 2), false), Recs{rec(to_in, g2)});
        EXPECT_FALSE(h.proxy.joined(star(f, 2)));
        EXPECT_EQ(h.proxy.groups(), 1u);
    }
}

TEST(UpstreamProxy, StateChangeReportIsRepeatedRobustnessMinusOneTimes) {
    const std::pair<uint8_t, Time> cases[] = {{2, 1s}, {3, 250ms}, {5, 10s}};
    for (const auto& [robustness, interval] : cases) {
        for (const Family f : both_families) {
            SCOPED_TRACE(std::string(family_name(f)) + " robustness " + std::to_string(robustness));
            Harness h(make_config(robustness, interval));
            // IPv4 repeats a source-list change, IPv6 a filter-mode change.
            const Recs first = f == v4 ? h.change(sg(f, 1, 1), true) : h.change(star(f, 1), true);
            ASSERT_EQ(first.size(), 1u);
            for (int i = 1; i < robustness; ++i) {
                SCOPED_TRACE("repeat " + std::to_string(i));
                EXPECT_EQ(h.advance_to(t0 + i * interval - 1ns), Recs{});
                EXPECT_EQ(h.advance_to(t0 + i * interval), first);
            }
            for (int i = 0; i < 10; ++i)
                EXPECT_EQ(h.advance_by(interval), Recs{}) << "repeated more than robustness-1";
            EXPECT_EQ(h.proxy.reports_sent(), robustness);
        }
    }
}

TEST(UpstreamProxy, RobustnessOneSendsNoRepeat) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h(make_config(1));
        EXPECT_EQ(h.change(sg(f, 1, 1), true).size(), 1u);
        EXPECT_EQ(h.change(star(f, 2), true).size(), 1u);
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(h.advance_by(1s), Recs{});
        EXPECT_EQ(h.proxy.reports_sent(), 2u);
    }
}

TEST(UpstreamProxy, FilterModeChangeSupersedesPendingRepeats) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h(make_config(3));
        const IpAddress g = group(f, 1), other = group(f, 2);
        h.change(sg(f, 1, 1), true);
        h.change(sg(f, 2, 1), true);
        h.change(sg(f, 5, 2), true);  // another group: its repeats go on
        h.now = t0 + 200ms;
        EXPECT_EQ(h.change(star(f, 1), true), Recs{rec(to_ex, g)});
        EXPECT_EQ(h.advance_to(t0 + 1s), Recs{rec(allow, other, {source(f, 5)})});
        EXPECT_EQ(h.advance_to(t0 + 1200ms), Recs{rec(to_ex, g)});
        EXPECT_EQ(h.advance_to(t0 + 2s), Recs{rec(allow, other, {source(f, 5)})});
        EXPECT_EQ(h.advance_to(t0 + 2200ms), Recs{rec(to_ex, g)});
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(h.advance_by(1s), Recs{});

        // TO_IN superseded by TO_EX before its first repeat: only TO_EX is repeated.
        h.now = t0 + 20s;
        EXPECT_EQ(h.change(star(f, 1), false), Recs{rec(to_in, g, {source(f, 1), source(f, 2)})});
        h.now = t0 + 20500ms;
        EXPECT_EQ(h.change(star(f, 1), true), Recs{rec(to_ex, g)});
        EXPECT_EQ(h.advance_to(t0 + 21s), Recs{});
        EXPECT_EQ(h.advance_to(t0 + 21500ms), Recs{rec(to_ex, g)});
        EXPECT_EQ(h.advance_to(t0 + 22500ms), Recs{rec(to_ex, g)});
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(h.advance_by(1s), Recs{});
    }
}

TEST(UpstreamProxy, SourceChangeSupersedesPendingRepeatOfTheSameSource) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        const IpAddress g = group(f, 1), s1 = source(f, 1), s2 = source(f, 2);
        h.change({s1, g}, true);
        h.change({s2, g}, true);
        h.now = t0 + 100ms;
        EXPECT_EQ(h.change({s1, g}, false), Recs{rec(block, g, {s1})});
        // ALLOW{S1} is not repeated after BLOCK{S1}; ALLOW{S2} is.
        EXPECT_EQ(h.advance_to(t0 + 1s), Recs{rec(allow, g, {s2})});
        EXPECT_EQ(h.advance_to(t0 + 1100ms), Recs{rec(block, g, {s1})});
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(h.advance_by(1s), Recs{});

        // The only source: joined and left at once; the group is gone, BLOCK is repeated.
        const IpAddress g2 = group(f, 2), s3 = source(f, 3);
        h.now = t0 + 30s;
        EXPECT_EQ(h.change({s3, g2}, true), Recs{rec(allow, g2, {s3})});
        EXPECT_EQ(h.change({s3, g2}, false), Recs{rec(block, g2, {s3})});
        EXPECT_FALSE(h.proxy.joined({s3, g2}));
        EXPECT_EQ(h.advance_to(t0 + 31s), Recs{rec(block, g2, {s3})});
        for (int i = 0; i < 10; ++i)
            EXPECT_EQ(h.advance_by(1s), Recs{});
    }
}

// RFC 3376 §5.1 / RFC 3810 §6.1: a change while a filter-mode-change report is still being
// repeated makes the repeats carry the current state. A source left after TO_IN{S1,S2} must not
// be included again by a later repeat of that TO_IN (the router would keep S1 for another Group
// Membership Interval).
TEST(UpstreamProxy, SourceLeftDuringPendingIncludeChangeIsNotIncludedByRepeats) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        const IpAddress g = group(f, 1), s1 = source(f, 1), s2 = source(f, 2);
        h.change({s1, g}, true);
        h.change({s2, g}, true);
        h.change(star(f, 1), true);
        h.settle();
        EXPECT_EQ(h.change(star(f, 1), false), Recs{rec(to_in, g, {s1, s2})});
        h.now += 100ms;
        h.change({s1, g}, false);
        Recs later;
        for (int i = 0; i < 10; ++i) {
            const Recs r = h.advance_by(500ms);
            later.insert(later.end(), r.begin(), r.end());
        }
        for (const Rec& r : later) {
            if (r.type == to_in || r.type == allow || r.type == is_in) {
                EXPECT_FALSE(std::binary_search(r.sources.begin(), r.sources.end(), s1))
                    << "a repeat includes the source left since: " << r;
            }
        }
        EXPECT_FALSE(later.empty()) << "no repeat at all";
    }
}

// ---------------------------------------------------------------------------------------------
// Answers to queries.

TEST(UpstreamProxy, GeneralQueryAnswersEveryGroupOfItsFamilyOnly) {
    Harness h;
    populate(h);
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        h.query(general_query(f, 0));
        EXPECT_TRUE(h.sink.take().empty()) << "answered from handle_query()";
        h.proxy.advance(h.now);
        const std::vector<Report> reports = h.sink.take();
        ASSERT_EQ(reports.size(), 1u);
        EXPECT_EQ(reports[0].family, f);
        EXPECT_EQ(sorted(reports[0].records), populated_state(f));
        EXPECT_EQ(h.advance_by(1000s), Recs{}) << "answered twice";
    }

    // Both families' queries at once: each answer holds its own family's groups only.
    h.query(general_query(v6, 0));
    h.query(general_query(v4, 0));
    h.query(general_query(v4, 0));  // a second query while the first is pending: one answer
    h.proxy.advance(h.now);
    const std::vector<Report> reports = h.sink.take();
    ASSERT_EQ(reports.size(), 2u);
    for (const Report& r : reports) {
        SCOPED_TRACE(family_name(r.family));
        EXPECT_EQ(sorted(r.records), populated_state(r.family));
    }
    EXPECT_NE(reports[0].family, reports[1].family);
    EXPECT_EQ(h.advance_by(1000s), Recs{});

    // Nothing joined in a family: a query of that family gets no answer.
    Harness empty;
    empty.change(sg(v6, 1, 1), true);
    empty.settle();
    empty.query(general_query(v4, 0));
    EXPECT_EQ(empty.advance_by(1000s), Recs{});
}

TEST(UpstreamProxy, AnswerWaitsForRandomDelayUpToMaxResponseTime) {
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        populate(h);
        // 10 s: IGMP code 100 (tenths), MLD code 10000 (ms). A zero delay out of 10^10 possible
        // nanoseconds is the only way an answer could come at once.
        const uint16_t code = f == v4 ? 100 : 10000;
        const Time asked = h.now;
        h.query(general_query(f, code));
        h.query(group_query(group(f, f == v4 ? 1 : 3), code));
        EXPECT_TRUE(h.sink.take().empty());
        EXPECT_EQ(h.advance_to(asked), Recs{});
        const Recs answers = h.advance_to(asked + 10s);
        const Recs state = populated_state(f);
        Recs expected = state;
        expected.push_back(state[0]);  // the group-specific answer
        EXPECT_EQ(sorted(answers), sorted(expected));
        EXPECT_EQ(h.advance_by(1000s), Recs{});
    }
}

TEST(UpstreamProxy, MaxResponseCodeLinearAndFloatingPointForms) {
    // IGMPv3: tenths of a second; from 128, mant/exp: (mant | 0x10) << (exp + 3).
    expect_max_response(v4, 3, 127, 12700ms);
    expect_max_response(v4, 3, 0x80, 12800ms);    // mant 0, exp 0: 128
    expect_max_response(v4, 3, 0x8f, 24800ms);    // mant 15, exp 0: 248
    expect_max_response(v4, 3, 0xa5, 67200ms);    // mant 5, exp 2: 21 << 5 = 672
    expect_max_response(v4, 3, 0xff, 3174400ms);  // mant 15, exp 7: 31744
    // MLDv2: milliseconds; from 32768, (mant | 0x1000) << (exp + 3).
    expect_max_response(v6, 2, 32767, 32767ms);
    expect_max_response(v6, 2, 0x8fff, 65528ms);    // mant 0xfff, exp 0
    expect_max_response(v6, 2, 0xffff, 8387584ms);  // mant 0xfff, exp 7
    // Older queriers with small codes: the same linear units.
    expect_max_response(v4, 2, 100, 10s);
    expect_max_response(v6, 1, 20000, 20s);
}

// RFC 2236 §2.2 / RFC 2710 §3.4 (and RFC 3376 §7.1, RFC 3810 §8.2): an IGMPv2 query's Max
// Response Time and an MLDv1 query's Maximum Response Delay are linear; only v3/v2 queries use
// the floating-point form. Answering later than the querier waits makes it time the group out.
TEST(UpstreamProxy, OlderQueryMaxResponseTimeIsLinear) {
    expect_max_response(v4, 2, 255, 25500ms);
    expect_max_response(v6, 1, 0xffff, 65535ms);
}

TEST(UpstreamProxy, GroupSpecificQueryAnswersThatGroupOnly) {
    Harness h;
    populate(h);
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        const Recs state = populated_state(f);
        for (const Rec& r : state) {
            h.query(group_query(r.group, 0));
            EXPECT_EQ(h.advance_by(0s), Recs{r});
            EXPECT_EQ(h.advance_by(1000s), Recs{});
        }
        // A group we have not joined: nothing to say.
        h.query(group_query(group(f, 9), 0));
        EXPECT_EQ(h.advance_by(1000s), Recs{});
        // Answered within a large Max Resp Time too.
        h.query(group_query(state[1].group, f == v4 ? 50 : 5000));
        EXPECT_EQ(h.advance_by(5s), Recs{state[1]});
    }
}

// RFC 3376 §5.2 / RFC 3810 §6.2: the answer to a group-and-source-specific query names the
// queried sources the host still wants. The proxy answers with the group's whole current state,
// which carries that information; only that much is checked.
TEST(UpstreamProxy, GroupAndSourceSpecificQueryIsAnsweredForItsGroup) {
    Harness h;
    populate(h);
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        const Recs state = populated_state(f);
        const IpAddress included = state[0].group, excluded = state[1].group;
        const IpAddress wanted = state[0].sources[0], unwanted = source(f, 99);

        h.query(group_query(included, 0, {wanted, unwanted}));
        Recs answer = h.advance_by(0s);
        ASSERT_FALSE(answer.empty());
        for (const Rec& r : answer) {
            EXPECT_EQ(r.group, included) << r;
            EXPECT_EQ(r.type, is_in) << r;
            EXPECT_FALSE(std::binary_search(r.sources.begin(), r.sources.end(), unwanted)) << r;
        }
        const Sources named = sources_of(answer, is_in, included);
        EXPECT_TRUE(std::binary_search(named.begin(), named.end(), wanted));

        // EXCLUDE{}: every queried source is wanted; IS_EX{} or IS_IN{queried} both say so.
        h.query(group_query(excluded, 0, {unwanted}));
        answer = h.advance_by(0s);
        ASSERT_EQ(answer.size(), 1u);
        EXPECT_EQ(answer[0].group, excluded);
        EXPECT_TRUE(answer[0] == rec(is_ex, excluded) ||
                    answer[0] == rec(is_in, excluded, {unwanted}))
            << answer[0];

        // A group we have not joined: nothing.
        h.query(group_query(group(f, 9), 0, {wanted}));
        EXPECT_EQ(h.advance_by(1000s), Recs{});
    }
}

TEST(UpstreamProxy, OlderVersionQueriesAreParsedAndAnswered) {
    Harness h;
    populate(h);
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        const int version = old_version(f);
        const uint16_t code = 1;  // 0.1 s / 1 ms
        const Time max = f == v4 ? Time(100ms) : Time(1ms);
        const Recs state = populated_state(f);

        const Bytes general = make_query(f, version, unspecified(f), code);
        EXPECT_EQ(general.size(), query_header_size(f) + (f == v4 ? 8 : 24));
        RouterQuery q;
        ASSERT_EQ(parse_router_query(general, q), ParseError::ok);
        EXPECT_EQ(q.family, f);
        EXPECT_EQ(q.version, version);
        EXPECT_TRUE(q.group.is_unspecified());
        EXPECT_EQ(q.max_resp_code, code);
        h.query(general);
        EXPECT_EQ(sorted(h.advance_by(max)), state);

        for (const Rec& r : state) {
            const Bytes specific = make_query(f, version, r.group, code);
            ASSERT_EQ(parse_router_query(specific, q), ParseError::ok);
            EXPECT_EQ(q.version, version);
            EXPECT_EQ(q.group, r.group);
            h.query(specific);
            EXPECT_EQ(h.advance_by(max), Recs{r});
        }
        EXPECT_EQ(h.advance_by(1000s), Recs{});
    }
}

// ---------------------------------------------------------------------------------------------
// Report sizes.

// Checks that `reports` hold one record of `type` with its one source for each of groups 1..n
// (group i, source i), in as few datagrams of at most 1500 octets as fit.
void expect_one_record_per_group(const std::vector<Report>& reports, Family f, RecordType type,
                                 uint32_t n) {
    std::map<IpAddress, int> seen;
    for (const Report& r : reports) {
        EXPECT_EQ(r.family, f);
        EXPECT_LE(r.size, 1500u);
        for (const Rec& x : r.records)
            ++seen[x.group];
    }
    const Recs all = records_of(reports);
    EXPECT_EQ(all.size(), n);
    for (uint32_t i = 1; i <= n; ++i) {
        EXPECT_EQ(seen[group(f, i)], 1) << group(f, i).to_string();
    }
    Recs expected;
    for (uint32_t i = 1; i <= n; ++i)
        expected.push_back(rec(type, group(f, i), {source(f, i)}));
    EXPECT_EQ(sorted(all), sorted(expected));
    // 32 / 56 octets of headers, 12 / 36 per record.
    const size_t per_report = f == v4 ? (1500 - 32) / 12 : (1500 - 56) / 36;
    EXPECT_EQ(reports.size(), (n + per_report - 1) / per_report);
}

TEST(UpstreamProxy, ManyGroupsAreSplitOverSeveralReports) {
    constexpr uint32_t n = 300;
    for (const Family f : both_families) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        for (uint32_t i = 1; i <= n; ++i)
            EXPECT_EQ(h.change(sg(f, i, i), true), Recs{rec(allow, group(f, i), {source(f, i)})});
        EXPECT_EQ(h.proxy.groups(), n);

        // The 300 repeats fall due together.
        h.proxy.advance(t0 + 1s);
        h.now = t0 + 1s;
        expect_one_record_per_group(h.sink.take(), f, allow, n);
        h.settle();

        h.query(general_query(f, 0));
        h.proxy.advance(h.now);
        expect_one_record_per_group(h.sink.take(), f, is_in, n);

        h.proxy.leave_all();
        expect_one_record_per_group(h.sink.take(), f, block, n);
        EXPECT_EQ(h.proxy.groups(), 0u);
    }
}

// RFC 3376 §4.2.16 / RFC 3810 §5.2.15: a record with more sources than fit one report is split
// into several records of the same type (IS_IN, TO_IN, ALLOW, BLOCK), each in its own report.
// 400 IPv4 sources (at most 365 fit) or 100 IPv6 sources (at most 89 fit).
TEST(UpstreamProxy, GroupWithMoreSourcesThanOneReportHoldsIsSplit) {
    const std::pair<Family, uint32_t> cases[] = {{v4, 400}, {v6, 100}};
    for (const auto& [f, n] : cases) {
        SCOPED_TRACE(family_name(f));
        Harness h;
        const IpAddress g = group(f, 1);
        for (uint32_t i = 1; i <= n; ++i)
            h.change(sg(f, i, 1), true);
        h.settle();
        const Sources all = first_sources(f, n);

        h.query(general_query(f, 0));
        EXPECT_EQ(sources_of(h.advance_by(0s), is_in, g), all) << "current state";

        EXPECT_EQ(h.change(star(f, 1), true), Recs{rec(to_ex, g)});
        EXPECT_EQ(sources_of(h.change(star(f, 1), false), to_in, g), all) << "TO_IN";
        h.settle();

        h.proxy.leave_all();
        EXPECT_EQ(sources_of(records_of(h.sink.take()), block, g), all) << "leave_all";
        EXPECT_EQ(h.proxy.groups(), 0u);
    }
}

// ---------------------------------------------------------------------------------------------
// Shutdown.

TEST(UpstreamProxy, LeaveAllLeavesEverythingOnceAndStops) {
    Harness h;
    populate(h);
    // Pending work that leave_all() must cancel: repeats of fresh changes, query answers.
    h.change(sg(v4, 5, 5), true);
    h.change(star(v6, 6), true);
    h.query(general_query(v4, 100));
    h.query(group_query(group(v6, 3), 10000));

    h.proxy.leave_all();
    const std::vector<Report> reports = h.sink.take();
    ASSERT_EQ(reports.size(), 2u);
    std::map<Family, Recs> by_family;
    for (const Report& r : reports)
        by_family[r.family] = sorted(r.records);
    EXPECT_EQ(by_family[v4],
              sorted({rec(block, group(v4, 1), {source(v4, 1), source(v4, 2)}),
                      rec(to_in, group(v4, 2)), rec(block, group(v4, 5), {source(v4, 5)})}));
    EXPECT_EQ(by_family[v6], sorted({rec(block, group(v6, 3), {source(v6, 4)}),
                                     rec(to_in, group(v6, 4)), rec(to_in, group(v6, 6))}));
    EXPECT_EQ(h.proxy.groups(), 0u);
    EXPECT_FALSE(h.proxy.joined(sg(v4, 1, 1)));
    EXPECT_FALSE(h.proxy.joined(star(v4, 2)));
    EXPECT_FALSE(h.proxy.joined(sg(v6, 4, 3)));
    EXPECT_FALSE(h.proxy.joined(star(v6, 4)));
    for (int i = 0; i < 20; ++i)
        EXPECT_EQ(h.advance_by(1s), Recs{});
    EXPECT_EQ(h.advance_by(100000s), Recs{});

    // Nothing left to say: no answer to queries, and a second leave_all() sends nothing.
    h.query(general_query(v4, 0));
    h.query(general_query(v6, 0));
    EXPECT_EQ(h.advance_by(1000s), Recs{});
    h.proxy.leave_all();
    EXPECT_TRUE(h.sink.take().empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed queries.

// Queries the proxy would answer at once (Max Resp Code 0) if they were valid.
std::vector<Bytes> valid_queries() {
    std::vector<Bytes> q;
    for (const Family f : both_families) {
        const IpAddress g = populated_state(f)[0].group;
        q.push_back(general_query(f, 0));
        q.push_back(group_query(g, 0));
        q.push_back(group_query(g, 0, {source(f, 1), source(f, 2)}));
        q.push_back(make_query(f, old_version(f), unspecified(f), 0));
        q.push_back(make_query(f, old_version(f), g, 0));
    }
    return q;
}

TEST(UpstreamProxy, MalformedQueriesAreIgnored) {
    Harness h;
    populate(h);
    // The valid forms are answered (the corruptions below are what makes them ignored).
    for (const Bytes& q : valid_queries()) {
        h.query(q);
        EXPECT_FALSE(h.advance_by(1s).empty());
    }

    std::vector<std::pair<std::string, Bytes>> bad;
    for (const Bytes& q : valid_queries()) {
        const Family f = (q[0] >> 4) == 4 ? v4 : v6;
        const size_t header = query_header_size(f);
        for (size_t n = 0; n < q.size(); ++n)
            bad.emplace_back("prefix " + std::to_string(n),
                             Bytes(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n)));
        Bytes c = q;
        c[header + 2] ^= 0x01;
        bad.emplace_back("message checksum", c);
        c = q;
        c[header + (f == v4 ? 4 : 8)] ^= 0x01;  // the group, checksum not updated
        bad.emplace_back("message changed", c);
        if (f == v4) {
            c = q;
            c[10] ^= 0x80;
            bad.emplace_back("IPv4 header checksum", c);
            c = q;
            c[9] = ip_proto_udp;
            fix_lengths_and_checksums(c);
            bad.emplace_back("not IGMP", c);
        } else {
            c = q;
            c[24] ^= 0x01;  // destination: the pseudo-header no longer matches
            bad.emplace_back("pseudo-header", c);
        }
        // The message truncated inside lengths and checksums that agree with it.
        for (size_t n = 0; n < (f == v4 ? 8u : 24u); ++n) {
            c = Bytes(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(header + n));
            fix_lengths_and_checksums(c);
            bad.emplace_back("message of " + std::to_string(n) + " octets", c);
        }
        // More sources announced than present.
        if (q.size() > header + (f == v4 ? 8u : 24u)) {
            c = q;
            const size_t count = header + (f == v4 ? 10 : 26);
            store_be16(&c[count], static_cast<uint16_t>(load_be16(&c[count]) + 1));
            fix_lengths_and_checksums(c);
            bad.emplace_back("source count overrun", c);
        }
        // Not a query: type changed to a report's.
        c = q;
        c[header] = f == v4 ? igmp_v3_report : mld_v2_report;
        fix_lengths_and_checksums(c);
        bad.emplace_back("report type", c);
    }
    // A report, and a datagram of neither IP version.
    Bytes report(1500);
    ReportBuilder b(report, v4, IpAddress::v4(0xc0000201));
    ASSERT_TRUE(b.add_record(is_ex, group(v4, 1), {}));
    report.resize(b.finish());
    bad.emplace_back("IGMPv3 report", report);
    Bytes v5 = general_query(v4, 0);
    v5[0] = static_cast<uint8_t>(0x50 | (v5[0] & 0x0f));
    bad.emplace_back("IP version 5", v5);

    const uint64_t before = h.proxy.reports_sent();
    for (const auto& [what, d] : bad) {
        SCOPED_TRACE(what + ", " + std::to_string(d.size()) + " octets");
        RouterQuery q;
        EXPECT_NE(parse_router_query(d, q), ParseError::ok);
        h.query(d);
        EXPECT_EQ(h.advance_by(1s), Recs{});
    }
    EXPECT_EQ(h.proxy.reports_sent(), before);
}

// RFC 3376 §7.1 and RFC 3810 §8.1: an IGMP query of 9 to 11 octets or an MLD query of 25 to 27
// octets is neither version; such queries MUST be silently ignored.
TEST(UpstreamProxy, QueriesOfNoVersionsLengthAreIgnored) {
    Harness h;
    populate(h);
    for (const Family f : both_families) {
        const size_t header = query_header_size(f);
        const size_t from = f == v4 ? 9 : 25;
        for (size_t n = from; n < from + 3; ++n) {
            SCOPED_TRACE(std::string(family_name(f)) + " query of " + std::to_string(n) +
                         " octets");
            Bytes d = general_query(f, 0);
            d.resize(header + n);
            fix_lengths_and_checksums(d);
            h.query(d);
            EXPECT_EQ(h.advance_by(1s), Recs{});
        }
    }
}

}  // namespace
