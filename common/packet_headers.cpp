#include "common/packet_headers.hpp"

#include "common/checksum.hpp"

namespace amt {

ParseError parse_ethernet(ByteView frame, EthernetHeader& out) {
    if (frame.size() < ethernet_header_size) return ParseError::truncated_ip_header;
    std::memcpy(out.dst.data(), frame.data(), 6);
    std::memcpy(out.src.data(), frame.data() + 6, 6);
    out.ethertype = load_be16(frame.data() + 12);
    out.vlan_tci = 0;
    out.size = ethernet_header_size;
    if (out.ethertype == ethertype_vlan) {
        if (frame.size() < ethernet_header_size + vlan_tag_size) {
            return ParseError::truncated_ip_header;
        }
        out.vlan_tci = load_be16(frame.data() + 14);
        out.ethertype = load_be16(frame.data() + 16);
        out.size += vlan_tag_size;
    }
    return ParseError::ok;
}

size_t build_ethernet(MutByteView out, const MacAddress& dst, const MacAddress& src,
                      uint16_t ethertype) {
    if (out.size() < ethernet_header_size) return 0;
    std::memcpy(out.data(), dst.data(), 6);
    std::memcpy(out.data() + 6, src.data(), 6);
    store_be16(out.data() + 12, ethertype);
    return ethernet_header_size;
}

size_t write_ipv4_header(MutByteView out, const Ipv4HeaderFields& f) {
    const size_t size = ipv4_header_size + f.options.size();
    if (out.size() < size || f.options.size() % 4 != 0 || size > 60) return 0;
    uint8_t* p = out.data();
    p[0] = static_cast<uint8_t>(0x40 | (size / 4));
    p[1] = f.tos;
    store_be16(p + 2, f.total_length);
    store_be16(p + 4, f.id);
    store_be16(p + 6, f.dont_fragment ? 0x4000 : 0);
    p[8] = f.ttl;
    p[9] = f.protocol;
    store_be16(p + 10, 0);
    store_be32(p + 12, f.src);
    store_be32(p + 16, f.dst);
    if (!f.options.empty()) std::memcpy(p + ipv4_header_size, f.options.data(), f.options.size());
    store_be16(p + 10, checksum_finish(checksum_add(ByteView(p, size))));
    return size;
}

size_t write_ipv6_header(MutByteView out, const Ipv6HeaderFields& f) {
    if (out.size() < ipv6_header_size || !f.src.is_v6() || !f.dst.is_v6()) return 0;
    uint8_t* p = out.data();
    store_be32(p, (6u << 28) | (uint32_t{f.traffic_class} << 20) | (f.flow_label & 0xfffff));
    store_be16(p + 4, f.payload_length);
    p[6] = f.next_header;
    p[7] = f.hop_limit;
    std::memcpy(p + 8, f.src.wire().data(), 16);
    std::memcpy(p + 24, f.dst.wire().data(), 16);
    return ipv6_header_size;
}

size_t build_ip_udp_headers(MutByteView out, const UdpEndpoint& src, const UdpEndpoint& dst,
                            size_t payload_length, uint32_t payload_sum,
                            const OuterIpFields& fields) {
    const Family family = src.ip.family();
    if (dst.ip.family() != family) return 0;
    const size_t udp_length = udp_header_size + payload_length;
    const size_t ip_size = ip_header_size(family);
    if (out.size() < ip_size + udp_header_size || udp_length > 0xffff ||
        (family == Family::ipv4 && udp_length + ip_size > 0xffff)) {
        return 0;
    }
    if (family == Family::ipv4) {
        write_ipv4_header(out, {.tos = fields.tos,
                                .total_length = static_cast<uint16_t>(ip_size + udp_length),
                                .id = fields.ipv4_id,
                                .dont_fragment = fields.dont_fragment,
                                .ttl = fields.ttl,
                                .protocol = ip_proto_udp,
                                .src = src.ip.v4_value(),
                                .dst = dst.ip.v4_value()});
    } else {
        write_ipv6_header(out, {.traffic_class = fields.tos,
                                .payload_length = static_cast<uint16_t>(udp_length),
                                .next_header = ip_proto_udp,
                                .hop_limit = fields.ttl,
                                .src = src.ip,
                                .dst = dst.ip});
    }
    uint8_t* udp = out.data() + ip_size;
    store_be16(udp, src.port);
    store_be16(udp + 2, dst.port);
    store_be16(udp + 4, static_cast<uint16_t>(udp_length));
    store_be16(udp + 6, 0);
    // IPv6 forbids a zero UDP checksum for ordinary datagrams (RFC 8200 §8.1).
    if (fields.udp_checksum || family == Family::ipv6) {
        uint32_t sum =
            pseudo_header_sum(src.ip, dst.ip, ip_proto_udp, static_cast<uint32_t>(udp_length));
        sum = checksum_add(ByteView(udp, udp_header_size), sum);
        sum = checksum_add({}, sum + payload_sum);
        store_be16(udp + 6, udp_checksum_field(checksum_finish(sum)));
    }
    return ip_size + udp_header_size;
}

size_t build_udp_datagram(MutByteView out, const UdpEndpoint& src, const UdpEndpoint& dst,
                          ByteView payload, const OuterIpFields& fields) {
    const size_t header = ip_udp_header_size(src.ip.family());
    if (out.size() < header + payload.size()) return 0;
    if (!payload.empty()) std::memcpy(out.data() + header, payload.data(), payload.size());
    const size_t written =
        build_ip_udp_headers(out, src, dst, payload.size(), checksum_add(payload), fields);
    return written == 0 ? 0 : written + payload.size();
}

namespace {

ParseError parse_ipv4_outer(ByteView packet, UdpDatagram& out, ByteView& l4) {
    const uint8_t* p = packet.data();
    const size_t ihl = size_t{p[0] & 0x0fu} * 4;
    if (ihl < ipv4_header_size) return ParseError::bad_ipv4_ihl;
    if (packet.size() < ihl) return ParseError::truncated_ip_header;
    const size_t total = load_be16(p + 2);
    if (total < ihl || total > packet.size()) return ParseError::bad_ip_total_length;
    if (!checksum_verifies(checksum_add(packet.first(ihl)))) {
        return ParseError::bad_ipv4_header_checksum;
    }
    if ((load_be16(p + 6) & 0x3fff) != 0) return ParseError::ipv4_fragment;
    if (p[9] != ip_proto_udp) return ParseError::not_udp;
    out.tos = p[1];
    out.ttl = p[8];
    out.src.ip = IpAddress::v4_from_bytes(p + 12);
    out.dst.ip = IpAddress::v4_from_bytes(p + 16);
    l4 = packet.subspan(ihl, total - ihl);
    return ParseError::ok;
}

ParseError parse_ipv6_outer(ByteView packet, UdpDatagram& out, ByteView& l4) {
    if (packet.size() < ipv6_header_size) return ParseError::truncated_ip_header;
    const uint8_t* p = packet.data();
    const size_t payload = load_be16(p + 4);
    if (ipv6_header_size + payload > packet.size()) return ParseError::bad_ip_total_length;
    if (p[6] != ip_proto_udp) return ParseError::not_udp;
    out.tos = static_cast<uint8_t>(load_be16(p) >> 4);
    out.ttl = p[7];
    out.src.ip = IpAddress::v6_from_bytes(p + 8);
    out.dst.ip = IpAddress::v6_from_bytes(p + 24);
    l4 = packet.subspan(ipv6_header_size, payload);
    return ParseError::ok;
}

}  // namespace

ParseError parse_udp_datagram(ByteView packet, UdpDatagram& out, bool verify_udp_checksum) {
    if (packet.empty()) return ParseError::truncated_ip_header;
    ByteView l4;
    const uint8_t version = packet[0] >> 4;
    ParseError e;
    if (version == 4) {
        e = parse_ipv4_outer(packet, out, l4);
    } else if (version == 6) {
        e = parse_ipv6_outer(packet, out, l4);
    } else {
        return ParseError::bad_ip_version;
    }
    if (e != ParseError::ok) return e;
    if (l4.size() < udp_header_size) return ParseError::truncated_udp_header;
    const size_t udp_length = load_be16(l4.data() + 4);
    if (udp_length < udp_header_size || udp_length > l4.size()) return ParseError::bad_udp_length;
    l4 = l4.first(udp_length);
    out.src.port = load_be16(l4.data());
    out.dst.port = load_be16(l4.data() + 2);
    out.udp_checksum = load_be16(l4.data() + 6);
    if (verify_udp_checksum) {
        if (out.udp_checksum == 0) return ParseError::zero_udp_checksum;
        // The pseudo-header length is the UDP length, not the IP payload length.
        const uint32_t pseudo_sum = pseudo_header_sum(out.src.ip, out.dst.ip, ip_proto_udp,
                                                      static_cast<uint32_t>(udp_length));
        if (!checksum_verifies(checksum_add(l4, pseudo_sum))) return ParseError::bad_udp_checksum;
    }
    out.payload = l4.subspan(udp_header_size);
    return ParseError::ok;
}

ParseError check_reply_source(const UdpEndpoint& src) {
    if (src.ip.is_unspecified()) return ParseError::source_unspecified;
    if (src.ip.is_multicast()) return ParseError::source_multicast;
    if (src.ip.is_limited_broadcast()) return ParseError::source_broadcast;
    if (src.ip.is_loopback()) return ParseError::source_loopback;
    if (src.port == 0) return ParseError::source_port_zero;
    return ParseError::ok;
}

}  // namespace amt
