// The relay's saved state (hitless restart): the MAC secrets still in their window and every
// endpoint with its groups, timers and sticky nonce+MAC, so that a new process resumes the old
// one's tunnels. Upstream joins are not stored: they follow from the endpoints (the restored
// MembershipDb emits exactly the joins the old one held).
//
// File layout (little-endian), version 1:
//   header   "AMTSTATE" | u32 version | u32 header size (32) | u64 payload size | u32 CRC-32C of
//            the payload | u32 reserved (0)
//   payload  i64 saved_at (Unix ns) | addresses(relay) | secrets | u32 endpoint count | endpoints
// Times inside are what remained at saved_at; the loader subtracts the file's age.
//
// The decoder trusts nothing: every length is bounded by what is left, every value checked, and a
// file that fails any check is refused whole with the reason (the relay then starts empty).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/group_membership.hpp"
#include "controlplane/response_mac.hpp"

namespace amt {

struct SavedSecrets {
    MacSecret current{};
    MacSecret previous{};
    Time current_age{};         // since the current secret was made (the rotation schedule)
    Time previous_remaining{};  // how long the previous secret is still accepted (0: not)
};

struct SavedEndpoint {
    UdpEndpoint address;  // the gateway as the relay sees it (post-NAT)
    UdpEndpoint relay;    // the relay address it talks to
    uint32_t last_nonce = 0;
    ResponseMac last_mac{};
    Time remaining{};  // until the membership timer expires
    std::vector<GroupMembership> groups;
};

struct RelayState {
    static constexpr uint32_t version = 1;
    int64_t saved_at_unix_ns = 0;
    std::vector<IpAddress> relay_addresses;  // the configuration it belongs to
    SavedSecrets secrets;
    std::vector<SavedEndpoint> endpoints;
};

// Appends the encoding of `state` to `out` (cleared first).
void encode_state(const RelayState& state, std::vector<uint8_t>& out);
// Decodes a whole file. Returns "" on success, else why it was refused (out is then unspecified).
std::string decode_state(ByteView file, RelayState& out);

// Whether a decoded state belongs to this relay now: the same relay addresses, and saved no longer
// than membership_timeout ago (every endpoint would have expired). "" if it fits, else why not.
std::string state_fits(const RelayState& state, const std::vector<IpAddress>& relay_addresses,
                       Seconds membership_timeout, int64_t now_unix_ns);

// CRC-32C (Castagnoli), as iSCSI and ext4 use: detects truncation and bit rot in the file.
uint32_t crc32c(ByteView data, uint32_t crc = 0);

}  // namespace amt
