// tshark's AMT dissector as an independent judge of the codec's wire format (checklist §1). Every
// message the codec can build is sent over an outer IPv4 and an outer IPv6 UDP datagram into one
// pcap; tshark decodes the pcap once, and each decoded field must be the value that was built.
// The encapsulated IGMP/MLD messages and data packets are judged by tshark's own dissectors, and
// every checksum tshark can verify (outer IPv4 header and UDP, inner IPv4 header, IGMP, ICMPv6,
// inner UDP) must be "good". A few deliberately broken control frames prove that the judge sees
// bad checksums and malformed packets, so a clean result is not vacuous.
//
// tshark 4.0 preferences used: ip.check_checksum and udp.check_checksum (both off by default).
// There is no igmp.check_checksum: IGMP and ICMPv6 always verify their checksums.
// Checksum status values (proto_checksum_enum_e): 0 bad, 1 good, 2 unverified, 3 not present.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"

namespace {

using amt::Family;
using amt::IpAddress;
using amt::UdpEndpoint;
using json = nlohmann::ordered_json;  // keeps tshark's field order (records in sequence)
using Bytes = std::vector<uint8_t>;

IpAddress ip(const char* text) {
    const std::optional<IpAddress> a = IpAddress::parse(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(IpAddress{});
}

// ---- Outer endpoints: the relay listens on 2268. ----

constexpr const char* relay_v4_text = "192.0.2.1";
constexpr const char* relay_v6_text = "2001:db8::1";
constexpr const char* gateway_v4_text = "198.51.100.7";
constexpr const char* gateway_v6_text = "2001:db8:1::7";
constexpr uint16_t gateway_v4_port = 40000;
constexpr uint16_t gateway_v6_port = 40001;

UdpEndpoint relay_endpoint(Family outer) {
    return {ip(outer == Family::ipv4 ? relay_v4_text : relay_v6_text), amt::amt_udp_port};
}
UdpEndpoint gateway_endpoint(Family outer) {
    return outer == Family::ipv4 ? UdpEndpoint{ip(gateway_v4_text), gateway_v4_port}
                                 : UdpEndpoint{ip(gateway_v6_text), gateway_v6_port};
}
// The Gateway IP field as text: IPv4-compatible ::a.b.c.d for IPv4 (checklist §1.4).
std::string gateway_field_text(Family outer) {
    return outer == Family::ipv4 ? std::string("::") + gateway_v4_text : gateway_v6_text;
}

// ---- The messages' contents. ----

constexpr uint32_t discovery_nonce = 0x1a2b3c4d;
constexpr uint32_t request_nonce_p0 = 0x5566778a;
constexpr uint32_t request_nonce_p1 = 0x99aabbcc;
constexpr const char* advertised_v4_text = "192.0.2.99";
constexpr const char* advertised_v6_text = "2001:db8::99";
const amt::QueryParameters igmp_query_params{.robustness = 3, .qqic = 60, .max_resp_code = 100};
const amt::QueryParameters mld_query_params{.robustness = 2, .qqic = 125, .max_resp_code = 10000};

struct QueryCase {
    const char* name;
    Family query_family;
    bool l_flag;
    bool g_flag;
    amt::ResponseMac mac;
    uint32_t nonce;
};
const QueryCase query_cases[] = {
    {"query_igmp", Family::ipv4, false, false, {0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}, 0x01020304},
    {"query_igmp_l", Family::ipv4, true, false, {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5}, 0x11121314},
    {"query_igmp_g", Family::ipv4, false, true, {0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, 0x21222324},
    {"query_igmp_lg", Family::ipv4, true, true, {0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa}, 0x31323334},
    {"query_mld", Family::ipv6, false, false, {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}, 0x41424344},
    {"query_mld_l", Family::ipv6, true, false, {0x80, 0x00, 0x00, 0x00, 0x00, 0x00}, 0x51525354},
    {"query_mld_g", Family::ipv6, false, true, {0x13, 0x57, 0x9b, 0xdf, 0x02, 0x46}, 0x61626364},
    {"query_mld_lg", Family::ipv6, true, true, {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}, 0x71727374},
};

struct RecordCase {
    amt::RecordType type;
    const char* group;
    std::vector<const char*> sources;
};
const std::vector<RecordCase> igmpv3_records = {
    {amt::RecordType::mode_is_include, "232.1.1.1", {"10.0.0.1", "10.0.0.2"}},
    {amt::RecordType::change_to_exclude, "239.1.2.3", {}},
    {amt::RecordType::allow_new_sources, "232.2.2.2", {"10.0.0.3", "10.0.0.4", "10.0.0.5"}},
    {amt::RecordType::block_old_sources, "232.3.3.3", {"10.0.0.6"}},
};
const std::vector<RecordCase> mldv2_records = {
    {amt::RecordType::change_to_include, "ff3e::8000:1", {"2001:db8:5::1", "2001:db8:5::2"}},
    {amt::RecordType::mode_is_exclude, "ff15::abcd", {}},
    {amt::RecordType::allow_new_sources, "ff3e::8000:2", {"2001:db8:5::3"}},
    {amt::RecordType::block_old_sources,
     "ff3e::8000:3",
     {"2001:db8:6::1", "2001:db8:6::2", "2001:db8:6::3"}},
};

struct UpdateCase {
    const char* name;
    amt::ResponseMac mac;
    uint32_t nonce;
};
const UpdateCase update_cases[] = {
    {"update_igmpv3", {0x01, 0x23, 0x45, 0x67, 0x89, 0xab}, 0x0badcafe},
    {"update_mldv2", {0xcd, 0xef, 0x01, 0x23, 0x45, 0x67}, 0x1badcafe},
    {"update_igmpv2_report", {0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, 0x2badcafe},
    {"update_igmpv2_leave", {0x21, 0x22, 0x33, 0x44, 0x55, 0x66}, 0x3badcafe},
    {"update_mldv1_report", {0x31, 0x22, 0x33, 0x44, 0x55, 0x66}, 0x4badcafe},
    {"update_mldv1_done", {0x41, 0x22, 0x33, 0x44, 0x55, 0x66}, 0x5badcafe},
};
constexpr const char* v2_group_text = "239.1.1.1";
constexpr const char* v2_inner_src_text = "192.168.1.10";
constexpr const char* v1_group_text = "ff3e::1234";
constexpr const char* v1_inner_src_text = "fe80::1";

// The complete multicast packets inside the two Multicast Data messages.
constexpr const char* data_src_v4_text = "10.1.2.3";
constexpr const char* data_dst_v4_text = "232.1.1.1";
constexpr const char* data_src_v6_text = "2001:db8:5::3";
constexpr const char* data_dst_v6_text = "ff3e::8000:1";
constexpr uint16_t data_src_port = 5000;
constexpr uint16_t data_dst_port = 5001;
constexpr uint8_t data_ttl = 16;
constexpr uint16_t data_ipv4_id = 0x4242;
constexpr size_t data_payload_size = 100;

struct TeardownCase {
    const char* name;
    amt::ResponseMac mac;
    uint32_t nonce;
    const char* gateway_ip;
    const char* gateway_field;  // how the 16-octet Gateway IP field must read
    uint16_t gateway_port;
};
const TeardownCase teardown_cases[] = {
    {"teardown_gw_v4",
     {0x66, 0x55, 0x44, 0x33, 0x22, 0x11},
     0x76543210,
     "203.0.113.5",
     "::203.0.113.5",
     1234},
    {"teardown_gw_v6",
     {0x16, 0x25, 0x34, 0x43, 0x52, 0x61},
     0x86543210,
     "2001:db8:9::5",
     "2001:db8:9::5",
     65535},
};

// ---- Building the samples. ----

struct Sample {
    std::string name;
    Family outer = Family::ipv4;
    bool to_relay = true;     // gateway -> relay; else relay -> gateway
    Bytes amt;                // the UDP payload
    int inner_checksums = 0;  // checksums tshark verifies inside the AMT message
    bool control = false;     // deliberately broken: the judge must object
    bool corrupt_udp_checksum = false;
};

Bytes sized(Bytes b, size_t n) {
    EXPECT_NE(n, 0u) << "a builder failed";
    b.resize(n);
    return b;
}

std::vector<IpAddress> addresses(const std::vector<const char*>& texts) {
    std::vector<IpAddress> out;
    for (const char* t : texts)
        out.push_back(ip(t));
    return out;
}

Bytes report_datagram(std::string_view name) {
    Bytes d(1500);
    if (name == "update_igmpv3" || name == "update_mldv2") {
        const bool v4 = name == "update_igmpv3";
        amt::ReportBuilder rb(d, v4 ? Family::ipv4 : Family::ipv6);
        for (const RecordCase& r : v4 ? igmpv3_records : mldv2_records) {
            EXPECT_TRUE(rb.add_record(r.type, ip(r.group), addresses(r.sources))) << name;
        }
        return sized(d, rb.finish());
    }
    const std::map<std::string_view, amt::ReportKind> kinds = {
        {"update_igmpv2_report", amt::ReportKind::igmpv2_report},
        {"update_igmpv2_leave", amt::ReportKind::igmpv2_leave},
        {"update_mldv1_report", amt::ReportKind::mldv1_report},
        {"update_mldv1_done", amt::ReportKind::mldv1_done},
    };
    const amt::ReportKind kind = kinds.at(name);
    const bool v4 = kind == amt::ReportKind::igmpv2_report || kind == amt::ReportKind::igmpv2_leave;
    return sized(d, amt::build_v1v2_message(d, kind, ip(v4 ? v2_group_text : v1_group_text),
                                            ip(v4 ? v2_inner_src_text : v1_inner_src_text)));
}

Bytes data_payload() {
    Bytes payload(data_payload_size);
    for (size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<uint8_t>(i * 7 + 1);
    return payload;
}

Bytes data_packet(Family inner) {
    const bool v4 = inner == Family::ipv4;
    const UdpEndpoint src{ip(v4 ? data_src_v4_text : data_src_v6_text), data_src_port};
    const UdpEndpoint dst{ip(v4 ? data_dst_v4_text : data_dst_v6_text), data_dst_port};
    Bytes d(1500);
    return sized(d, amt::build_udp_datagram(d, src, dst, data_payload(),
                                            {.ttl = data_ttl, .ipv4_id = data_ipv4_id}));
}

std::vector<Sample> make_samples() {
    std::vector<Sample> out;
    for (const Family outer : {Family::ipv4, Family::ipv6}) {
        Bytes b(2048);
        auto add = [&](std::string name, bool to_relay, size_t n, int inner_checksums = 0) {
            out.push_back({.name = std::move(name),
                           .outer = outer,
                           .to_relay = to_relay,
                           .amt = sized(b, n),
                           .inner_checksums = inner_checksums});
        };
        add("discovery", true, amt::build_discovery(b, {.nonce = discovery_nonce}));
        add("advertisement_v4", false,
            amt::build_advertisement(b,
                                     {.nonce = discovery_nonce, .relay = ip(advertised_v4_text)}));
        add("advertisement_v6", false,
            amt::build_advertisement(b,
                                     {.nonce = discovery_nonce, .relay = ip(advertised_v6_text)}));
        add("request_p0", true, amt::build_request(b, {.nonce = request_nonce_p0, .flags = 0}));
        add("request_p1", true,
            amt::build_request(b, {.nonce = request_nonce_p1, .flags = amt::request_p_flag}));
        for (const QueryCase& q : query_cases) {
            const bool igmp = q.query_family == Family::ipv4;
            amt::QueryFields f{.l_flag = q.l_flag,
                               .mac = q.mac,
                               .nonce = q.nonce,
                               .query_family = q.query_family,
                               .query = igmp ? igmp_query_params : mld_query_params};
            if (q.g_flag) f.gateway = gateway_endpoint(outer);
            // IGMP: inner IPv4 header + IGMP; MLD: ICMPv6 only.
            add(q.name, false, amt::build_membership_query(b, f), igmp ? 2 : 1);
        }
        for (const UpdateCase& u : update_cases) {
            const bool igmp = std::string_view(u.name).find("igmp") != std::string_view::npos;
            add(u.name, true,
                amt::build_membership_update(b, u.mac, u.nonce, report_datagram(u.name)),
                igmp ? 2 : 1);
        }
        add("data_v4", false, amt::build_multicast_data(b, data_packet(Family::ipv4)), 2);
        add("data_v6", false, amt::build_multicast_data(b, data_packet(Family::ipv6)), 1);
        for (const TeardownCase& t : teardown_cases) {
            add(t.name, true,
                amt::build_teardown(b, {.mac = t.mac,
                                        .nonce = t.nonce,
                                        .gateway = {ip(t.gateway_ip), t.gateway_port}}));
        }
    }
    return out;
}

// Broken copies of good messages (outer IPv4): the judge must object to each.
std::vector<Sample> make_controls(const std::vector<Sample>& good) {
    auto copy = [&](const char* of, const char* name) {
        for (const Sample& s : good) {
            if (s.name == of && s.outer == Family::ipv4) {
                Sample c = s;
                c.name = name;
                c.control = true;
                return c;
            }
        }
        ADD_FAILURE() << "no sample " << of;
        return Sample{};
    };
    std::vector<Sample> out;
    out.push_back(copy("request_p0", "control_bad_udp_checksum"));
    out.back().corrupt_udp_checksum = true;
    // Inner IPv4 header checksum at 12 + 10; IGMP checksum at 12 + 24 + 2.
    out.push_back(copy("update_igmpv2_report", "control_bad_inner_ip_checksum"));
    out.back().amt.at(12 + 10) ^= 0x01;
    out.push_back(copy("update_igmpv3", "control_bad_igmp_checksum"));
    out.back().amt.at(12 + 24 + 2) ^= 0x01;
    // ICMPv6 checksum after the 40-octet IPv6 header and the 8-octet Hop-by-Hop header.
    out.push_back(copy("query_mld", "control_bad_icmpv6_checksum"));
    out.back().amt.at(12 + 48 + 2) ^= 0x01;
    out.push_back(copy("teardown_gw_v6", "control_truncated_teardown"));
    out.back().amt.resize(20);
    return out;
}

Bytes frame_of(const Sample& s) {
    const UdpEndpoint relay = relay_endpoint(s.outer);
    const UdpEndpoint gateway = gateway_endpoint(s.outer);
    const amt::MacAddress relay_mac{0x02, 0, 0, 0, 0, 0x01};
    const amt::MacAddress gateway_mac{0x02, 0, 0, 0, 0, 0x02};
    Bytes frame(2048);
    const size_t eth = amt::build_ethernet(
        frame, s.to_relay ? relay_mac : gateway_mac, s.to_relay ? gateway_mac : relay_mac,
        s.outer == Family::ipv4 ? amt::ethertype_ipv4 : amt::ethertype_ipv6);
    const size_t n =
        amt::build_udp_datagram(amt::MutByteView(frame).subspan(eth), s.to_relay ? gateway : relay,
                                s.to_relay ? relay : gateway, s.amt);
    EXPECT_NE(n, 0u) << s.name;
    frame.resize(eth + n);
    if (s.corrupt_udp_checksum) frame.at(eth + amt::ip_header_size(s.outer) + 6) ^= 0x01;
    return frame;
}

// ---- The pcap file: classic libpcap, little-endian, microseconds, LINKTYPE_ETHERNET. ----

void put_le(std::ofstream& f, uint32_t v, int octets) {
    for (int i = 0; i < octets; ++i)
        f.put(static_cast<char>(v >> (8 * i)));
}

bool write_pcap(const std::string& path, const std::vector<Bytes>& frames) {
    std::ofstream f(path, std::ios::binary);
    put_le(f, 0xa1b2c3d4, 4);  // magic
    put_le(f, 2, 2);           // version 2.4
    put_le(f, 4, 2);
    put_le(f, 0, 4);      // thiszone
    put_le(f, 0, 4);      // sigfigs
    put_le(f, 65535, 4);  // snaplen
    put_le(f, 1, 4);      // LINKTYPE_ETHERNET
    uint32_t seconds = 1700000000;
    for (const Bytes& b : frames) {
        put_le(f, seconds++, 4);
        put_le(f, 0, 4);
        put_le(f, static_cast<uint32_t>(b.size()), 4);  // captured
        put_le(f, static_cast<uint32_t>(b.size()), 4);  // original
        f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    f.close();
    return f.good();
}

// ---- Reading tshark's JSON. ----

// With --no-duplicate-keys a repeated field is an array of its values.
void push_strings(const json& v, std::vector<std::string>& out) {
    if (v.is_string()) {
        out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
        for (const json& e : v) {
            if (e.is_string()) out.push_back(e.get<std::string>());
        }
    }
}

// Every value of field `key` anywhere under `node`, in document order.
void collect(const json& node, std::string_view key, std::vector<std::string>& out) {
    if (node.is_object()) {
        for (auto it = node.begin(); it != node.end(); ++it) {
            if (it.key() == key) push_strings(it.value(), out);
            collect(it.value(), key, out);
        }
    } else if (node.is_array()) {
        for (const json& e : node)
            collect(e, key, out);
    }
}

std::vector<std::string> all(const json& node, std::string_view key) {
    std::vector<std::string> out;
    collect(node, key, out);
    return out;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& e : v)
        s += (s.empty() ? "" : ", ") + e;
    return s;
}

// The single value of `key` under `node`, or a text that says why there is not exactly one.
std::string one(const json& node, std::string_view key) {
    const std::vector<std::string> v = all(node, key);
    if (v.size() == 1) return v[0];
    if (v.empty()) return "<absent>";
    return "<" + std::to_string(v.size()) + " values: " + joined(v) + ">";
}

// The objects under `node` that directly hold `key` (e.g. the group records of a report).
void objects_with(const json& node, std::string_view key, std::vector<const json*>& out) {
    if (node.is_object()) {
        if (node.contains(key)) out.push_back(&node);
        for (const auto& item : node.items())
            objects_with(item.value(), key, out);
    } else if (node.is_array()) {
        for (const json& e : node)
            objects_with(e, key, out);
    }
}

const json& sub(const json& node, const char* key) {
    static const json absent;
    return node.is_object() && node.contains(key) ? node.at(key) : absent;
}

// A numeric field (decimal or 0x-hex) as a number; nullopt if it is not exactly one number.
std::optional<uint64_t> number(const json& node, std::string_view key) {
    const std::string text = one(node, key);
    if (text.empty() || text[0] == '<') return std::nullopt;
    char* end = nullptr;
    const bool hex = text.starts_with("0x");
    const uint64_t v = std::strtoull(text.c_str() + (hex ? 2 : 0), &end, hex ? 16 : 10);
    if (end == nullptr || *end != '\0') return std::nullopt;
    return v;
}

::testing::AssertionResult number_is(const json& node, std::string_view key, uint64_t expected) {
    if (number(node, key) == expected) return ::testing::AssertionSuccess();
    std::ostringstream msg;
    msg << key << " is " << one(node, key) << ", expected " << expected << " = 0x" << std::hex
        << expected;
    return ::testing::AssertionFailure() << msg.str();
}

uint64_t mac_value(const amt::ResponseMac& mac) {
    uint64_t v = 0;
    for (const uint8_t o : mac)
        v = (v << 8) | o;
    return v;
}

// Addresses compared as octets: tshark may print ::a.b.c.d or ::xxxx:yyyy for the same value.
std::optional<Bytes> address_octets(const std::string& text) {
    std::array<uint8_t, 16> buf{};
    if (inet_pton(AF_INET, text.c_str(), buf.data()) == 1)
        return Bytes(buf.begin(), buf.begin() + 4);
    if (inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) return Bytes(buf.begin(), buf.end());
    return std::nullopt;
}

::testing::AssertionResult address_is(const json& node, std::string_view key,
                                      const std::string& expected) {
    const std::string got = one(node, key);
    const std::optional<Bytes> g = address_octets(got);
    const std::optional<Bytes> e = address_octets(expected);
    if (g && e && *g == *e) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << key << " is " << got << ", expected " << expected;
}

::testing::AssertionResult addresses_are(const json& node, std::string_view key,
                                         const std::vector<const char*>& expected) {
    const std::vector<std::string> got = all(node, key);
    bool same = got.size() == expected.size();
    for (size_t i = 0; same && i < got.size(); ++i) {
        const std::optional<Bytes> g = address_octets(got[i]);
        same = g && *g == address_octets(expected[i]);
    }
    if (same) return ::testing::AssertionSuccess();
    std::vector<std::string> e(expected.begin(), expected.end());
    return ::testing::AssertionFailure()
           << key << " is [" << joined(got) << "], expected [" << joined(e) << "]";
}

std::string hex_colons(amt::ByteView b) {
    std::string s;
    char buf[4];
    for (const uint8_t o : b) {
        std::snprintf(buf, sizeof(buf), "%02x", o);
        s += (s.empty() ? "" : ":") + std::string(buf);
    }
    return s;
}

// proto.h: expert severities and groups.
constexpr uint64_t pi_warn = 0x00600000;
constexpr uint64_t pi_checksum = 0x01000000;
constexpr uint64_t pi_malformed = 0x07000000;

// What tshark objects to: malformed marks, warning/error experts, checksum or malformed experts
// of any severity, and any checksum status other than good.
void find_problems(const json& node, const std::string& path, std::vector<std::string>& out) {
    if (node.is_array()) {
        for (const json& e : node)
            find_problems(e, path, out);
        return;
    }
    if (!node.is_object()) return;
    for (auto it = node.begin(); it != node.end(); ++it) {
        const std::string& key = it.key();
        const std::string where = path + "/" + key;
        if (key == "_ws.malformed") out.push_back(where + ": malformed packet");
        if (key == "_ws.expert") {
            const json& experts = it.value();
            for (const json& x : experts.is_array() ? experts : json::array({experts})) {
                const uint64_t severity = number(x, "_ws.expert.severity").value_or(0);
                const uint64_t group = number(x, "_ws.expert.group").value_or(0);
                if (severity >= pi_warn || group == pi_checksum || group == pi_malformed) {
                    std::ostringstream msg;
                    msg << where << ": expert \"" << one(x, "_ws.expert.message")
                        << "\" severity 0x" << std::hex << severity << " group 0x" << group;
                    out.push_back(msg.str());
                }
            }
        }
        if (key.ends_with(".checksum.status")) {
            std::vector<std::string> values;
            push_strings(it.value(), values);
            for (const std::string& v : values) {
                if (v != "1") out.push_back(where + " = " + v + " (0 bad, 1 good, 2 unverified)");
            }
        }
        find_problems(it.value(), where, out);
    }
}

std::vector<std::string> problems(const json& layers) {
    std::vector<std::string> out;
    find_problems(layers, "", out);
    return out;
}

size_t good_checksums(const json& layers) {
    size_t n = 0;
    for (const char* f : {"ip.checksum.status", "udp.checksum.status", "igmp.checksum.status",
                          "icmpv6.checksum.status"}) {
        for (const std::string& v : all(layers, f))
            n += v == "1";
    }
    return n;
}

const char* family_name(Family f) {
    return f == Family::ipv4 ? "IPv4" : "IPv6";
}

// ---- The fixture: one pcap, one tshark run. ----

class TsharkJudge : public ::testing::Test {
  public:
    struct Frame {
        const Sample& sample;
        const json& layers;
        const json& amt;
        std::string ctx;  // for assertion messages
    };

    static void SetUpTestSuite() {
        samples_ = make_samples();
        for (Sample& c : make_controls(samples_))
            samples_.push_back(std::move(c));
        error_ = run_tshark();
    }

    static void TearDownTestSuite() {
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
        dir_.clear();
        decoded_ = json();
        samples_.clear();
    }

    void SetUp() override { ASSERT_TRUE(error_.empty()) << error_; }

    static const std::vector<Sample>& samples() { return samples_; }

    static Frame frame(std::string_view name, Family outer) {
        for (size_t i = 0; i < samples_.size(); ++i) {
            const Sample& s = samples_[i];
            if (s.name != name || s.outer != outer) continue;
            const json& layers = sub(sub(decoded_.at(i), "_source"), "layers");
            std::string ctx = s.name + " over " + family_name(outer) + " outer (frame " +
                              std::to_string(i + 1) + ")";
            return {s, layers, sub(layers, "amt"), std::move(ctx)};
        }
        throw std::runtime_error("no sample " + std::string(name));
    }

    static constexpr Family outers[] = {Family::ipv4, Family::ipv6};

  private:
    // Writes the pcap and decodes it; returns an error text, empty on success.
    static std::string run_tshark() {
        const char* tshark = std::getenv("TSHARK");
        if (tshark == nullptr || *tshark == '\0') return "TSHARK is not set (path of tshark)";
        if (std::string_view(tshark).find('\'') != std::string_view::npos) {
            return "TSHARK contains a quote";
        }
        char tmpl[] = "/tmp/tshark_judge_XXXXXX";
        if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
        dir_ = tmpl;
        const std::string pcap = dir_ + "/amt.pcap";
        const std::string err = dir_ + "/tshark.stderr";
        std::vector<Bytes> frames;
        for (const Sample& s : samples_)
            frames.push_back(frame_of(s));
        if (!write_pcap(pcap, frames)) return "cannot write " + pcap;

        const std::string cmd = std::string("'") + tshark + "' -n -r '" + pcap +
                                "' -T json --no-duplicate-keys"
                                " -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE 2>'" +
                                err + "'";
        FILE* p = popen(cmd.c_str(), "r");
        if (p == nullptr) return "popen failed: " + cmd;
        std::string out;
        char buf[65536];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0)
            out.append(buf, n);
        const int status = pclose(p);
        std::ifstream ef(err);
        const std::string stderr_text((std::istreambuf_iterator<char>(ef)),
                                      std::istreambuf_iterator<char>());
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            return cmd + " failed (status " + std::to_string(status) + "): " + stderr_text;
        }
        try {
            decoded_ = json::parse(out);
        } catch (const json::exception& e) {
            return std::string("tshark output is not JSON: ") + e.what();
        }
        if (!decoded_.is_array() || decoded_.size() != samples_.size()) {
            return "tshark decoded " + std::to_string(decoded_.size()) + " frames, pcap has " +
                   std::to_string(samples_.size()) + "; stderr: " + stderr_text;
        }
        return "";
    }

    static inline std::vector<Sample> samples_;
    static inline json decoded_;
    static inline std::string dir_;
    static inline std::string error_;
};

// ---- Every good frame: AMT on 2268, no complaint, every verifiable checksum good. ----

TEST_F(TsharkJudge, EveryFrameIsCleanAmt) {
    size_t checked = 0;
    for (const Family outer : outers) {
        for (const Sample& s : samples()) {
            if (s.control || s.outer != outer) continue;
            const Frame f = frame(s.name, outer);
            ++checked;
            const bool v4 = outer == Family::ipv4;
            EXPECT_TRUE(
                one(f.layers, "frame.protocols")
                    .starts_with(v4 ? "eth:ethertype:ip:udp:amt" : "eth:ethertype:ipv6:udp:amt"))
                << f.ctx << ": " << one(f.layers, "frame.protocols");
            EXPECT_TRUE(f.amt.is_object()) << f.ctx << ": no amt layer";
            EXPECT_EQ(one(f.amt, "amt.version"), "0") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.type", s.amt.at(0))) << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.unknown"), "<absent>") << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.relay_address.unknown"), "<absent>") << f.ctx;

            const std::vector<std::string> p = problems(f.layers);
            EXPECT_TRUE(p.empty()) << f.ctx << ": tshark objects:\n  " << joined(p);
            const size_t outer_checksums = v4 ? 2 : 1;  // IPv4 header + UDP, or UDP
            EXPECT_EQ(good_checksums(f.layers), outer_checksums + size_t(s.inner_checksums))
                << f.ctx << ": verified-good checksums";

            const json& outer_ip = sub(f.layers, v4 ? "ip" : "ipv6");
            const json& udp = sub(f.layers, "udp");
            const UdpEndpoint src = s.to_relay ? gateway_endpoint(outer) : relay_endpoint(outer);
            const UdpEndpoint dst = s.to_relay ? relay_endpoint(outer) : gateway_endpoint(outer);
            const std::string src_text = s.to_relay ? (v4 ? gateway_v4_text : gateway_v6_text)
                                                    : (v4 ? relay_v4_text : relay_v6_text);
            const std::string dst_text = s.to_relay ? (v4 ? relay_v4_text : relay_v6_text)
                                                    : (v4 ? gateway_v4_text : gateway_v6_text);
            // The top-level layers are the outer ones; the inner ones are inside the amt layer.
            EXPECT_TRUE(address_is(outer_ip, v4 ? "ip.src" : "ipv6.src", src_text)) << f.ctx;
            EXPECT_TRUE(address_is(outer_ip, v4 ? "ip.dst" : "ipv6.dst", dst_text)) << f.ctx;
            EXPECT_TRUE(number_is(udp, "udp.srcport", src.port)) << f.ctx;
            EXPECT_TRUE(number_is(udp, "udp.dstport", dst.port)) << f.ctx;
            EXPECT_TRUE(number_is(udp, "udp.length", amt::udp_header_size + s.amt.size())) << f.ctx;
            EXPECT_EQ(one(udp, "udp.payload"), hex_colons(s.amt)) << f.ctx;
        }
    }
    EXPECT_EQ(checked, 2u * 23u);  // 23 messages per outer family
}

// ---- The judge itself: broken frames must be noticed. ----

TEST_F(TsharkJudge, JudgeObjectsToBrokenControlFrames) {
    const std::map<std::string, std::string> expected = {
        {"control_bad_udp_checksum", "udp.checksum.status = 0"},
        {"control_bad_inner_ip_checksum", "ip.checksum.status = 0"},
        {"control_bad_igmp_checksum", "igmp.checksum.status = 0"},
        {"control_bad_icmpv6_checksum", "icmpv6.checksum.status = 0"},
        {"control_truncated_teardown", "malformed packet"},
    };
    for (const auto& [name, complaint] : expected) {
        const Frame f = frame(name, Family::ipv4);
        const std::string p = joined(problems(f.layers));
        EXPECT_NE(p.find(complaint), std::string::npos)
            << f.ctx << ": expected a complaint containing \"" << complaint << "\", got: " << p;
    }
}

// ---- Per message kind. ----

TEST_F(TsharkJudge, RelayDiscovery) {
    for (const Family outer : outers) {
        const Frame f = frame("discovery", outer);
        EXPECT_EQ(one(f.amt, "amt.type"), "1") << f.ctx;
        EXPECT_TRUE(number_is(f.amt, "amt.discovery_nonce", discovery_nonce)) << f.ctx;
        EXPECT_EQ(one(f.amt, "amt.reserved"), "00:00:00") << f.ctx;
    }
}

TEST_F(TsharkJudge, RelayAdvertisement) {
    for (const Family outer : outers) {
        for (const bool v4 : {true, false}) {
            const Frame f = frame(v4 ? "advertisement_v4" : "advertisement_v6", outer);
            EXPECT_EQ(one(f.amt, "amt.type"), "2") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.discovery_nonce", discovery_nonce)) << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.reserved"), "00:00:00") << f.ctx;
            if (v4) {
                EXPECT_TRUE(address_is(f.amt, "amt.relay_address.ipv4", advertised_v4_text))
                    << f.ctx;
                EXPECT_EQ(one(f.amt, "amt.relay_address.ipv6"), "<absent>") << f.ctx;
            } else {
                EXPECT_TRUE(address_is(f.amt, "amt.relay_address.ipv6", advertised_v6_text))
                    << f.ctx;
                EXPECT_EQ(one(f.amt, "amt.relay_address.ipv4"), "<absent>") << f.ctx;
            }
        }
    }
}

