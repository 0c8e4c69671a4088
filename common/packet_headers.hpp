// Ethernet, IPv4, IPv6 and UDP: the outer headers of AMT traffic and the headers the relay writes.
#pragma once

#include <array>
#include <cstdint>

#include "common/bytes.hpp"
#include "common/ip_address.hpp"
#include "common/parse_error.hpp"

namespace amt {

inline constexpr uint16_t amt_udp_port = 2268;

inline constexpr size_t ethernet_header_size = 14;
inline constexpr size_t vlan_tag_size = 4;
inline constexpr size_t ipv4_header_size = 20;
inline constexpr size_t ipv6_header_size = 40;
inline constexpr size_t udp_header_size = 8;

inline constexpr uint16_t ethertype_ipv4 = 0x0800;
inline constexpr uint16_t ethertype_arp = 0x0806;
inline constexpr uint16_t ethertype_vlan = 0x8100;
inline constexpr uint16_t ethertype_ipv6 = 0x86dd;

inline constexpr uint8_t ip_proto_hop_by_hop = 0;
inline constexpr uint8_t ip_proto_icmp = 1;
inline constexpr uint8_t ip_proto_igmp = 2;
inline constexpr uint8_t ip_proto_tcp = 6;
inline constexpr uint8_t ip_proto_udp = 17;
inline constexpr uint8_t ip_proto_icmpv6 = 58;
inline constexpr uint8_t ip_proto_pim = 103;

inline size_t ip_header_size(Family f) {
    return f == Family::ipv4 ? ipv4_header_size : ipv6_header_size;
}

using MacAddress = std::array<uint8_t, 6>;

struct EthernetHeader {
    MacAddress dst{};
    MacAddress src{};
    uint16_t ethertype = 0;  // after any 802.1Q tag
    uint16_t vlan_tci = 0;   // 0 when untagged
    size_t size = ethernet_header_size;
};

ParseError parse_ethernet(ByteView frame, EthernetHeader& out);
// Writes an untagged Ethernet header; returns 14, or 0 if `out` is too small.
size_t build_ethernet(MutByteView out, const MacAddress& dst, const MacAddress& src,
                      uint16_t ethertype);

struct Ipv4HeaderFields {
    uint8_t tos = 0;
    uint16_t total_length = 0;
    uint16_t id = 0;
    bool dont_fragment = true;
    uint8_t ttl = 64;
    uint8_t protocol = 0;
    uint32_t src = 0;  // host order
    uint32_t dst = 0;  // host order
    ByteView options;  // a multiple of 4 octets
};
// Writes the header with its checksum; returns 20 + options, or 0 if `out` is too small.
size_t write_ipv4_header(MutByteView out, const Ipv4HeaderFields& f);

struct Ipv6HeaderFields {
    uint8_t traffic_class = 0;
    uint32_t flow_label = 0;
    uint16_t payload_length = 0;
    uint8_t next_header = 0;
    uint8_t hop_limit = 64;
    IpAddress src;
    IpAddress dst;
};
size_t write_ipv6_header(MutByteView out, const Ipv6HeaderFields& f);

// Fields of the outer IP header that the sender chooses.
struct OuterIpFields {
    uint8_t tos = 0;   // IPv4 TOS / IPv6 traffic class (DSCP + ECN)
    uint8_t ttl = 64;  // TTL / hop limit
    uint16_t ipv4_id = 0;
    bool dont_fragment = true;
    bool udp_checksum = true;  // false: send 0 over IPv4 (never over IPv6)
};

inline size_t ip_udp_header_size(Family f) {
    return ip_header_size(f) + udp_header_size;
}

// Writes IP + UDP headers for a payload of `payload_length` octets whose checksum_add() sum is
// `payload_sum`. Returns the header size, or 0 if `out` is too small or the families differ.
size_t build_ip_udp_headers(MutByteView out, const UdpEndpoint& src, const UdpEndpoint& dst,
                            size_t payload_length, uint32_t payload_sum,
                            const OuterIpFields& fields = {});

// Writes a whole IP/UDP datagram around a copy of `payload`; returns its size or 0.
size_t build_udp_datagram(MutByteView out, const UdpEndpoint& src, const UdpEndpoint& dst,
                          ByteView payload, const OuterIpFields& fields = {});

// A UDP datagram as received, outer IP header first.
struct UdpDatagram {
    UdpEndpoint src;
    UdpEndpoint dst;
    uint8_t tos = 0;
    uint8_t ttl = 0;
    uint16_t udp_checksum = 0;
    ByteView payload;
};

// Parses IPv4 (options allowed, no fragments) or IPv6 (no extension headers) + UDP. Verifies the
// IPv4 header checksum and lengths; with `verify_udp_checksum`, rejects a zero or wrong UDP
// checksum (AMT control messages MUST carry a valid one, checklist §1.0). Octets after the IP
// total length (Ethernet padding) are ignored.
ParseError parse_udp_datagram(ByteView ip_packet, UdpDatagram& out, bool verify_udp_checksum);

// Rejects sources the relay must never answer (checklist §6 item 6): unspecified, multicast,
// broadcast, loopback, port 0.
ParseError check_reply_source(const UdpEndpoint& src);

}  // namespace amt
