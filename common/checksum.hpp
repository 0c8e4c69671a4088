// Internet checksum (RFC 1071) with chainable partial sums, pseudo-headers for UDP/ICMPv6 over
// IPv4 and IPv6, and incremental updates (RFC 1624) for the data path.
#pragma once

#include <cstdint>

#include "common/bytes.hpp"
#include "common/ip_address.hpp"

namespace amt {

// One's-complement sum of `data` added to `sum`, folded to 16 bits (not complemented).
// Pieces may be chained; every piece but the last must have an even length.
uint32_t checksum_add(ByteView data, uint32_t sum = 0);

// Folds a partial sum and complements it: the value to write into a checksum field.
inline uint16_t checksum_finish(uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffff);
}

// True when a sum taken over data that includes its checksum field verifies.
inline bool checksum_verifies(uint32_t sum) {
    return checksum_finish(sum) == 0;
}

// Sum of the IPv4 or IPv6 pseudo-header (RFC 768, RFC 8200 §8.1). Both addresses must be of the
// same family; `length` is the upper-layer length.
uint32_t pseudo_header_sum(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                           uint32_t length);

// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed.
inline uint16_t checksum_update16(uint16_t old_checksum, uint16_t old_word, uint16_t new_word) {
    uint32_t sum = uint32_t{static_cast<uint16_t>(~old_checksum)} +
                   uint32_t{static_cast<uint16_t>(~old_word)} + new_word;
    return checksum_finish(sum);
}

inline uint16_t checksum_update32(uint16_t old_checksum, uint32_t old_value, uint32_t new_value) {
    uint16_t c = checksum_update16(old_checksum, static_cast<uint16_t>(old_value >> 16),
                                   static_cast<uint16_t>(new_value >> 16));
    return checksum_update16(c, static_cast<uint16_t>(old_value), static_cast<uint16_t>(new_value));
}

// A UDP checksum of 0 means "none" (RFC 768); a computed 0 is sent as 0xffff.
inline uint16_t udp_checksum_field(uint16_t computed) {
    return computed == 0 ? 0xffff : computed;
}

}  // namespace amt