TEST_F(TsharkJudge, Request) {
    for (const Family outer : outers) {
        for (const bool p : {false, true}) {
            const Frame f = frame(p ? "request_p1" : "request_p0", outer);
            EXPECT_EQ(one(f.amt, "amt.type"), "3") << f.ctx;
            EXPECT_TRUE(
                number_is(f.amt, "amt.request_nonce", p ? request_nonce_p1 : request_nonce_p0))
                << f.ctx;
            // Wireshark names P's values backwards (checklist §1.9): compare the raw bit 0x01.
            EXPECT_EQ(one(f.amt, "amt.request.p"), p ? "1" : "0") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.request.reserved", 0u)) << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.reserved"), "00:00") << f.ctx;
        }
    }
}

void expect_igmpv3_general_query(const TsharkJudge::Frame& f) {
    const json& inner = sub(f.amt, "ip");
    const json& igmp = sub(f.amt, "igmp");
    EXPECT_EQ(one(inner, "ip.hdr_len"), "24") << f.ctx;
    EXPECT_EQ(one(inner, "ip.dsfield"), "0xc0") << f.ctx;
    EXPECT_EQ(one(inner, "ip.ttl"), "1") << f.ctx;
    EXPECT_EQ(one(inner, "ip.proto"), "2") << f.ctx;
    EXPECT_EQ(one(inner, "ip.len"), std::to_string(amt::igmpv3_general_query_size)) << f.ctx;
    EXPECT_TRUE(address_is(inner, "ip.src", "0.0.0.0")) << f.ctx;
    EXPECT_TRUE(address_is(inner, "ip.dst", "224.0.0.1")) << f.ctx;
    EXPECT_EQ(one(inner, "ip.options.routeralert"), "94:04:00:00") << f.ctx;
    EXPECT_EQ(one(igmp, "igmp.version"), "3") << f.ctx;
    EXPECT_EQ(one(igmp, "igmp.type"), "0x11") << f.ctx;
    EXPECT_TRUE(number_is(igmp, "igmp.max_resp", igmp_query_params.max_resp_code)) << f.ctx;
    EXPECT_TRUE(address_is(igmp, "igmp.maddr", "0.0.0.0")) << f.ctx;
    EXPECT_EQ(one(igmp, "igmp.s"), "0") << f.ctx;
    EXPECT_TRUE(number_is(igmp, "igmp.qrv", igmp_query_params.robustness)) << f.ctx;
    EXPECT_TRUE(number_is(igmp, "igmp.qqic", igmp_query_params.qqic)) << f.ctx;
    EXPECT_EQ(one(igmp, "igmp.num_src"), "0") << f.ctx;
    EXPECT_EQ(sub(f.amt, "ipv6"), json()) << f.ctx << ": unexpected IPv6 inside";
}

