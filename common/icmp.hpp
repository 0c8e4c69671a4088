// ICMP the relay originates toward multicast sources (checklist §2.10): IPv4 Destination
// Unreachable / Fragmentation Needed (type 3 code 4) and ICMPv6 Packet Too Big, and the IPv4
// fragmentation a DF=0 packet gets when it does not fit a tunnel.
#pragma once

#include <cstdint>

#include "common/bytes.hpp"
#include "common/ip_address.hpp"

namespace amt {

// Writes an IP datagram from `relay` to the original packet's source telling it that at most
// `mtu` octets fit. It quotes the original header and 8 octets (IPv4), or as much of the packet
// as keeps the ICMPv6 message within 1280 octets (IPv6). Returns the size or 0.
size_t build_packet_too_big(MutByteView out, const IpAddress& relay, ByteView original,
                            uint16_t mtu);

// Cuts an IPv4 datagram into fragments of at most `mtu` octets (RFC 791): every fragment repeats
// the header (options included), carries a multiple of 8 octets but the last, and keeps the
// original's offset and MF. Usage: while (f.next(buf, len)) send(buf, len).
class Ipv4Fragmenter {
  public:
    Ipv4Fragmenter(ByteView packet, uint16_t mtu);
    bool valid() const { return step_ > 0; }
    bool next(MutByteView out, size_t& length);

  private:
    ByteView packet_;
    size_t header_ = 0;
    size_t step_ = 0;    // payload octets per fragment (multiple of 8)
    size_t offset_ = 0;  // payload octets already emitted
};

}  // namespace amt
