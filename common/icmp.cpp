#include "common/icmp.hpp"

#include <algorithm>

#include "common/checksum.hpp"
#include "common/packet_headers.hpp"

namespace amt {

namespace {
constexpr size_t icmp_header_size = 8;
constexpr size_t ipv6_minimum_mtu = 1280;
}  // namespace

size_t build_packet_too_big(MutByteView out, const IpAddress& relay, ByteView original,
                            uint16_t mtu) {
    if (original.empty()) return 0;
    const bool v4 = (original[0] >> 4) == 4;
    if (v4 != relay.is_v4() || original.size() < (v4 ? ipv4_header_size : ipv6_header_size)) {
        return 0;
    }
    const IpAddress source = v4 ? IpAddress::v4_from_bytes(original.data() + 12)
                                : IpAddress::v6_from_bytes(original.data() + 8);
    const size_t ip_size = v4 ? ipv4_header_size : ipv6_header_size;
    const size_t quote =
        v4 ? std::min(original.size(), size_t{original[0] & 0x0fu} * 4 + 8)
           : std::min(original.size(), ipv6_minimum_mtu - ipv6_header_size - icmp_header_size);
    const size_t icmp_size = icmp_header_size + quote;
    if (out.size() < ip_size + icmp_size) return 0;

    uint8_t* icmp = out.data() + ip_size;
    std::memset(icmp, 0, icmp_header_size);
    std::memcpy(icmp + icmp_header_size, original.data(), quote);
    if (v4) {
        write_ipv4_header(out, {.total_length = static_cast<uint16_t>(ip_size + icmp_size),
                                .dont_fragment = false,
                                .ttl = 64,
                                .protocol = ip_proto_icmp,
                                .src = relay.v4_value(),
                                .dst = source.v4_value()});
        icmp[0] = 3;  // Destination Unreachable
        icmp[1] = 4;  // Fragmentation Needed and DF set
        store_be16(icmp + 6, mtu);
        store_be16(icmp + 2, checksum_finish(checksum_add(ByteView(icmp, icmp_size))));
    } else {
        write_ipv6_header(out, {.payload_length = static_cast<uint16_t>(icmp_size),
                                .next_header = ip_proto_icmpv6,
                                .hop_limit = 64,
                                .src = relay,
                                .dst = source});
        icmp[0] = 2;  // Packet Too Big
        store_be32(icmp + 4, mtu);
        const uint32_t pseudo =
            pseudo_header_sum(relay, source, ip_proto_icmpv6, static_cast<uint32_t>(icmp_size));
        store_be16(icmp + 2, checksum_finish(checksum_add(ByteView(icmp, icmp_size), pseudo)));
    }
    return ip_size + icmp_size;
}

Ipv4Fragmenter::Ipv4Fragmenter(ByteView packet, uint16_t mtu) {
    if (packet.size() < ipv4_header_size || (packet[0] >> 4) != 4) return;
    header_ = size_t{packet[0] & 0x0fu} * 4;
    const size_t total = load_be16(packet.data() + 2);
    if (header_ < ipv4_header_size || total < header_ || total > packet.size() || mtu <= header_) {
        return;
    }
    packet_ = packet.first(total);
    step_ = (mtu - header_) / 8 * 8;
}

bool Ipv4Fragmenter::next(MutByteView out, size_t& length) {
    const size_t payload = packet_.size() - header_;
    if (step_ == 0 || offset_ >= payload) return false;
    const size_t chunk = std::min(step_, payload - offset_);
    if (out.size() < header_ + chunk) return false;
    std::memcpy(out.data(), packet_.data(), header_);
    std::memcpy(out.data() + header_, packet_.data() + header_ + offset_, chunk);
    const uint16_t original_flags = load_be16(packet_.data() + 6);
    const bool last = offset_ + chunk == payload;
    const bool more = !last || (original_flags & 0x2000);
    const uint16_t frag_offset = static_cast<uint16_t>((original_flags & 0x1fff) + offset_ / 8);
    store_be16(out.data() + 2, static_cast<uint16_t>(header_ + chunk));
    store_be16(out.data() + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | frag_offset));
    store_be16(out.data() + 10, 0);
    store_be16(out.data() + 10, checksum_finish(checksum_add(ByteView(out.data(), header_))));
    offset_ += chunk;
    length = header_ + chunk;
    return true;
}

}  // namespace amt