void expect_mldv2_general_query(const TsharkJudge::Frame& f) {
    const json& inner = sub(f.amt, "ipv6");
    const json& icmp = sub(f.amt, "icmpv6");
    EXPECT_EQ(one(inner, "ipv6.hlim"), "1") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.nxt"), "0") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.plen"), std::to_string(amt::mldv2_general_query_size - 40)) << f.ctx;
    // Link-local source, hop limit 1, Router Alert: a Linux gateway answers only such a query.
    EXPECT_TRUE(one(inner, "ipv6.src").starts_with("fe80:"))
        << f.ctx << ": " << one(inner, "ipv6.src");
    EXPECT_TRUE(address_is(inner, "ipv6.dst", "ff02::1")) << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.hopopts.nxt"), "58") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.opt.router_alert"), "0") << f.ctx;
    EXPECT_EQ(one(icmp, "icmpv6.type"), "130") << f.ctx;
    EXPECT_EQ(one(icmp, "icmpv6.code"), "0") << f.ctx;
    EXPECT_TRUE(number_is(icmp, "icmpv6.mld.maximum_response_code", mld_query_params.max_resp_code))
        << f.ctx;
    EXPECT_TRUE(address_is(icmp, "icmpv6.mld.multicast_address", "::")) << f.ctx;
    EXPECT_EQ(one(icmp, "icmpv6.mld.flag.s"), "0") << f.ctx;
    EXPECT_TRUE(number_is(icmp, "icmpv6.mld.flag.qrv", mld_query_params.robustness)) << f.ctx;
    EXPECT_TRUE(number_is(icmp, "icmpv6.mld.qqi", mld_query_params.qqic)) << f.ctx;
    EXPECT_EQ(one(icmp, "icmpv6.mld.nb_sources"), "0") << f.ctx;
    EXPECT_EQ(sub(f.amt, "ip"), json()) << f.ctx << ": unexpected IPv4 inside";
}

