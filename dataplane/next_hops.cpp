#include "dataplane/next_hops.hpp"

#include "common/checksum.hpp"

namespace amt {

namespace {
uint64_t pack(const MacAddress& m) {
    uint64_t v = 0;
    for (uint8_t b : m)
        v = (v << 8) | b;
    return v;
}
MacAddress unpack(uint64_t v) {
    MacAddress m;
    for (int i = 5; i >= 0; --i) {
        m[static_cast<size_t>(i)] = static_cast<uint8_t>(v);
        v >>= 8;
    }
    return m;
}
}  // namespace

void NextHop::configure(std::optional<IpAddress> ip, std::optional<MacAddress> static_mac) {
    ip_ = ip;
    static_ = static_mac.has_value();
    mac_.store(static_mac ? pack(*static_mac) | valid_bit : 0, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
}

std::optional<MacAddress> NextHop::mac() const {
    const uint64_t v = mac_.load(std::memory_order_acquire);
    if (!(v & valid_bit)) return std::nullopt;
    return unpack(v & ~valid_bit);
}

void NextHop::learn(const MacAddress& mac) {
    if (static_) return;
    const uint64_t v = pack(mac) | valid_bit;
    if (mac_.exchange(v, std::memory_order_acq_rel) != v) {
        generation_.fetch_add(1, std::memory_order_acq_rel);
    }
}

size_t build_arp_frame(MutByteView out, uint16_t op, const MacAddress& sender_mac,
                       const IpAddress& sender_ip, const MacAddress& target_mac,
                       const IpAddress& target_ip) {
    constexpr size_t size = ethernet_header_size + 28;
    if (out.size() < size || !sender_ip.is_v4() || !target_ip.is_v4()) return 0;
    const bool request = op == 1;
    const MacAddress broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    build_ethernet(out, request ? broadcast : target_mac, sender_mac, ethertype_arp);
    uint8_t* a = out.data() + ethernet_header_size;
    store_be16(a, 1);  // Ethernet
    store_be16(a + 2, ethertype_ipv4);
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, op);
    std::memcpy(a + 8, sender_mac.data(), 6);
    std::memcpy(a + 14, sender_ip.wire().data(), 4);
    if (request) {
        std::memset(a + 18, 0, 6);
    } else {
        std::memcpy(a + 18, target_mac.data(), 6);
    }
    std::memcpy(a + 24, target_ip.wire().data(), 4);
    return size;
}

size_t build_arp_request(MutByteView out, const MacAddress& own_mac, const IpAddress& own_ip,
                         const IpAddress& target, const std::optional<MacAddress>& unicast) {
    const size_t n = build_arp_frame(out, 1, own_mac, own_ip, {}, target);
    if (n != 0 && unicast) std::memcpy(out.data(), unicast->data(), 6);  // target MAC stays zero
    return n;
}

size_t build_neighbor_solicitation(MutByteView out, const MacAddress& own_mac,
                                   const IpAddress& own_ip, const IpAddress& target,
                                   const std::optional<MacAddress>& unicast) {
    constexpr size_t ns_size = 32;  // NS (24) + Source Link-Layer Address option (8)
    constexpr size_t size = ethernet_header_size + ipv6_header_size + ns_size;
    if (out.size() < size || !own_ip.is_v6() || !target.is_v6()) return 0;
    const auto& t = target.canonical16();
    uint8_t group[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]};
    const IpAddress solicited = unicast ? target : IpAddress::v6_from_bytes(group);
    build_ethernet(out, unicast ? *unicast : MacAddress{0x33, 0x33, 0xff, t[13], t[14], t[15]},
                   own_mac, ethertype_ipv6);
    write_ipv6_header(out.subspan(ethernet_header_size), {.payload_length = ns_size,
                                                          .next_header = ip_proto_icmpv6,
                                                          .hop_limit = 255,
                                                          .src = own_ip,
                                                          .dst = solicited});
    uint8_t* ns = out.data() + ethernet_header_size + ipv6_header_size;
    std::memset(ns, 0, ns_size);
    ns[0] = 135;
    std::memcpy(ns + 8, t.data(), 16);
    ns[24] = 1;  // Source Link-Layer Address
    ns[25] = 1;
    std::memcpy(ns + 26, own_mac.data(), 6);
    const uint32_t pseudo = pseudo_header_sum(own_ip, solicited, ip_proto_icmpv6, ns_size);
    store_be16(ns + 2, checksum_finish(checksum_add(ByteView(ns, ns_size), pseudo)));
    return size;
}

}  // namespace amt
