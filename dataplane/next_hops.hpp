// The downstream next hop of each family: where replicas and replies go at layer 2. Configured
// by IP (resolved with ARP / Neighbor Discovery and kept fresh) or given a static MAC. Workers
// learn the MAC from the next hop's ARP and ND packets; the control thread sends the requests
// and, when a MAC changes, rebuilds the tunnel headers that carry it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"

namespace amt {

class NextHop {
  public:
    void configure(std::optional<IpAddress> ip, std::optional<MacAddress> static_mac);
    const std::optional<IpAddress>& ip() const { return ip_; }
    bool is_static() const { return static_; }
    std::optional<MacAddress> mac() const;
    // Any thread: the next hop's MAC as seen on the wire. Ignored for a static next hop.
    void learn(const MacAddress& mac);
    // Bumped on every change of the MAC, so that the control thread notices.
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  private:
    static constexpr uint64_t valid_bit = uint64_t{1} << 63;
    std::optional<IpAddress> ip_;
    bool static_ = false;
    std::atomic<uint64_t> mac_{0};  // 48-bit MAC | valid_bit
    std::atomic<uint64_t> generation_{0};
};

struct NextHops {
    NextHop v4;
    NextHop v6;
    NextHop& of(Family f) { return f == Family::ipv4 ? v4 : v6; }
    const NextHop& of(Family f) const { return f == Family::ipv4 ? v4 : v6; }
};

// An Ethernet + ARP frame (RFC 826): op 1 request (to broadcast, target MAC zero), op 2 reply.
size_t build_arp_frame(MutByteView out, uint16_t op, const MacAddress& sender_mac,
                       const IpAddress& sender_ip, const MacAddress& target_mac,
                       const IpAddress& target_ip);

// Frames the control thread sends to resolve a next hop or an on-link gateway: an ARP request
// (broadcast), or an ICMPv6 Neighbor Solicitation to the solicited-node group. With `unicast`
// (a PROBE of a cached entry, RFC 4861 §7.3.3) they go to that MAC and, for ND, to the target
// address itself. Return the frame size or 0.
size_t build_arp_request(MutByteView out, const MacAddress& own_mac, const IpAddress& own_ip,
                         const IpAddress& target,
                         const std::optional<MacAddress>& unicast = std::nullopt);
size_t build_neighbor_solicitation(MutByteView out, const MacAddress& own_mac,
                                   const IpAddress& own_ip, const IpAddress& target,
                                   const std::optional<MacAddress>& unicast = std::nullopt);

}  // namespace amt