TEST_F(TsharkJudge, MembershipQuery) {
    for (const Family outer : outers) {
        for (const QueryCase& q : query_cases) {
            const Frame f = frame(q.name, outer);
            EXPECT_EQ(one(f.amt, "amt.type"), "4") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.membership_query.reserved", 0u)) << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.membership_query.l"), q.l_flag ? "1" : "0") << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.membership_query.g"), q.g_flag ? "1" : "0") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.response_mac", mac_value(q.mac))) << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.request_nonce", q.nonce)) << f.ctx;
            if (q.query_family == Family::ipv4) {
                expect_igmpv3_general_query(f);
            } else {
                expect_mldv2_general_query(f);
            }
            if (q.g_flag) {
                EXPECT_TRUE(
                    number_is(f.amt, "amt.gateway.port_number", gateway_endpoint(outer).port))
                    << f.ctx;
                EXPECT_TRUE(address_is(f.amt, "amt.gateway.ip_address", gateway_field_text(outer)))
                    << f.ctx;
            } else {
                EXPECT_EQ(one(f.amt, "amt.gateway.port_number"), "<absent>") << f.ctx;
                EXPECT_EQ(one(f.amt, "amt.gateway.ip_address"), "<absent>") << f.ctx;
            }
        }
    }
}

