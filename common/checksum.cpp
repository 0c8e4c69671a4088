#include "common/checksum.hpp"

#include <bit>

namespace amt {

namespace {
// Summing native-order words and swapping once at the end gives the big-endian sum (RFC 1071
// §2(B), byte-order independence); eight octets per step keeps the inner-packet sum cheap.
uint16_t to_native(uint16_t be_value) {
    if constexpr (std::endian::native == std::endian::little) return __builtin_bswap16(be_value);
    return be_value;
}

uint16_t fold64(uint64_t acc) {
    acc = (acc & 0xffffffff) + (acc >> 32);
    acc = (acc & 0xffffffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(acc);
}
}  // namespace

uint32_t checksum_add(ByteView data, uint32_t sum) {
    uint64_t acc = to_native(fold64(sum));
    const uint8_t* p = data.data();
    size_t n = data.size();
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc += (w & 0xffffffff) + (w >> 32);
        p += 8;
        n -= 8;
    }
    while (n >= 2) {
        uint16_t w;
        std::memcpy(&w, p, 2);
        acc += w;
        p += 2;
        n -= 2;
    }
    if (n == 1) {
        uint8_t last[2] = {p[0], 0};  // pad the odd octet with zero on the right
        uint16_t w;
        std::memcpy(&w, last, 2);
        acc += w;
    }
    return to_native(fold64(acc));
}

uint32_t pseudo_header_sum(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                           uint32_t length) {
    uint32_t sum = checksum_add(src.wire());
    sum = checksum_add(dst.wire(), sum);
    return sum + protocol + (length >> 16) + (length & 0xffff);
}

}  // namespace amt
