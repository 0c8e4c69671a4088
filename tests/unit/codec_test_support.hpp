// Helpers shared by the codec tests (test_amt_messages.cpp, test_checksum_headers.cpp,
// test_igmp_mld.cpp). The reference checksum here is the tests' own, written independently of
// common/checksum.hpp, so that the codec's checksums are never checked against themselves.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/ip_address.hpp"
#include "common/parse_error.hpp"

namespace amt {
// Readable ParseError values in failure messages.
inline void PrintTo(ParseError e, std::ostream* os) {
    *os << to_string(e);
}
}  // namespace amt

namespace {

// An owned octet string, what the hand-written vectors and builders' output are compared as.
using Bytes = std::vector<uint8_t>;

// Copies a view into Bytes, so it can be compared with EXPECT_EQ.
inline Bytes vec(amt::ByteView v) {
    return Bytes(v.begin(), v.end());
}

// Parses an address literal; a typo in a test fails that test instead of passing silently.
inline amt::IpAddress ip(std::string_view text) {
    const auto a = amt::IpAddress::parse(text);
    if (!a) ADD_FAILURE() << "bad address in test: " << text;
    return a.value_or(amt::IpAddress{});
}

// Runs a builder on a large zeroed buffer and returns what it wrote.
template <typename Build>
inline Bytes build(Build&& f) {
    std::array<uint8_t, 8192> buf{};
    const size_t n = f(amt::MutByteView(buf));
    return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

// Reference RFC 1071 sum written for the tests (not the codec's): big-endian 16-bit words, an odd
// last octet padded on the right, end-around carries folded at the end. Empty data folds `sum`.
inline uint16_t ref_sum(amt::ByteView data, uint64_t sum = 0) {
    for (size_t i = 0; i < data.size(); i += 2) {
        sum += (uint64_t{data[i]} << 8) | (i + 1 < data.size() ? data[i + 1] : 0u);
    }
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// Reference checksum: the one's complement of ref_sum, the value a checksum field holds.
inline uint16_t ref_checksum(amt::ByteView data, uint64_t sum = 0) {
    return static_cast<uint16_t>(~ref_sum(data, sum));
}

// True when data that contains its own checksum field verifies (the sum is all ones).
inline bool ref_verifies(amt::ByteView data, uint64_t sum = 0) {
    return ref_sum(data, sum) == 0xffff;
}

}  // namespace
