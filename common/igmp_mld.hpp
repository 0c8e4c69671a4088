// IGMPv3/v2 and MLDv2/v1 inside AMT: the general queries the relay encapsulates in a Membership
// Query (checklist §1.8) and the reports and leaves it accepts in a Membership Update (§1.5, §4.1).
#pragma once

#include <cstdint>
#include <span>

#include "common/bytes.hpp"
#include "common/enum_names.hpp"
#include "common/ip_address.hpp"
#include "common/parse_error.hpp"

namespace amt {

inline constexpr uint8_t igmp_membership_query = 0x11;
inline constexpr uint8_t igmp_v1_report = 0x12;
inline constexpr uint8_t igmp_v2_report = 0x16;
inline constexpr uint8_t igmp_v2_leave = 0x17;
inline constexpr uint8_t igmp_v3_report = 0x22;
inline constexpr uint8_t mld_query = 130;
inline constexpr uint8_t mld_v1_report = 131;
inline constexpr uint8_t mld_v1_done = 132;
inline constexpr uint8_t mld_v2_report = 143;

inline constexpr size_t igmpv3_general_query_size = 36;  // 24-octet IPv4 header + 12
inline constexpr size_t mldv2_general_query_size = 76;   // 40 + 8-octet Hop-by-Hop + 28

enum class RecordType : uint8_t {
    mode_is_include = 1,
    mode_is_exclude = 2,
    change_to_include = 3,
    change_to_exclude = 4,
    allow_new_sources = 5,
    block_old_sources = 6,
};
inline bool is_known_record_type(uint8_t t) {
    return t >= 1 && t <= 6;
}

// fe80::1, the MLD query source when the relay's port has not given it one of its own.
IpAddress default_query_source_v6();

// Fields of a general query the relay chooses (checklist §2.5, §7).
struct QueryParameters {
    uint8_t robustness = 2;      // QRV, 1-7
    uint8_t qqic = 125;          // seconds; keep <= 127 for VLC and Linux gateways
    uint16_t max_resp_code = 1;  // IGMP: 8 bits in 0.1 s; MLD: 16 bits in ms
    // The MLDv2 query's IPv6 source. Link-local: Linux (and RFC 3810 §5.1.14 hosts) drop MLD
    // queries from any other source, so a query from :: is never answered by a Linux gateway.
    IpAddress source_v6 = default_query_source_v6();
};

// Writes IPv4 (IHL 6, Router Alert, TOS 0xC0, TTL 1, 0.0.0.0 -> 224.0.0.1) + IGMPv3 general query.
size_t build_igmpv3_general_query(MutByteView out, const QueryParameters& q);
// Writes IPv6 (hop limit 1, q.source_v6 -> ff02::1) + Hop-by-Hop(Router Alert, PadN) + MLDv2
// general query.
size_t build_mldv2_general_query(MutByteView out, const QueryParameters& q);

struct GeneralQuery {
    Family family = Family::ipv4;
    uint8_t robustness = 0;
    uint8_t qqic = 0;
    uint16_t max_resp_code = 0;
    size_t datagram_length = 0;
};
// The gateway's side: reads the general query encapsulated in a Membership Query.
ParseError parse_general_query(ByteView datagram, GeneralQuery& out);

// Any query a multicast router sends (the relay's upstream side): general, group-specific or
// group-and-source-specific; IGMPv3/v2 (version 3 or 2) and MLDv2/v1 (version 2 or 1).
struct RouterQuery {
    Family family = Family::ipv4;
    uint8_t version = 0;
    IpAddress group;  // unspecified: general query
    uint16_t max_resp_code = 0;
    uint8_t robustness = 0;
    uint8_t qqic = 0;
    uint16_t num_sources = 0;
    ByteView source_bytes;
    size_t datagram_length = 0;

    IpAddress source(size_t i) const {
        return family == Family::ipv4 ? IpAddress::v4_from_bytes(source_bytes.data() + i * 4)
                                      : IpAddress::v6_from_bytes(source_bytes.data() + i * 16);
    }
};
ParseError parse_router_query(ByteView datagram, RouterQuery& out);

enum class ReportKind : uint8_t {
    igmpv3_report,
    igmpv2_report,
    igmpv2_leave,
    mldv2_report,
    mldv1_report,
    mldv1_done,
};

// One group record of a v3/v2 report. The parser has checked that it lies inside the message.
struct GroupRecord {
    uint8_t type = 0;  // raw: unknown types are the caller's to skip (checklist §4.1)
    IpAddress group;
    uint16_t num_sources = 0;
    ByteView source_bytes;  // num_sources addresses of the group's family

