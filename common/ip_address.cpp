#include "common/ip_address.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace amt {

namespace {
bool all_zero(const uint8_t* p, size_t n) {
    return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}
}  // namespace

IpAddress IpAddress::from_gateway_field(const uint8_t* p) {
    const bool compatible = all_zero(p, 12) && !all_zero(p + 12, 4);
    const bool mapped = all_zero(p, 10) && p[10] == 0xff && p[11] == 0xff;
    return (compatible || mapped) ? v4_from_bytes(p + 12) : v6_from_bytes(p);
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.size() >= sizeof(buf) || text.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    std::copy(text.begin(), text.end(), buf);
    buf[text.size()] = '\0';
    uint8_t raw[16];
    if (inet_pton(AF_INET, buf, raw) == 1) return v4_from_bytes(raw);
    if (inet_pton(AF_INET6, buf, raw) == 1) return v6_from_bytes(raw);
    return std::nullopt;
}

bool IpAddress::is_unspecified() const {
    return is_v4() ? v4_value() == 0 : all_zero(bytes_.data(), 16);
}

bool IpAddress::is_multicast() const {
    return is_v4() ? (v4_value() >> 28) == 0xe : bytes_[0] == 0xff;
}

bool IpAddress::is_loopback() const {
    if (is_v4()) return (v4_value() >> 24) == 127;
    return all_zero(bytes_.data(), 15) && bytes_[15] == 1;
}

bool IpAddress::is_limited_broadcast() const {
    return is_v4() && v4_value() == 0xffffffffu;
}

bool IpAddress::is_link_local_multicast() const {
    if (is_v4()) return (v4_value() >> 8) == 0xe00000;    // 224.0.0.0/24
    return bytes_[0] == 0xff && (bytes_[1] & 0x0f) <= 2;  // interface-local, link-local, reserved 0
}

bool IpAddress::is_ssm() const {
    if (is_v4()) return (v4_value() >> 24) == 232;
    return bytes_[0] == 0xff && (bytes_[1] & 0xf0) == 0x30 && bytes_[2] == 0 && bytes_[3] == 0;
}

bool IpAddress::is_link_local_unicast() const {
    if (is_v4()) return (v4_value() >> 16) == 0xa9fe;  // 169.254/16
    return bytes_[0] == 0xfe && (bytes_[1] & 0xc0) == 0x80;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
    const size_t slash = text.find('/');
    const auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return std::nullopt;
    const unsigned max = address->is_v4() ? 32 : 128;
    unsigned length = max;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3) return std::nullopt;
        length = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            length = length * 10 + static_cast<unsigned>(c - '0');
        }
        if (length > max) return std::nullopt;
    }
    const IpPrefix p{*address, static_cast<uint8_t>(length)};
    // Host bits set: the network address masked to the length must be the address itself.
    const ByteView wire = address->wire();
    for (size_t bit = length; bit < wire.size() * 8; ++bit) {
        if ((wire[bit / 8] >> (7 - bit % 8)) & 1u) return std::nullopt;
    }
    return p;
}

bool IpPrefix::contains(const IpAddress& a) const {
    if (a.family() != address.family()) return false;
    const ByteView x = a.wire();
    const ByteView y = address.wire();
    const size_t whole = length / 8;
    if (std::memcmp(x.data(), y.data(), whole) != 0) return false;
    const unsigned rest = length % 8;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xffu << (8 - rest));
    return (x[whole] & mask) == (y[whole] & mask);
}

std::string IpPrefix::to_string() const {
    return address.to_string() + "/" + std::to_string(length);
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (is_v4()) {
        inet_ntop(AF_INET, bytes_.data() + 12, buf, sizeof(buf));
    } else {
        inet_ntop(AF_INET6, bytes_.data(), buf, sizeof(buf));
    }
    return buf;
}

std::string UdpEndpoint::to_string() const {
    return ip.is_v4() ? ip.to_string() + ":" + std::to_string(port)
                      : "[" + ip.to_string() + "]:" + std::to_string(port);
}

}  // namespace amt
