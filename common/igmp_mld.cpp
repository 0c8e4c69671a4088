#include "common/igmp_mld.hpp"

#include "common/checksum.hpp"
#include "common/packet_headers.hpp"

namespace amt {

namespace {

constexpr uint8_t router_alert_v4[4] = {0x94, 0x04, 0x00, 0x00};
// Hop-by-Hop header body after next-header/length: Router Alert (type 5, len 2, value 0), PadN.
constexpr uint8_t hop_by_hop_ra_options[6] = {0x05, 0x02, 0x00, 0x00, 0x01, 0x00};
constexpr size_t hop_by_hop_size = 8;
constexpr uint8_t ipv6_option_pad1 = 0;
constexpr uint8_t ipv6_option_router_alert = 5;
constexpr uint8_t ipv6_option_jumbo = 0xc2;

const IpAddress all_systems_v4 = IpAddress::v4(0xe0000001);     // 224.0.0.1
const IpAddress all_routers_v4 = IpAddress::v4(0xe0000002);     // 224.0.0.2
const IpAddress igmpv3_routers_v4 = IpAddress::v4(0xe0000016);  // 224.0.0.22

IpAddress v6_ff02(uint8_t last) {
    uint8_t raw[16] = {0xff, 0x02};
    raw[15] = last;
    return IpAddress::v6_from_bytes(raw);
}
const IpAddress all_nodes_v6 = v6_ff02(0x01);
const IpAddress all_routers_v6 = v6_ff02(0x02);
const IpAddress mldv2_routers_v6 = v6_ff02(0x16);

IpAddress unspecified(Family f) {
    uint8_t zero[16] = {};
    return f == Family::ipv4 ? IpAddress::v4(0) : IpAddress::v6_from_bytes(zero);
}

uint16_t icmpv6_checksum(const IpAddress& src, const IpAddress& dst, ByteView message) {
    const uint32_t sum =
        pseudo_header_sum(src, dst, ip_proto_icmpv6, static_cast<uint32_t>(message.size()));
    return checksum_finish(checksum_add(message, sum));
}

// Writes the IP header (with Router Alert) of a datagram carrying `l4_size` octets of IGMP or MLD.
size_t write_membership_ip_header(MutByteView out, Family family, const IpAddress& src,
                                  const IpAddress& dst, size_t l4_size) {
    if (family == Family::ipv4) {
        return write_ipv4_header(
            out, {.tos = 0xc0,
                  .total_length = static_cast<uint16_t>(ipv4_header_size + 4 + l4_size),
                  .dont_fragment = false,
                  .ttl = 1,
                  .protocol = ip_proto_igmp,
                  .src = src.v4_value(),
                  .dst = dst.v4_value(),
                  .options = ByteView(router_alert_v4)});
    }
    if (out.size() < ipv6_header_size + hop_by_hop_size) return 0;
    write_ipv6_header(out, {.payload_length = static_cast<uint16_t>(hop_by_hop_size + l4_size),
                            .next_header = ip_proto_hop_by_hop,
                            .hop_limit = 1,
                            .src = src,
                            .dst = dst});
    uint8_t* hbh = out.data() + ipv6_header_size;
    hbh[0] = ip_proto_icmpv6;
    hbh[1] = 0;
    std::memcpy(hbh + 2, hop_by_hop_ra_options, sizeof(hop_by_hop_ra_options));
    return ipv6_header_size + hop_by_hop_size;
}

size_t membership_ip_header_size(Family f) {
    return f == Family::ipv4 ? ipv4_header_size + 4 : ipv6_header_size + hop_by_hop_size;
}

// The checksum field of an IGMP or MLD message sits at octet 2 of it in both protocols.
void fill_membership_checksum(MutByteView datagram, Family f, size_t header_size) {
    uint8_t* msg = datagram.data() + header_size;
    const ByteView body(msg, datagram.size() - header_size);
    store_be16(msg + 2, 0);
    uint16_t c;
    if (f == Family::ipv4) {
        c = checksum_finish(checksum_add(body));
    } else {
        c = icmpv6_checksum(IpAddress::v6_from_bytes(datagram.data() + 8),
                            IpAddress::v6_from_bytes(datagram.data() + 24), body);
    }
    store_be16(msg + 2, c);
}

}  // namespace

namespace {
// QRV is 3 bits; a robustness above 7 is sent as 0 (RFC 3376 §4.1.6, RFC 3810 §5.1.8).
uint8_t qrv_field(uint8_t robustness) {
    return robustness > 7 ? 0 : robustness;
}
}  // namespace

size_t build_igmpv3_general_query(MutByteView out, const QueryParameters& q) {
    // IGMP's Max Resp Code is one octet; larger values need the caller's encoding first.
    if (out.size() < igmpv3_general_query_size || q.max_resp_code > 0xff) return 0;
    const size_t h = write_membership_ip_header(out, Family::ipv4, unspecified(Family::ipv4),
                                                all_systems_v4, 12);
    uint8_t* m = out.data() + h;
    std::memset(m, 0, 12);
    m[0] = igmp_membership_query;
    m[1] = static_cast<uint8_t>(q.max_resp_code);
    m[8] = qrv_field(q.robustness);  // Resv=0, S=0, QRV
    m[9] = q.qqic;
    fill_membership_checksum(out.first(igmpv3_general_query_size), Family::ipv4, h);
    return igmpv3_general_query_size;
}

IpAddress default_query_source_v6() {
    uint8_t ll[16] = {0xfe, 0x80};
    ll[15] = 1;
    return IpAddress::v6_from_bytes(ll);
}

size_t build_mldv2_general_query(MutByteView out, const QueryParameters& q) {
    if (out.size() < mldv2_general_query_size || !q.source_v6.is_v6()) return 0;
    const size_t h = write_membership_ip_header(out, Family::ipv6, q.source_v6, all_nodes_v6, 28);
    uint8_t* m = out.data() + h;
    std::memset(m, 0, 28);
    m[0] = mld_query;
    store_be16(m + 4, q.max_resp_code);
    m[24] = qrv_field(q.robustness);
    m[25] = q.qqic;
    fill_membership_checksum(out.first(mldv2_general_query_size), Family::ipv6, h);
    return mldv2_general_query_size;
}

namespace {

// Validated position of the IGMP/MLD message inside an encapsulated datagram.
struct InnerDatagram {
    ByteView message;  // the IGMP or MLD message, exactly as long as the IP lengths say
    size_t datagram_length = 0;
};

ParseError check_ipv4_options(ByteView options, bool& router_alert) {
    size_t i = 0;
    while (i < options.size()) {
        const uint8_t type = options[i];
        if (type == 0) break;  // End of Option List
        if (type == 1) {       // No Operation
            ++i;
            continue;
        }
        if (i + 1 >= options.size()) return ParseError::inner_bad_option;
        const uint8_t len = options[i + 1];
        if (len < 2 || i + len > options.size()) return ParseError::inner_bad_option;
        if (type == 0x94) {  // Router Alert is 4 octets (RFC 2113); any other length is malformed
            if (len != 4) return ParseError::inner_bad_option;
            router_alert = true;
        }
        i += len;
    }
    return ParseError::ok;
}

ParseError parse_inner_ipv4(ByteView d, MembershipReport& out, InnerDatagram& inner) {
    if (d.size() < ipv4_header_size) return ParseError::inner_truncated;
    const uint8_t* p = d.data();
    const size_t ihl = size_t{p[0] & 0x0fu} * 4;
    if (ihl < ipv4_header_size) return ParseError::inner_bad_ihl;
    if (ihl > d.size()) return ParseError::inner_header_overrun;
    const size_t total = load_be16(p + 2);
    if (total < ihl) return ParseError::inner_total_length_short;
    if (total > d.size()) return ParseError::inner_total_length_overrun;
    if (!checksum_verifies(checksum_add(d.first(ihl))))
        return ParseError::inner_bad_header_checksum;
    if ((load_be16(p + 6) & 0x3fff) != 0) return ParseError::inner_fragment;
    out.router_alert = false;
    if (ParseError e = check_ipv4_options(d.subspan(ipv4_header_size, ihl - ipv4_header_size),
                                          out.router_alert);
        e != ParseError::ok) {
        return e;
    }
    if (p[9] != ip_proto_igmp) return ParseError::inner_not_igmp;
    out.family = Family::ipv4;
    out.hop_limit = p[8];
    out.inner_src = IpAddress::v4_from_bytes(p + 12);
    out.inner_dst = IpAddress::v4_from_bytes(p + 16);
    inner.message = d.subspan(ihl, total - ihl);
    inner.datagram_length = total;
    return ParseError::ok;
}

bool is_ipv6_extension_header(uint8_t nh) {
    switch (nh) {
        case 0:
        case 43:
        case 44:
        case 50:
        case 51:
        case 60:
        case 135:
        case 139:
        case 140:
        case 253:
        case 254:
            return true;
        default:
            return false;
    }
}

// Walks the options of the one Hop-by-Hop header an MLD datagram may carry.
ParseError check_hop_by_hop(ByteView hbh, bool& router_alert) {
    size_t i = 2;
    while (i < hbh.size()) {
        const uint8_t type = hbh[i];
        if (type == ipv6_option_pad1) {
            ++i;
            continue;
        }
        if (i + 1 >= hbh.size() || i + 2 + size_t{hbh[i + 1]} > hbh.size()) {
            return ParseError::inner_extension_overrun;
        }
        if (type == ipv6_option_jumbo) return ParseError::inner_jumbo_option;
        if (type == ipv6_option_router_alert) {  // 2 octets of value (RFC 2711)
            if (hbh[i + 1] != 2) return ParseError::inner_bad_option;
            router_alert = true;
        }
        i += 2 + size_t{hbh[i + 1]};
    }
    return ParseError::ok;
}

ParseError parse_inner_ipv6(ByteView d, MembershipReport& out, InnerDatagram& inner) {
    if (d.size() < ipv6_header_size) return ParseError::inner_truncated;
    const uint8_t* p = d.data();
    const size_t payload = load_be16(p + 4);
    if (ipv6_header_size + payload > d.size()) return ParseError::inner_total_length_overrun;
    // A zero payload length after a Hop-by-Hop header announces a jumbogram (RFC 2675).
    if (payload == 0 && p[6] == ip_proto_hop_by_hop) return ParseError::inner_jumbo_option;
    ByteView rest = d.subspan(ipv6_header_size, payload);
    uint8_t nh = p[6];
    out.router_alert = false;
    if (nh == ip_proto_hop_by_hop) {
        if (rest.size() < hop_by_hop_size) return ParseError::inner_extension_overrun;
        const size_t len = (size_t{rest[1]} + 1) * 8;
        if (len > rest.size()) return ParseError::inner_extension_overrun;
        if (ParseError e = check_hop_by_hop(rest.first(len), out.router_alert);
            e != ParseError::ok) {
            return e;
        }
        nh = rest[0];
        rest = rest.subspan(len);
    } else if (payload == 0) {
        return ParseError::inner_truncated;
    }
    if (is_ipv6_extension_header(nh)) return ParseError::inner_bad_extension_header;
    if (nh != ip_proto_icmpv6) return ParseError::inner_not_icmpv6;
    out.family = Family::ipv6;
    out.hop_limit = p[7];
    out.inner_src = IpAddress::v6_from_bytes(p + 8);
    out.inner_dst = IpAddress::v6_from_bytes(p + 24);
    inner.message = rest;
    inner.datagram_length = ipv6_header_size + payload;
    return ParseError::ok;
}

// Validates the records of a v3/v2 report: every header, source list and aux data in bounds.
ParseError check_records(ByteView records, size_t count, size_t addr_size) {
    size_t off = 0;
    for (size_t i = 0; i < count; ++i) {
        if (records.size() - off < 4 + addr_size) return ParseError::record_header_overrun;
        const size_t aux = size_t{records[off + 1]} * 4;
        const size_t sources = size_t{load_be16(records.data() + off + 2)} * addr_size;
        off += 4 + addr_size;
        if (records.size() - off < sources) return ParseError::record_sources_overrun;
        off += sources;
        if (records.size() - off < aux) return ParseError::record_aux_overrun;
        off += aux;
    }
    return ParseError::ok;
}

ParseError parse_igmp(ByteView m, MembershipReport& out) {
    if (m.size() < 8) return ParseError::igmp_truncated;
    switch (m[0]) {
        case igmp_v3_report:
            out.kind = ReportKind::igmpv3_report;
            break;
        case igmp_v2_report:
            out.kind = ReportKind::igmpv2_report;
            break;
        case igmp_v2_leave:
            out.kind = ReportKind::igmpv2_leave;
            break;
        default:
            return ParseError::igmp_not_report;
    }
    // The checksum covers the whole message, trailing octets included (checklist §4.1).
    if (!checksum_verifies(checksum_add(m))) return ParseError::igmp_bad_checksum;
    if (out.kind != ReportKind::igmpv3_report) {
        out.group = IpAddress::v4_from_bytes(m.data() + 4);
        return ParseError::ok;
    }
    out.num_records = load_be16(m.data() + 6);
    out.record_bytes = m.subspan(8);
    return check_records(out.record_bytes, out.num_records, 4);
}

ParseError parse_mld(ByteView m, MembershipReport& out) {
    if (m.size() < 8) return ParseError::mld_truncated;
    switch (m[0]) {
        case mld_v2_report:
            out.kind = ReportKind::mldv2_report;
            break;
        case mld_v1_report:
            out.kind = ReportKind::mldv1_report;
            break;
        case mld_v1_done:
            out.kind = ReportKind::mldv1_done;
            break;
        default:
            return ParseError::mld_not_report;
    }
    if (out.kind != ReportKind::mldv2_report && m.size() < 24) return ParseError::mld_truncated;
    const uint32_t pseudo = pseudo_header_sum(out.inner_src, out.inner_dst, ip_proto_icmpv6,
                                              static_cast<uint32_t>(m.size()));
    if (!checksum_verifies(checksum_add(m, pseudo))) return ParseError::mld_bad_checksum;
    if (out.kind != ReportKind::mldv2_report) {
        out.group = IpAddress::v6_from_bytes(m.data() + 8);
        return ParseError::ok;
    }
    out.num_records = load_be16(m.data() + 6);
    out.record_bytes = m.subspan(8);
    return check_records(out.record_bytes, out.num_records, 16);
}

}  // namespace

bool RecordIterator::next(GroupRecord& out) {
    if (remaining_ == 0) return false;
    const size_t addr = family_ == Family::ipv4 ? 4 : 16;
    // Bounds were checked by parse_membership_report(); re-checked here so that a hand-made
    // iterator cannot read out of bounds either.
    if (rest_.size() < 4 + addr) {
        remaining_ = 0;
        return false;
    }
    out.type = rest_[0];
    const size_t aux = size_t{rest_[1]} * 4;
    out.num_sources = load_be16(rest_.data() + 2);
    out.group = addr == 4 ? IpAddress::v4_from_bytes(rest_.data() + 4)
                          : IpAddress::v6_from_bytes(rest_.data() + 4);
    const size_t sources = size_t{out.num_sources} * addr;
    if (rest_.size() < 4 + addr + sources + aux) {
        remaining_ = 0;
        return false;
    }
    out.source_bytes = rest_.subspan(4 + addr, sources);
    rest_ = rest_.subspan(4 + addr + sources + aux);
    --remaining_;
    return true;
}

ParseError parse_membership_report(ByteView datagram, MembershipReport& out) {
    out = MembershipReport{};
    if (datagram.empty()) return ParseError::inner_truncated;
    InnerDatagram inner;
    const uint8_t version = datagram[0] >> 4;
    ParseError e;
    if (version == 4) {
        e = parse_inner_ipv4(datagram, out, inner);
    } else if (version == 6) {
        e = parse_inner_ipv6(datagram, out, inner);
    } else {
        return ParseError::inner_bad_version;
    }
    if (e != ParseError::ok) return e;
    out.datagram_length = inner.datagram_length;
    return version == 4 ? parse_igmp(inner.message, out) : parse_mld(inner.message, out);
}

// Destinations: v3 reports to 224.0.0.22 / ff02::16 (RFC 3376 §4.2.14, RFC 3810 §5.2.14);
// v2/v1 reports to the group; leave / done to all-routers (RFC 2236 §3, RFC 2710 §5), or, as
// some hosts do, to the group.
uint8_t inner_anomalies(const MembershipReport& r) {
    const bool v4 = r.family == Family::ipv4;
    bool expected_dst = false;
    switch (r.kind) {
        case ReportKind::igmpv3_report:
        case ReportKind::mldv2_report:
            expected_dst = r.inner_dst == (v4 ? igmpv3_routers_v4 : mldv2_routers_v6);
            break;
        case ReportKind::igmpv2_report:
        case ReportKind::mldv1_report:
            expected_dst = r.inner_dst == r.group;
            break;
        default:
            expected_dst =
                r.inner_dst == (v4 ? all_routers_v4 : all_routers_v6) || r.inner_dst == r.group;
            break;
    }
    const auto bit = [](InnerAnomaly a) { return static_cast<uint8_t>(1u << static_cast<int>(a)); };
    uint8_t out = 0;
    if (!r.router_alert) out |= bit(InnerAnomaly::missing_router_alert);
    if (r.hop_limit != 1) out |= bit(InnerAnomaly::ttl_not_1);
    if (!expected_dst) out |= bit(InnerAnomaly::unexpected_destination);
    return out;
}

ParseError parse_router_query(ByteView d, RouterQuery& out) {
    out = RouterQuery{};
    MembershipReport ip;  // reuses the inner-header checks; only the IP fields are read
    InnerDatagram inner;
    if (d.empty()) return ParseError::inner_truncated;
    const uint8_t version = d[0] >> 4;
    if (version == 4) {
        if (ParseError e = parse_inner_ipv4(d, ip, inner); e != ParseError::ok) return e;
        const ByteView m = inner.message;
        if (m.size() < 8) return ParseError::igmp_truncated;
        if (m[0] != igmp_membership_query) return ParseError::not_general_query;
        if (!checksum_verifies(checksum_add(m))) return ParseError::igmp_bad_checksum;
        out.group = IpAddress::v4_from_bytes(m.data() + 4);
        out.max_resp_code = m[1];
        if (m.size() == 8) {  // IGMPv1/v2 querier (RFC 3376 §7.1)
            out.version = 2;
        } else if (m.size() < 12) {  // neither length: MUST be ignored (RFC 3376 §7.1)
            return ParseError::igmp_truncated;
        } else {
            out.version = 3;
            out.robustness = m[8] & 0x07;
            out.qqic = m[9];
            const size_t n = load_be16(m.data() + 10);
            if (m.size() < 12 + n * 4) return ParseError::record_sources_overrun;
            out.num_sources = static_cast<uint16_t>(n);
            out.source_bytes = m.subspan(12, n * 4);
        }
    } else if (version == 6) {
        if (ParseError e = parse_inner_ipv6(d, ip, inner); e != ParseError::ok) return e;
        const ByteView m = inner.message;
        if (m.size() < 24) return ParseError::mld_truncated;
        if (m[0] != mld_query) return ParseError::not_general_query;
        const uint32_t pseudo = pseudo_header_sum(ip.inner_src, ip.inner_dst, ip_proto_icmpv6,
                                                  static_cast<uint32_t>(m.size()));
        if (!checksum_verifies(checksum_add(m, pseudo))) return ParseError::mld_bad_checksum;
        out.group = IpAddress::v6_from_bytes(m.data() + 8);
        out.max_resp_code = load_be16(m.data() + 4);
        if (m.size() == 24) {  // MLDv1 querier (RFC 3810 §8.1)
            out.version = 1;
        } else if (m.size() < 28) {  // neither length: MUST be ignored (RFC 3810 §8.1)
            return ParseError::mld_truncated;
        } else {
            out.version = 2;
            out.robustness = m[24] & 0x07;
            out.qqic = m[25];
            const size_t n = load_be16(m.data() + 26);
            if (m.size() < 28 + n * 16) return ParseError::record_sources_overrun;
            out.num_sources = static_cast<uint16_t>(n);
            out.source_bytes = m.subspan(28, n * 16);
        }
    } else {
        return ParseError::inner_bad_version;
    }
    out.family = ip.family;
    out.datagram_length = inner.datagram_length;
    return ParseError::ok;
}

ParseError parse_general_query(ByteView d, GeneralQuery& out) {
    RouterQuery q;
    if (ParseError e = parse_router_query(d, q); e != ParseError::ok) return e;
    // The relay's own queries are v3/v2 general queries: no group, no source (RFC 3376 §4.1.9).
    const bool v3 = q.family == Family::ipv4 ? q.version == 3 : q.version == 2;
    if (!v3 || !q.group.is_unspecified() || q.num_sources != 0) {
        return ParseError::not_general_query;
    }
    out.family = q.family;
    out.robustness = q.robustness;
    out.qqic = q.qqic;
    out.max_resp_code = q.max_resp_code;
    out.datagram_length = q.datagram_length;
    return ParseError::ok;
}

ParseError check_group_address(const IpAddress& group) {
    if (!group.is_multicast()) return ParseError::group_not_multicast;
    if (group.is_link_local_multicast()) return ParseError::group_link_local;
    return ParseError::ok;
}

ParseError check_source_address(const IpAddress& source) {
    if (source.is_unspecified() || source.is_multicast() || source.is_limited_broadcast() ||
        source.is_loopback() || source.is_link_local_unicast()) {
        return ParseError::source_not_unicast;
    }
    return ParseError::ok;
}

ReportBuilder::ReportBuilder(MutByteView out, Family family, const IpAddress& inner_src)
    : out_(out),
      family_(family),
      inner_src_(inner_src),
      header_size_(membership_ip_header_size(family)),
      length_(header_size_ + 8) {}

ReportBuilder::ReportBuilder(MutByteView out, Family family)
    : ReportBuilder(out, family, unspecified(family)) {}

bool ReportBuilder::add_record(RecordType type, const IpAddress& group,
                               std::span<const IpAddress> sources) {
    const size_t addr = family_ == Family::ipv4 ? 4 : 16;
    const size_t size = 4 + addr * (1 + sources.size());
    if (group.family() != family_ || sources.size() > 0xffff || records_ == 0xffff ||
        length_ + size > out_.size() || length_ + size > 0xffff) {
        return false;
    }
    uint8_t* r = out_.data() + length_;
    r[0] = static_cast<uint8_t>(type);
    r[1] = 0;
    store_be16(r + 2, static_cast<uint16_t>(sources.size()));
    std::memcpy(r + 4, group.wire().data(), addr);
    for (size_t i = 0; i < sources.size(); ++i) {
        if (sources[i].family() != family_) return false;
        std::memcpy(r + 4 + addr * (1 + i), sources[i].wire().data(), addr);
    }
    length_ += size;
    ++records_;
    return true;
}

size_t ReportBuilder::finish() {
    if (out_.size() < length_) return 0;
    const IpAddress dst = family_ == Family::ipv4 ? igmpv3_routers_v4 : mldv2_routers_v6;
    write_membership_ip_header(out_, family_, inner_src_, dst, length_ - header_size_);
    uint8_t* m = out_.data() + header_size_;
    m[0] = family_ == Family::ipv4 ? igmp_v3_report : mld_v2_report;
    m[1] = 0;
    store_be16(m + 4, 0);
    store_be16(m + 6, records_);
    fill_membership_checksum(out_.first(length_), family_, header_size_);
    return length_;
}

size_t build_v1v2_message(MutByteView out, ReportKind kind, const IpAddress& group,
                          const IpAddress& inner_src) {
    const bool v4 = kind == ReportKind::igmpv2_report || kind == ReportKind::igmpv2_leave;
    const Family family = v4 ? Family::ipv4 : Family::ipv6;
    if (!v4 && kind != ReportKind::mldv1_report && kind != ReportKind::mldv1_done) return 0;
    if (group.family() != family || inner_src.family() != family) return 0;
    const size_t body = v4 ? 8 : 24;
    const size_t h = membership_ip_header_size(family);
    if (out.size() < h + body) return 0;
    const bool leave = kind == ReportKind::igmpv2_leave || kind == ReportKind::mldv1_done;
    const IpAddress dst = leave ? (v4 ? all_routers_v4 : all_routers_v6) : group;
    write_membership_ip_header(out, family, inner_src, dst, body);
    uint8_t* m = out.data() + h;
    std::memset(m, 0, body);
    if (v4) {
        m[0] = leave ? igmp_v2_leave : igmp_v2_report;
        std::memcpy(m + 4, group.wire().data(), 4);
    } else {
        m[0] = leave ? mld_v1_done : mld_v1_report;
        std::memcpy(m + 8, group.wire().data(), 16);
    }
    fill_membership_checksum(out.first(h + body), family, h);
    return h + body;
}

}  // namespace amt
