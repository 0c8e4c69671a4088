#include "controlplane/engine_config.hpp"

#include <string>

namespace amt {

namespace {
std::string key_error(const std::string& key, long long value, const std::string& allowed) {
    return key + " = " + std::to_string(value) + ": " + allowed;
}
}  // namespace

std::string validate(const EngineConfig& c) {
    if (c.relay_addresses.empty()) {
        return "relay_addresses is empty: give at least one unicast IPv4 or IPv6 address";
    }
    for (const IpAddress& a : c.relay_addresses) {
        if (a.is_unspecified() || a.is_multicast() || a.is_loopback()) {
            return "relay_addresses contains " + a.to_string() + ": must be a unicast address";
        }
    }
    const auto qi = c.query_interval.count();
    if (qi < 1 || qi > 127) {
        return key_error("query_interval", qi,
                         "must be 1..127 seconds (QQIC is read raw by VLC and Linux gateways)");
    }
    if (c.robustness < 1 || c.robustness > 7) {
        return key_error("robustness", c.robustness, "must be 1..7 (RFC 3376 QRV; 2 is usual)");
    }
    if (c.max_response_code > 255) {
        return key_error("max_response_code", c.max_response_code,
                         "must be 0..255 (the IGMPv3 field is one octet; 1 = answer at once)");
    }
    if (c.membership_timeout <= c.query_interval) {
        return key_error("membership_timeout", c.membership_timeout.count(),
                         "must exceed query_interval (RFC 7450 §5.3.3.7); default 270");
    }
    const auto rot = c.secret_rotation.count();
    if (rot < 60 || rot > 7200) {
        return key_error("secret_rotation", rot,
                         "must be 60..7200 seconds (RFC 7450 §5.3.6: at most 2 h)");
    }
    if (c.limits.max_endpoints < 1) return key_error("limits.max_endpoints", 0, "must be >= 1");
    if (c.limits.max_endpoints_per_source_ip < 1) {
        return key_error("limits.max_endpoints_per_source_ip", 0, "must be >= 1");
    }
    if (c.limits.max_groups_per_endpoint < 1) {
        return key_error("limits.max_groups_per_endpoint", 0, "must be >= 1");
    }
    if (c.limits.max_sources_per_group < 1) {
        return key_error("limits.max_sources_per_group", 0, "must be >= 1");
    }
    if (c.limits.max_flows_per_endpoint < 1) {
        return key_error("limits.max_flows_per_endpoint", 0, "must be >= 1");
    }
    if (c.limits.max_flows_per_source_ip < 1) {
        return key_error("limits.max_flows_per_source_ip", 0, "must be >= 1");
    }
    if (c.limits.replies_per_second_per_source_ip <= 0 || c.limits.reply_burst_per_source_ip < 1) {
        return "limits.replies_per_second_per_source_ip must be > 0 and "
               "limits.reply_burst_per_source_ip >= 1";
    }
    if (c.limits.replies_per_second < 1 || c.limits.replies_per_second > 1e9 ||
        c.limits.reply_burst < 1 || c.limits.reply_burst > 1e9) {
        return "limits.replies_per_second and limits.reply_burst must be 1..1e9 (the global "
               "reply budget; 0 would answer no gateway)";
    }
    if (c.limits.reply_reserve_percent < 0 || c.limits.reply_reserve_percent > 90) {
        return key_error("limits.reply_reserve_percent",
                         static_cast<long long>(c.limits.reply_reserve_percent),
                         "must be 0..90 (the share of limits.reply_burst kept for known gateways)");
    }
    return {};
}

}  // namespace amt
