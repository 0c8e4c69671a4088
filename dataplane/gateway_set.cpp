#include "dataplane/gateway_set.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "common/checksum.hpp"

namespace amt {

TunnelHeader make_tunnel_header(const UdpEndpoint& relay, const UdpEndpoint& gateway,
                                const MacAddress& src_mac, const MacAddress& next_hop_mac,
                                uint8_t ttl, uint16_t pmtu, uint32_t endpoint_id) {
    TunnelHeader t{};
    t.family = relay.ip.family();
    t.pmtu = pmtu;
    t.endpoint_id = endpoint_id;
    const uint16_t ethertype = t.family == Family::ipv4 ? ethertype_ipv4 : ethertype_ipv6;
    size_t off = build_ethernet(t.bytes, next_hop_mac, src_mac, ethertype);
    // Zero payload: lengths, TOS and checksums are patched per packet. DF is always set: an inner
    // IPv4 DF=0 packet that does not fit is fragmented before encapsulation instead (§2.10), and
    // the ID of an atomic datagram carries no meaning (RFC 6864), so it stays 0.
    OuterIpFields fields{
        .tos = 0, .ttl = ttl, .ipv4_id = 0, .dont_fragment = true, .udp_checksum = false};
    const size_t ip_udp = build_ip_udp_headers(MutByteView(t.bytes + off, sizeof(t.bytes) - off),
                                               relay, gateway, 0, 0, fields);
    const size_t ip_size = ip_header_size(t.family);
    uint8_t* ip = t.bytes + off;
    uint8_t* udp = ip + ip_size;
    // Blank what varies per packet so that the sums below cover only the constant part.
    if (t.family == Family::ipv4) {
        store_be16(ip + 2, 0);   // total length
        store_be16(ip + 10, 0);  // header checksum
        t.ip_sum_base = checksum_add(ByteView(ip, ip_size));
    } else {
        store_be16(ip + 4, 0);  // payload length
    }
    store_be16(udp + 4, 0);  // UDP length
    store_be16(udp + 6, 0);  // UDP checksum
    off += ip_udp;
    build_multicast_data_header(MutByteView(t.bytes + off, 2));
    off += data_header_size;
    t.size = static_cast<uint8_t>(off);
    // Pseudo-header without its length, the UDP ports, and the AMT header; lengths added later.
    uint32_t sum = pseudo_header_sum(relay.ip, gateway.ip, ip_proto_udp, 0);
    sum = checksum_add(ByteView(udp, udp_header_size + data_header_size), sum);
    t.udp_sum_base = sum;
    return t;
}

void finish_tunnel_header(const TunnelHeader& t, uint8_t* out, uint16_t inner_length,
                          uint32_t inner_sum, uint8_t tos, bool udp_checksum) {
    std::memcpy(out, t.bytes, t.size);
    uint8_t* ip = out + ethernet_header_size;
    const uint16_t udp_length =
        static_cast<uint16_t>(udp_header_size + data_header_size + inner_length);
    uint8_t* udp;
    if (t.family == Family::ipv4) {
        const uint16_t total = static_cast<uint16_t>(ipv4_header_size + udp_length);
        ip[1] = tos;
        store_be16(ip + 2, total);
        store_be16(ip + 10, checksum_finish(t.ip_sum_base + tos + total));
        udp = ip + ipv4_header_size;
    } else {
        ip[0] = static_cast<uint8_t>(0x60 | (tos >> 4));
        ip[1] = static_cast<uint8_t>((tos << 4) | (ip[1] & 0x0f));
        store_be16(ip + 4, udp_length);
        udp = ip + ipv6_header_size;
        udp_checksum = true;  // RFC 8200 §8.1
    }
    store_be16(udp + 4, udp_length);
    if (udp_checksum) {
        // The length appears twice: in the pseudo-header and in the UDP header.
        const uint32_t sum = t.udp_sum_base + 2u * udp_length + checksum_add({}, inner_sum);
        store_be16(udp + 6, udp_checksum_field(checksum_finish(sum)));
    }
}

GatewaySetPtr GatewaySet::create(std::span<const TunnelHeader> tunnels, uint32_t withheld) {
    const size_t head = (sizeof(GatewaySet) + alignof(TunnelHeader) - 1) / alignof(TunnelHeader) *
                        alignof(TunnelHeader);
    const size_t bytes = (head + tunnels.size() * sizeof(TunnelHeader) + 63) / 64 * 64;
    void* mem = std::aligned_alloc(64, bytes);
    if (mem == nullptr) throw std::bad_alloc();
    auto* set = new (mem) GatewaySet();
    set->count_ = static_cast<uint32_t>(tunnels.size());
    set->withheld_ = withheld;
    for (const TunnelHeader& t : tunnels) {
        set->min_tunnel_mtu_ = std::min(set->min_tunnel_mtu_, t.tunnel_mtu());
    }
    set->tunnels_ = reinterpret_cast<TunnelHeader*>(static_cast<uint8_t*>(mem) + head);
    std::copy(tunnels.begin(), tunnels.end(), set->tunnels_);
    return GatewaySetPtr(set, &GatewaySet::destroy);
}

void GatewaySet::destroy(GatewaySet* set) {
    if (set == nullptr) return;
    set->~GatewaySet();
    std::free(set);
}

}  // namespace amt
