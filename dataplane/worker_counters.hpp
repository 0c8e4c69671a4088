// Per-worker counters: one cache-line-aligned block per lcore, written only by its worker with
// plain relaxed stores, read by the metrics exporter at scrape time (no locks on the hot path).
#pragma once

#include "common/enum_names.hpp"

#include <array>
#include <atomic>
#include <cstdint>

#include "controlplane/protocol_counters.hpp"

namespace amt {

#define AMT_DATAPLANE_DROPS(X)                                                                   \
    X(no_flow)               /* multicast with no listener: (S,G) and (*,G) both missing */      \
    X(ttl_expired)           /* inner TTL / hop limit <= 1 before forwarding */                  \
    X(malformed_multicast)   /* bad or truncated inner IP header */                              \
    X(too_big)               /* inner packet larger than the tunnel MTU (ICMP sent for SSM) */   \
    X(fragment_failed)       /* DF=0 packet that could not be fragmented */                      \
    X(mbuf_exhausted)        /* no mbuf for a replica or a reply */                              \
    X(tx_full)               /* NIC TX queue did not drain: egress stalled, or TX buffer full */ \
    X(egress_buffer_full)    /* native multicast refused whole: the egress backlog is full */    \
    X(control_ring_full)     /* Update/Teardown dropped: the control thread is behind */         \
    X(exception_unavailable) /* for the kernel, but no ports.exception (full: tx_full) */        \
    X(multicast_from_downstream)    /* native multicast on the gateways' port (two ports) */     \
    X(multicast_source_not_allowed) /* source outside upstream.source_prefixes */                \
    X(query_from_downstream)        /* IGMP/MLD query on the gateways' port (two ports) */       \
    X(query_source_not_allowed)     /* one port: querier outside upstream.source_prefixes */     \
    X(neighbor_unresolved) /* replica to an on-link gateway or next hop whose MAC is unknown */  \
    X(unknown_ethertype)

enum class DataplaneDrop : uint8_t { AMT_DATAPLANE_DROPS(AMT_ENUM_VALUE) count_ };
inline constexpr size_t dataplane_drop_count = static_cast<size_t>(DataplaneDrop::count_);
inline constexpr std::array<std::string_view, dataplane_drop_count> dataplane_drop_names = {
    AMT_DATAPLANE_DROPS(AMT_ENUM_STRING)};
inline std::string_view to_string(DataplaneDrop e) {
    return enum_name(dataplane_drop_names, e);
}

struct alignas(64) WorkerCounters {
    Counter rx_packets;
    Counter rx_bytes;
    Counter multicast_in;  // native multicast packets matched to a flow
    Counter replicas;      // AMT Data packets handed to the NIC
    Counter replica_bytes;
    Counter tx_packets;       // everything the worker sent (replicas, replies, exception)
    Counter control_to_ring;  // Updates/Teardowns passed to the control thread
    Counter exception_packets;
    Counter arp_replies;
    Counter nd_replies;
    Counter fragments;             // inner IPv4 fragments made for DF=0 packets over the tunnel MTU
    Counter too_big_notices;       // ICMP Fragmentation Needed / Packet Too Big sent to sources
    Counter busy_cycles;           // TSC cycles spent in loops that received packets
    Counter idle_cycles;           // TSC cycles spent polling empty queues
    Counter intake_paused_cycles;  // TSC cycles while the egress backlog was full
    std::atomic<uint64_t> egress_backlog{0};  // fan-outs waiting for the TX queue (packets)
    std::array<Counter, dataplane_drop_count> dropped;
    ProtocolCounters* protocol = nullptr;  // the worker's HandshakeResponder counters

    void drop(DataplaneDrop d, uint64_t n = 1) { dropped[static_cast<size_t>(d)].add(n); }
};

}  // namespace amt
