// Every way the codec rejects input. Each value has a stable snake_case name so that the metrics
// can count drops by reason (amt_drops_total{reason="..."}).
#pragma once

#include "common/enum_names.hpp"

#include <cstdint>
#include <string_view>

namespace amt {

#define AMT_PARSE_ERRORS(X)                                                                  \
    X(ok)                                                                                    \
    /* AMT layer (checklist §6 items 1-5) */                                                \
    X(empty_message)               /* UDP payload of zero octets */                          \
    X(bad_version)                 /* V != 0 */                                              \
    X(unknown_type)                /* type 0 or 8-15 */                                      \
    X(truncated_message)           /* shorter than its type's fixed part */                  \
    X(bad_advertisement_length)    /* payload - 8 is neither 4 nor 16 */                     \
    X(missing_encapsulated_packet) /* Query/Update/Data with nothing after the fixed part */ \
    X(bad_gateway_address)         /* Teardown/Query Gateway IP is :: */                     \
    /* outer IP/UDP (items 6-7) */                                                           \
    X(truncated_ip_header)                                                                   \
    X(bad_ip_version)                                                                        \
    X(bad_ipv4_ihl)                                                                          \
    X(bad_ip_total_length)                                                                   \
    X(bad_ipv4_header_checksum)                                                              \
    X(ipv4_fragment)                                                                         \
    X(not_udp)                                                                               \
    X(truncated_udp_header)                                                                  \
    X(bad_udp_length)                                                                        \
    X(zero_udp_checksum) /* control messages MUST carry a checksum */                        \
    X(bad_udp_checksum)                                                                      \
    X(source_unspecified)                                                                    \
    X(source_multicast)                                                                      \
    X(source_broadcast)                                                                      \
    X(source_loopback)                                                                       \
    X(source_port_zero)                                                                      \
    /* encapsulated IGMP/MLD datagram (item 13) */                                           \
    X(inner_truncated)                                                                       \
    X(inner_bad_version)                                                                     \
    X(inner_bad_ihl)                                                                         \
    X(inner_header_overrun)       /* IHL*4 beyond the message */                             \
    X(inner_total_length_short)   /* total length < IHL*4 */                                 \
    X(inner_total_length_overrun) /* total/payload length beyond the message */              \
    X(inner_bad_header_checksum)                                                             \
    X(inner_fragment)                                                                        \
    X(inner_bad_option)           /* malformed IPv4 options or Router Alert option */        \
    X(inner_not_igmp)             /* IPv4 protocol != 2 */                                   \
    X(inner_bad_extension_header) /* HbH not first, repeated, or an unsupported header */    \
    X(inner_extension_overrun)                                                               \
    X(inner_jumbo_option)                                                                    \
    X(inner_not_icmpv6) /* final next header != 58 */                                        \
    /* IGMP / MLD message (items 14-15) */                                                   \
    X(igmp_truncated)                                                                        \
    X(igmp_bad_checksum)                                                                     \
    X(igmp_not_report) /* query, v1 report or unknown type inside an Update */               \
    X(mld_truncated)                                                                         \
    X(mld_bad_checksum)                                                                      \
    X(mld_not_report)                                                                        \
    X(not_general_query) /* gateway side: a Query that carries no general query */           \
    X(record_header_overrun)                                                                 \
    X(record_sources_overrun)                                                                \
    X(record_aux_overrun)                                                                    \
    /* record contents (items 16-17); the engine decides what to do with them */             \
    X(group_not_multicast)                                                                   \
    X(group_link_local)                                                                      \
    X(source_not_unicast)

enum class ParseError : uint8_t { AMT_PARSE_ERRORS(AMT_ENUM_VALUE) count_ };

inline constexpr size_t parse_error_count = static_cast<size_t>(ParseError::count_);

inline constexpr std::array<std::string_view, parse_error_count> parse_error_names = {
    AMT_PARSE_ERRORS(AMT_ENUM_STRING)};
inline std::string_view to_string(ParseError e) {
    return enum_name(parse_error_names, e);
}

}  // namespace amt
