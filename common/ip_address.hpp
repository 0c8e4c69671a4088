// An IPv4 or IPv6 address as a value type. IPv4 lives in the last four octets, so the 16-octet
// form of an IPv4 address is the IPv4-compatible ::a.b.c.d that AMT puts in its Gateway IP field
// and its MAC input (checklist §1.4, §2.4).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.hpp"

namespace amt {

enum class Family : uint8_t { ipv4 = 4, ipv6 = 6 };

class IpAddress {
  public:
    constexpr IpAddress() = default;

    static IpAddress v4(uint32_t host_order) {
        IpAddress a;
        a.family_ = Family::ipv4;
        store_be32(a.bytes_.data() + 12, host_order);
        return a;
    }
    static IpAddress v4_from_bytes(const uint8_t* p) {
        IpAddress a;
        a.family_ = Family::ipv4;
        std::memcpy(a.bytes_.data() + 12, p, 4);
        return a;
    }
    static IpAddress v6_from_bytes(const uint8_t* p) {
        IpAddress a;
        a.family_ = Family::ipv6;
        std::memcpy(a.bytes_.data(), p, 16);
        return a;
    }
    // Reads an AMT Gateway IP field: IPv4-compatible (::a.b.c.d) and, leniently, IPv4-mapped
    // (::ffff:a.b.c.d) are IPv4 (checklist §2.9); anything else is IPv6. :: stays IPv6 unspecified.
    static IpAddress from_gateway_field(const uint8_t* p);
    // Text form ("192.0.2.1", "2001:db8::1"); nullopt if it is neither.
    static std::optional<IpAddress> parse(std::string_view text);

    Family family() const { return family_; }
    bool is_v4() const { return family_ == Family::ipv4; }
    bool is_v6() const { return family_ == Family::ipv6; }
    // Host-order IPv4 value; only meaningful for IPv4.
    uint32_t v4_value() const { return load_be32(bytes_.data() + 12); }
    // The address in network order: 4 octets for IPv4, 16 for IPv6.
    ByteView wire() const { return is_v4() ? ByteView(bytes_).subspan(12, 4) : ByteView(bytes_); }
    // The 16-octet canonical form (IPv4-compatible for IPv4): the AMT Gateway IP field and MAC
    // input.
    const std::array<uint8_t, 16>& canonical16() const { return bytes_; }
    size_t wire_size() const { return is_v4() ? 4 : 16; }

    bool is_unspecified() const;
    bool is_multicast() const;
    bool is_loopback() const;
    bool is_limited_broadcast() const;
    // Multicast that must never be joined or forwarded: 224.0.0.0/24 and scopes ff0X with X <= 2.
    bool is_link_local_multicast() const;
    // SSM ranges (checklist §4.3): 232.0.0.0/8 and ff3x::/32.
    bool is_ssm() const;
    bool is_link_local_unicast() const;

    std::string to_string() const;

    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

  private:
    Family family_ = Family::ipv4;
    std::array<uint8_t, 16> bytes_{};
};

// ADDRESS/LENGTH: a range of addresses of one family, e.g. the sources a relay accepts.
struct IpPrefix {
    IpAddress address;  // host bits zero
    uint8_t length = 0;

    // "198.51.100.0/24", "2001:db8::/32"; a bare address is a /32 or /128. nullopt when
    // malformed or when host bits are set (a typo more often than a wish).
    static std::optional<IpPrefix> parse(std::string_view text);
    bool contains(const IpAddress& a) const;
    std::string to_string() const;
};

struct UdpEndpoint {
    IpAddress ip;
    uint16_t port = 0;
    friend auto operator<=>(const UdpEndpoint&, const UdpEndpoint&) = default;
    std::string to_string() const;
};

}  // namespace amt

template <>
struct std::hash<amt::IpAddress> {
    size_t operator()(const amt::IpAddress& a) const noexcept {
        // FNV-1a over the canonical octets; the family is implied by them for every address
        // the relay keys on (an IPv4 address is never also an IPv4-compatible IPv6 one).
        uint64_t h = 1469598103934665603ull;
        for (uint8_t b : a.canonical16())
            h = (h ^ b) * 1099511628211ull;
        return static_cast<size_t>(h);
    }
};

template <>
struct std::hash<amt::UdpEndpoint> {
    size_t operator()(const amt::UdpEndpoint& e) const noexcept {
        return std::hash<amt::IpAddress>{}(e.ip) * 31 + e.port;
    }
};
