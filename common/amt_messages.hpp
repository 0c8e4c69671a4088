// The seven AMT messages of RFC 7450 §5.1 with the exact layouts of checklist §1: zero-copy
// parsers into views, builders into a caller's buffer; no allocation, no exceptions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "common/bytes.hpp"
#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "common/parse_error.hpp"

namespace amt {

enum class MessageType : uint8_t {
    relay_discovery = 1,
    relay_advertisement = 2,
    request = 3,
    membership_query = 4,
    membership_update = 5,
    multicast_data = 6,
    teardown = 7,
};

using ResponseMac = std::array<uint8_t, 6>;

inline constexpr size_t discovery_size = 8;
inline constexpr size_t advertisement_size_v4 = 12;
inline constexpr size_t advertisement_size_v6 = 24;
inline constexpr size_t request_size = 8;
inline constexpr size_t query_fixed_size = 12;
inline constexpr size_t update_fixed_size = 12;
inline constexpr size_t data_header_size = 2;
inline constexpr size_t teardown_size = 30;
inline constexpr size_t gateway_fields_size = 18;  // port + 16-octet address (Query with G)

// Octet 1 of a Request: the RFC's P bit, and the bit the Linux kernel uses for it (§1.9).
inline constexpr uint8_t request_p_flag = 0x01;
inline constexpr uint8_t request_p_flag_linux = 0x80;
inline constexpr uint8_t query_l_flag = 0x02;
inline constexpr uint8_t query_g_flag = 0x01;

struct Discovery {
    uint32_t nonce = 0;
};

struct Advertisement {
    uint32_t nonce = 0;
    IpAddress relay;
};

struct Request {
    uint32_t nonce = 0;
    uint8_t flags = 0;  // octet 1 as sent; see wants_mld()
    bool rfc_p() const { return flags & request_p_flag; }
    bool linux_p() const { return flags & request_p_flag_linux; }
};

struct MembershipQuery {
    bool l_flag = false;
    ResponseMac mac{};
    uint32_t nonce = 0;
    ByteView encapsulated;               // the IP datagram with the general query
    std::optional<UdpEndpoint> gateway;  // present iff G is set
};

struct MembershipUpdate {
    ResponseMac mac{};
    uint32_t nonce = 0;
    ByteView encapsulated;  // everything after octet 12; the report parser finds its end
};

struct MulticastData {
    ByteView packet;
};

struct Teardown {
    ResponseMac mac{};
    uint32_t nonce = 0;
    UdpEndpoint gateway;  // the old endpoint, from the Query's gateway fields
};

// Checks octet 0 (empty, version, type 1-7). Any further check is the type's parser's.
ParseError peek_message_type(ByteView msg, MessageType& type);

ParseError parse_discovery(ByteView msg, Discovery& out);          // extra octets ignored
ParseError parse_advertisement(ByteView msg, Advertisement& out);  // exactly 12 or 24
ParseError parse_request(ByteView msg, Request& out);              // extra octets ignored (VLC)
// The encapsulated datagram's length comes from its own IP header; with G the gateway fields
// are the last 18 octets (RFC 7450 §5.1.4.9).
ParseError parse_membership_query(ByteView msg, MembershipQuery& out);
ParseError parse_membership_update(ByteView msg, MembershipUpdate& out);
ParseError parse_multicast_data(ByteView msg, MulticastData& out);
ParseError parse_teardown(ByteView msg, Teardown& out);  // octets after 30 ignored

// Builders return the message size, or 0 if `out` is too small or the fields cannot be encoded.
size_t build_discovery(MutByteView out, const Discovery& m);
size_t build_advertisement(MutByteView out, const Advertisement& m);
size_t build_request(MutByteView out, const Request& m);

struct QueryFields {
    bool l_flag = false;
    ResponseMac mac{};
    uint32_t nonce = 0;
    Family query_family = Family::ipv4;  // IGMPv3 (P=0) or MLDv2 (P=1) general query
    QueryParameters query;
    std::optional<UdpEndpoint> gateway;  // sets G and appends the gateway fields
};
size_t build_membership_query(MutByteView out, const QueryFields& m);
inline size_t membership_query_size(Family query_family, bool with_gateway) {
    return query_fixed_size +
           (query_family == Family::ipv4 ? igmpv3_general_query_size : mldv2_general_query_size) +
           (with_gateway ? gateway_fields_size : 0);
}

size_t build_membership_update(MutByteView out, const ResponseMac& mac, uint32_t nonce,
                               ByteView report_datagram);
// Writes the 2-octet Multicast Data header only (the data path chains the packet after it).
size_t build_multicast_data_header(MutByteView out);
size_t build_multicast_data(MutByteView out, ByteView packet);
size_t build_teardown(MutByteView out, const Teardown& m);

}  // namespace amt
