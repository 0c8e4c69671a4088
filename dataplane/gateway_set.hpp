// The immutable per-flow list of tunnels the workers replicate to: one precomputed outer header
// (Ethernet + IPv4/IPv6 + UDP + the 2-octet AMT Data header) per gateway, plus the partial
// checksums that let a worker finish each header with a few additions (no per-replica sum over
// the packet). Built by the control thread, read by workers under RCU, freed after a grace period.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"

namespace amt {

inline constexpr size_t max_outer_header_size =
    ethernet_header_size + ipv6_header_size + udp_header_size + data_header_size;  // 64

struct TunnelHeader {
    // Template with zero lengths, TOS and checksums; length fields are patched per packet.
    uint8_t bytes[max_outer_header_size];
    uint8_t size;  // 44 (IPv4 outer) or 64 (IPv6 outer)
    Family family;
    uint16_t pmtu;          // path MTU toward this gateway
    uint32_t ip_sum_base;   // IPv4: sum of the header template (TOS, length, checksum zero)
    uint32_t udp_sum_base;  // pseudo-header + UDP header + AMT header, lengths zero
    uint32_t endpoint_id;   // the engine's EndpointId (for counters and removal)

    // The gateway's address (control thread: where the header's destination MAC comes from).
    IpAddress destination() const {
        const uint8_t* ip = bytes + ethernet_header_size;
        return family == Family::ipv4 ? IpAddress::v4_from_bytes(ip + 16)
                                      : IpAddress::v6_from_bytes(ip + 24);
    }
    // A header whose next hop is not resolved yet carries the zero MAC: it is never published.
    bool resolved() const {
        return std::any_of(bytes, bytes + 6, [](uint8_t b) { return b != 0; });
    }

    // Where the encapsulated packet may be at most this long (TMTU, checklist §2.10).
    uint16_t tunnel_mtu() const {
        const size_t overhead = size - ethernet_header_size;
        return static_cast<uint16_t>(pmtu > overhead ? pmtu - overhead : 0);
    }
};

// Builds the template for one tunnel: Data from `relay` to `gateway`, sent from `src_mac` to
// `next_hop_mac` with outer TTL/hop limit `ttl`.
TunnelHeader make_tunnel_header(const UdpEndpoint& relay, const UdpEndpoint& gateway,
                                const MacAddress& src_mac, const MacAddress& next_hop_mac,
                                uint8_t ttl, uint16_t pmtu, uint32_t endpoint_id);

// Writes the final outer header for an inner packet of `inner_length` octets with one's-complement
// sum `inner_sum` and traffic class `tos` into `out` (size() octets). `udp_checksum` false sends
// zero over IPv4 (never over IPv6).
void finish_tunnel_header(const TunnelHeader& t, uint8_t* out, uint16_t inner_length,
                          uint32_t inner_sum, uint8_t tos, bool udp_checksum);

class GatewaySet {
  public:
    // `withheld`: the flow's tunnels left out because their next hop is unresolved (the workers
    // count their replicas as neighbor_unresolved).
    static std::unique_ptr<GatewaySet, void (*)(GatewaySet*)> create(
        std::span<const TunnelHeader> tunnels, uint32_t withheld = 0);
    static void destroy(GatewaySet* set);

    uint32_t size() const { return count_; }
    uint32_t withheld() const { return withheld_; }
    // The smallest tunnel MTU of the set: a packet up to this long fits every tunnel.
    uint16_t min_tunnel_mtu() const { return min_tunnel_mtu_; }
    const TunnelHeader* begin() const { return tunnels_; }
    const TunnelHeader* end() const { return tunnels_ + count_; }
    const TunnelHeader& operator[](size_t i) const { return tunnels_[i]; }

  private:
    GatewaySet() = default;
    uint32_t count_ = 0;
    uint32_t withheld_ = 0;
    uint16_t min_tunnel_mtu_ = 0xffff;
    TunnelHeader* tunnels_ = nullptr;
};

using GatewaySetPtr = std::unique_ptr<GatewaySet, void (*)(GatewaySet*)>;

}  // namespace amt
