// Why the protocol engine ignored a message or a record. AMT has no error messages, so every
// silent drop is counted under one of these names
// (amt_dropped_packets_total{stage="protocol", reason="..."}); malformed
// input is counted under the codec's ParseError names instead.
#pragma once

#include "common/enum_names.hpp"

#include <cstdint>
#include <string_view>

namespace amt {

#define AMT_DROP_REASONS(X)                                                                        \
    X(not_for_relay_address)         /* destination is not a relay or discovery address */         \
    X(source_is_relay_address)       /* a reply would go to the relay itself */                    \
    X(unexpected_message_type)       /* Advertisement, Query or Data sent to the relay */          \
    X(teardown_disabled)             /* Teardown while teardown = false */                         \
    X(no_relay_address_for_family)   /* Discovery over a family the relay has no address of */     \
    X(rate_limited)                  /* per-source-IP token bucket for replies is empty */         \
    X(reply_budget_exhausted)        /* global reply bucket (limits.replies_per_second) empty */   \
    X(reply_reserve_exhausted)       /* ... and its reserve too, for a known gateway's reply */    \
    X(mac_mismatch)                  /* Update/Teardown MAC matches neither secret nor sticky */   \
    X(not_accepting_new_endpoints)   /* draining: L is set, new endpoints are refused */           \
    X(endpoint_limit)                /* limits.max_endpoints reached */                            \
    X(source_ip_endpoint_limit)      /* limits.max_endpoints_per_source_ip reached */              \
    X(group_limit)                   /* record ignored: limits.max_groups_per_endpoint */          \
    X(source_limit)                  /* sources ignored: limits.max_sources_per_group */           \
    X(endpoint_flow_limit)           /* flows ignored: limits.max_flows_per_endpoint */            \
    X(source_ip_flow_limit)          /* flows ignored: limits.max_flows_per_source_ip */           \
    X(ssm_exclude_ignored)           /* IS_EX / TO_EX for an SSM group (RFC 4604 §2.2.1) */       \
    X(ssm_v1v2_ignored)              /* IGMPv2 / MLDv1 message for an SSM group */                 \
    X(asm_disabled)                  /* record for a non-SSM group while asm = false */            \
    X(unknown_record_type)           /* record type 0 or >= 7: skipped */                          \
    X(bad_group_address)             /* not multicast, or link-local scope */                      \
    X(bad_source_address)            /* multicast, unspecified, broadcast, loopback, link-local */ \
    X(empty_report_unknown_endpoint) /* nothing to do and nothing allocated (§4.2.1.2) */         \
    X(teardown_unknown_endpoint)     /* authentic Teardown for an endpoint with no state */

enum class DropReason : uint8_t { AMT_DROP_REASONS(AMT_ENUM_VALUE) count_ };

inline constexpr size_t drop_reason_count = static_cast<size_t>(DropReason::count_);

inline constexpr std::array<std::string_view, drop_reason_count> drop_reason_names = {
    AMT_DROP_REASONS(AMT_ENUM_STRING)};
inline std::string_view to_string(DropReason e) {
    return enum_name(drop_reason_names, e);
}

// Reasons that ignore one group record of an Update the relay accepted, not a packet: exported
// as amt_ignored_records_total, so that amt_dropped_packets_total counts dropped packets only.
// A record counts under one reason at most.
constexpr bool ignores_a_record(DropReason r) {
    switch (r) {
        case DropReason::group_limit:
        case DropReason::source_limit:
        case DropReason::endpoint_flow_limit:
        case DropReason::source_ip_flow_limit:
        case DropReason::ssm_exclude_ignored:
        case DropReason::ssm_v1v2_ignored:
        case DropReason::asm_disabled:
        case DropReason::unknown_record_type:
        case DropReason::bad_group_address:
        case DropReason::bad_source_address:
            return true;
        default:
            return false;
    }
}

}  // namespace amt