const UpdateCase& update_case(std::string_view name) {
    for (const UpdateCase& u : update_cases) {
        if (u.name == name) return u;
    }
    throw std::runtime_error("no update case");
}

void expect_update_header(const TsharkJudge::Frame& f) {
    const UpdateCase& u = update_case(f.sample.name);
    EXPECT_EQ(one(f.amt, "amt.type"), "5") << f.ctx;
    EXPECT_EQ(one(f.amt, "amt.reserved"), "00") << f.ctx;
    EXPECT_TRUE(number_is(f.amt, "amt.response_mac", mac_value(u.mac))) << f.ctx;
    EXPECT_TRUE(number_is(f.amt, "amt.request_nonce", u.nonce)) << f.ctx;
}

void expect_inner_ipv4_report_header(const TsharkJudge::Frame& f, const char* src,
                                     const char* dst) {
    const json& inner = sub(f.amt, "ip");
    EXPECT_EQ(one(inner, "ip.hdr_len"), "24") << f.ctx;
    EXPECT_EQ(one(inner, "ip.ttl"), "1") << f.ctx;
    EXPECT_EQ(one(inner, "ip.proto"), "2") << f.ctx;
    EXPECT_EQ(one(inner, "ip.options.routeralert"), "94:04:00:00") << f.ctx;
    EXPECT_TRUE(address_is(inner, "ip.src", src)) << f.ctx;
    EXPECT_TRUE(address_is(inner, "ip.dst", dst)) << f.ctx;
}

