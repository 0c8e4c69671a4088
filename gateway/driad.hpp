// DRIAD (RFC 8777): finding an AMT relay for a source S through the AMTRELAY (type 260) records
// of S's reverse DNS name (checklist §5). The gateway uses it with --driad.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.hpp"
#include "common/ip_address.hpp"

namespace amt {

inline constexpr uint16_t dns_type_amtrelay = 260;

struct AmtRelayRecord {
    uint8_t precedence = 0;            // lower first
    bool discovery_optional = false;   // D bit: 1 → a Request may go straight to the relay
    uint8_t type = 0;                  // 0 none, 1 IPv4, 2 IPv6, 3 domain name
    std::optional<IpAddress> address;  // types 1 and 2
    std::string name;                  // type 3, dotted, no trailing dot
};

// "7.100.51.198.in-addr.arpa" / nibbles under ip6.arpa: the ordinary reverse name (no "amt."
// label).
std::string reverse_dns_name(const IpAddress& source);
// One AMTRELAY RDATA; nullopt if it is malformed (the type 3 name must not be compressed).
std::optional<AmtRelayRecord> parse_amtrelay_rdata(ByteView rdata);
// The AMTRELAY records of a DNS answer message for `name` (CNAMEs are followed by the resolver).
std::vector<AmtRelayRecord> parse_amtrelay_answer(ByteView message);
// Queries the system resolver; records sorted by precedence. Empty when there are none.
std::vector<AmtRelayRecord> lookup_amtrelay(const IpAddress& source);

}  // namespace amt
