// What the protocol engine needs to know of the relay's configuration. The daemon fills it from
// its TOML file and flags; defaults follow checklist §7 and §8.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "controlplane/response_mac.hpp"

namespace amt {

using Time = std::chrono::nanoseconds;  // monotonic, from an arbitrary epoch
using Seconds = std::chrono::seconds;

struct RelayLimits {
    uint32_t max_endpoints = 1'000'000;
    // Generous: many gateways share one address behind carrier-grade NAT (checklist §2.11).
    uint32_t max_endpoints_per_source_ip = 4096;
    uint32_t max_groups_per_endpoint = 64;
    uint32_t max_sources_per_group = 64;
    // Flow budgets: forwarding entries one endpoint, and all endpoints of one address together,
    // may hold (each distinct flow counted once per address). The daemon derives them from
    // dataplane.flow_table_size when the file does not set them: a 16th and a 64th of the table
    // (these are the values for the default 65536), so that no single address can fill it.
    uint32_t max_flows_per_endpoint = 1024;
    uint32_t max_flows_per_source_ip = 4096;
    // Token bucket per source IP for Advertisements and Queries (reflection, checklist §2.11).
    double replies_per_second_per_source_ip = 200;
    double reply_burst_per_source_ip = 400;
    // Global bucket over all addresses, after the per-address one (spoofed floods, issue 18).
    double replies_per_second = 50'000;
    double reply_burst = 100'000;
    // Share of reply_burst kept for addresses that hold an endpoint (established gateways).
    double reply_reserve_percent = 10;
};

struct EngineConfig {
    // Unicast addresses of the relay: advertised, and the only destinations of Request/Update.
    std::vector<IpAddress> relay_addresses;
    // Extra addresses that answer Discovery (anycast); the relay addresses answer it too.
    std::vector<IpAddress> discovery_addresses = {*IpAddress::parse("192.52.193.1"),
                                                  *IpAddress::parse("2001:3::1")};
    Seconds query_interval{125};      // advertised as QQIC; at most 127 for VLC and Linux
    uint8_t robustness = 2;           // QRV
    uint16_t max_response_code = 1;   // checklist §2.5: answer at once
    Seconds membership_timeout{270};  // per endpoint; must exceed query_interval
    Seconds secret_rotation{3600};    // at most 2 h (RFC 7450 §5.3.6)
    MacAlgorithm mac_algorithm = MacAlgorithm::aes_cmac_128;
    bool teardown = false;            // G flag + type 7 (off: breaks VLC and Linux gateways)
    bool asm_enabled = true;          // (*,G) joins outside the SSM ranges
    bool sticky_mac = true;           // an endpoint may repeat its last accepted nonce+MAC (VLC)
    bool accept_linux_p_flag = true;  // octet-1 bit 0x80 means P as well (Linux kernel)
    bool cisco_mac_compat = false;    // accept a match on the first 4 MAC octets (IOS-XE)
    RelayLimits limits;
    // Source of the encapsulated MLDv2 Query: must be link-local (Linux gateways drop others).
    // The dataplane sets it to its upstream MLD report source (derived from the port's MAC).
    IpAddress query_source_v6 = default_query_source_v6();

    QueryParameters query_parameters() const {
        return {robustness, static_cast<uint8_t>(query_interval.count()), max_response_code,
                query_source_v6};
    }
    // How long the previous secret stays valid after a rotation (RFC 7450 §5.3.3.4).
    Seconds previous_secret_window() const { return 2 * query_interval; }
};

// Empty when the configuration is usable; otherwise one message naming the key and what is
// allowed, e.g. "query_interval = 200: must be 1..127 seconds (QQIC is read raw by gateways)".
std::string validate(const EngineConfig& c);

}  // namespace amt