void expect_inner_ipv6_report_header(const TsharkJudge::Frame& f, const char* src,
                                     const char* dst) {
    const json& inner = sub(f.amt, "ipv6");
    EXPECT_EQ(one(inner, "ipv6.hlim"), "1") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.nxt"), "0") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.hopopts.nxt"), "58") << f.ctx;
    EXPECT_EQ(one(inner, "ipv6.opt.router_alert"), "0") << f.ctx;
    EXPECT_TRUE(address_is(inner, "ipv6.src", src)) << f.ctx;
    EXPECT_TRUE(address_is(inner, "ipv6.dst", dst)) << f.ctx;
}

TEST_F(TsharkJudge, MembershipUpdateIgmpv3Report) {
    for (const Family outer : outers) {
        const Frame f = frame("update_igmpv3", outer);
        expect_update_header(f);
        expect_inner_ipv4_report_header(f, "0.0.0.0", "224.0.0.22");
        const json& igmp = sub(f.amt, "igmp");
        EXPECT_EQ(one(igmp, "igmp.version"), "3") << f.ctx;
        EXPECT_EQ(one(igmp, "igmp.type"), "0x22") << f.ctx;
        EXPECT_TRUE(number_is(igmp, "igmp.num_grp_recs", igmpv3_records.size())) << f.ctx;
        std::vector<const json*> records;
        objects_with(igmp, "igmp.record_type", records);
        ASSERT_EQ(records.size(), igmpv3_records.size()) << f.ctx;
        for (size_t i = 0; i < records.size(); ++i) {
            const RecordCase& r = igmpv3_records[i];
            const std::string ctx = f.ctx + " record " + std::to_string(i);
            EXPECT_TRUE(number_is(*records[i], "igmp.record_type", static_cast<uint8_t>(r.type)))
                << ctx;
            EXPECT_EQ(one(*records[i], "igmp.aux_data_len"), "0") << ctx;
            EXPECT_TRUE(number_is(*records[i], "igmp.num_src", r.sources.size())) << ctx;
            EXPECT_TRUE(address_is(*records[i], "igmp.maddr", r.group)) << ctx;
            EXPECT_TRUE(addresses_are(*records[i], "igmp.saddr", r.sources)) << ctx;
        }
    }
}