    IpAddress source(size_t i) const {
        const size_t w = group.wire_size();
        return w == 4 ? IpAddress::v4_from_bytes(source_bytes.data() + i * w)
                      : IpAddress::v6_from_bytes(source_bytes.data() + i * w);
    }
};

class RecordIterator {
  public:
    RecordIterator(ByteView rest, size_t remaining, Family f)
        : rest_(rest), remaining_(remaining), family_(f) {}
    // Returns false after the last record.
    bool next(GroupRecord& out);

  private:
    ByteView rest_;
    size_t remaining_;
    Family family_;
};

struct MembershipReport {
    ReportKind kind = ReportKind::igmpv3_report;
    Family family = Family::ipv4;
    IpAddress inner_src;
    IpAddress inner_dst;
    uint8_t hop_limit = 0;       // TTL / hop limit (RFC wants 1; checked loosely, checklist §8.4)
    bool router_alert = false;   // RFC wants it; VLC sends an all-zero option instead
    size_t datagram_length = 0;  // octets of the encapsulated datagram; the rest is ignored
    IpAddress group;             // v2/v1 messages: the group; v3/v2 reports: unused
    uint16_t num_records = 0;    // v3/v2 reports
    ByteView record_bytes;       // v3/v2 reports: the validated records and any trailing octets

    RecordIterator records() const { return RecordIterator(record_bytes, num_records, family); }
    bool is_state_report() const {
        return kind == ReportKind::igmpv3_report || kind == ReportKind::mldv2_report;
    }
};

// Parses and fully validates the datagram of a Membership Update (checklist §2.6 points 1-4):
// inner header rules, lengths, checksums and every record's bounds. Any inner source is accepted.
ParseError parse_membership_report(ByteView datagram, MembershipReport& out);

// What a report's encapsulated IP header should carry but real gateways sometimes do not
// (RFC 3376 §4, RFC 3810 §5): checklist §8.4 accepts these, counts and logs them.
#define AMT_INNER_ANOMALIES(X)                                                               \
    X(missing_router_alert)   /* no IPv4 Router Alert option / no Hop-by-Hop Router Alert */ \
    X(ttl_not_1)              /* TTL / hop limit other than 1 */                             \
    X(unexpected_destination) /* not where RFC 3376 / 3810 send the message (see .cpp) */

enum class InnerAnomaly : uint8_t { AMT_INNER_ANOMALIES(AMT_ENUM_VALUE) count_ };
inline constexpr size_t inner_anomaly_count = static_cast<size_t>(InnerAnomaly::count_);
inline constexpr std::array<std::string_view, inner_anomaly_count> inner_anomaly_names = {
    AMT_INNER_ANOMALIES(AMT_ENUM_STRING)};
inline std::string_view to_string(InnerAnomaly a) {
    return enum_name(inner_anomaly_names, a);
}

// The anomalies of a parsed report: bit i set for InnerAnomaly i.
uint8_t inner_anomalies(const MembershipReport& report);

// Record-content rules (checklist §4.3, §6 item 16) for the caller that applies records.
ParseError check_group_address(const IpAddress& group);
ParseError check_source_address(const IpAddress& source);

// Builds a v3 (IGMP) or v2 (MLD) report, record by record, as gateways send them: inner source
// 0.0.0.0 / :: by default, TTL 1, Router Alert, to 224.0.0.22 / ff02::16.
class ReportBuilder {
  public:
    ReportBuilder(MutByteView out, Family family, const IpAddress& inner_src);
    explicit ReportBuilder(MutByteView out, Family family);
    // Returns false (and leaves the report unchanged) if it would not fit.
    bool add_record(RecordType type, const IpAddress& group, std::span<const IpAddress> sources);
    // Completes lengths and checksums; returns the datagram size (0 after a failed add_record
    // is still a valid report without that record).
    size_t finish();

  private:
    MutByteView out_;
    Family family_;
    IpAddress inner_src_;
    size_t header_size_;  // IP header + options / extension header
    size_t length_;       // octets written so far
    uint16_t records_ = 0;
};

// IGMPv2 report/leave (kind igmpv2_report / igmpv2_leave) and MLDv1 report/done.
size_t build_v1v2_message(MutByteView out, ReportKind kind, const IpAddress& group,
                          const IpAddress& inner_src);

}  // namespace amt