TEST_F(TsharkJudge, MembershipUpdateMldv2Report) {
    for (const Family outer : outers) {
        const Frame f = frame("update_mldv2", outer);
        expect_update_header(f);
        expect_inner_ipv6_report_header(f, "::", "ff02::16");
        const json& icmp = sub(f.amt, "icmpv6");
        EXPECT_EQ(one(icmp, "icmpv6.type"), "143") << f.ctx;
        EXPECT_EQ(one(icmp, "icmpv6.code"), "0") << f.ctx;
        EXPECT_TRUE(number_is(icmp, "icmpv6.mldr.nb_mcast_records", mldv2_records.size())) << f.ctx;
        std::vector<const json*> records;
        objects_with(icmp, "icmpv6.mldr.mar.record_type", records);
        ASSERT_EQ(records.size(), mldv2_records.size()) << f.ctx;
        for (size_t i = 0; i < records.size(); ++i) {
            const RecordCase& r = mldv2_records[i];
            const std::string ctx = f.ctx + " record " + std::to_string(i);
            EXPECT_TRUE(
                number_is(*records[i], "icmpv6.mldr.mar.record_type", static_cast<uint8_t>(r.type)))
                << ctx;
            EXPECT_EQ(one(*records[i], "icmpv6.mldr.mar.aux_data_len"), "0") << ctx;
            EXPECT_TRUE(number_is(*records[i], "icmpv6.mldr.mar.nb_sources", r.sources.size()))
                << ctx;
            EXPECT_TRUE(address_is(*records[i], "icmpv6.mldr.mar.multicast_address", r.group))
                << ctx;
            EXPECT_TRUE(addresses_are(*records[i], "icmpv6.mldr.mar.source_address", r.sources))
                << ctx;
        }
    }
}

TEST_F(TsharkJudge, MembershipUpdateIgmpv2ReportAndLeave) {
    for (const Family outer : outers) {
        for (const bool leave : {false, true}) {
            const Frame f = frame(leave ? "update_igmpv2_leave" : "update_igmpv2_report", outer);
            expect_update_header(f);
            expect_inner_ipv4_report_header(f, v2_inner_src_text,
                                            leave ? "224.0.0.2" : v2_group_text);
            const json& igmp = sub(f.amt, "igmp");
            EXPECT_EQ(one(igmp, "igmp.version"), "2") << f.ctx;
            EXPECT_EQ(one(igmp, "igmp.type"), leave ? "0x17" : "0x16") << f.ctx;
            EXPECT_EQ(one(igmp, "igmp.max_resp"), "0") << f.ctx;
            EXPECT_TRUE(address_is(igmp, "igmp.maddr", v2_group_text)) << f.ctx;
        }
    }
}

TEST_F(TsharkJudge, MembershipUpdateMldv1ReportAndDone) {
    for (const Family outer : outers) {
        for (const bool done : {false, true}) {
            const Frame f = frame(done ? "update_mldv1_done" : "update_mldv1_report", outer);
            expect_update_header(f);
            expect_inner_ipv6_report_header(f, v1_inner_src_text, done ? "ff02::2" : v1_group_text);
            const json& icmp = sub(f.amt, "icmpv6");
            EXPECT_EQ(one(icmp, "icmpv6.type"), done ? "132" : "131") << f.ctx;
            EXPECT_EQ(one(icmp, "icmpv6.code"), "0") << f.ctx;
            EXPECT_EQ(one(icmp, "icmpv6.mld.maximum_response_delay"), "0") << f.ctx;
            EXPECT_TRUE(address_is(icmp, "icmpv6.mld.multicast_address", v1_group_text)) << f.ctx;
        }
    }
}

TEST_F(TsharkJudge, MulticastData) {
    for (const Family outer : outers) {
        for (const Family inner_family : outers) {
            const bool v4 = inner_family == Family::ipv4;
            const Frame f = frame(v4 ? "data_v4" : "data_v6", outer);
            EXPECT_EQ(one(f.amt, "amt.type"), "6") << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.reserved"), "00") << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.multicast_data"), hex_colons(data_packet(inner_family)))
                << f.ctx;
            const json& inner = sub(f.amt, v4 ? "ip" : "ipv6");
            if (v4) {
                EXPECT_EQ(one(inner, "ip.ttl"), std::to_string(data_ttl)) << f.ctx;
                EXPECT_TRUE(number_is(inner, "ip.id", data_ipv4_id)) << f.ctx;
                EXPECT_EQ(one(inner, "ip.proto"), "17") << f.ctx;
                EXPECT_TRUE(number_is(inner, "ip.len", 20 + 8 + data_payload_size)) << f.ctx;
            } else {
                EXPECT_EQ(one(inner, "ipv6.hlim"), std::to_string(data_ttl)) << f.ctx;
                EXPECT_EQ(one(inner, "ipv6.nxt"), "17") << f.ctx;
                EXPECT_TRUE(number_is(inner, "ipv6.plen", 8 + data_payload_size)) << f.ctx;
            }
            EXPECT_TRUE(address_is(inner, v4 ? "ip.src" : "ipv6.src",
                                   v4 ? data_src_v4_text : data_src_v6_text))
                << f.ctx;
            EXPECT_TRUE(address_is(inner, v4 ? "ip.dst" : "ipv6.dst",
                                   v4 ? data_dst_v4_text : data_dst_v6_text))
                << f.ctx;
            const json& udp = sub(f.amt, "udp");
            EXPECT_TRUE(number_is(udp, "udp.srcport", data_src_port)) << f.ctx;
            EXPECT_TRUE(number_is(udp, "udp.dstport", data_dst_port)) << f.ctx;
            EXPECT_TRUE(number_is(udp, "udp.length", 8 + data_payload_size)) << f.ctx;
            EXPECT_EQ(one(udp, "udp.checksum.status"), "1") << f.ctx;
            EXPECT_EQ(one(udp, "udp.payload"), hex_colons(data_payload())) << f.ctx;
        }
    }
}

TEST_F(TsharkJudge, Teardown) {
    for (const Family outer : outers) {
        for (const TeardownCase& t : teardown_cases) {
            const Frame f = frame(t.name, outer);
            EXPECT_EQ(one(f.amt, "amt.type"), "7") << f.ctx;
            EXPECT_EQ(one(f.amt, "amt.reserved"), "00") << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.response_mac", mac_value(t.mac))) << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.request_nonce", t.nonce)) << f.ctx;
            EXPECT_TRUE(number_is(f.amt, "amt.gateway.port_number", t.gateway_port)) << f.ctx;
            EXPECT_TRUE(address_is(f.amt, "amt.gateway.ip_address", t.gateway_field)) << f.ctx;
        }
    }
}

}  // namespace
