// Turns one native multicast packet into one AMT Multicast Data packet per tunnel of a GatewaySet.
//
// Large packets are not copied: each replica is a small header mbuf (outer Ethernet/IP/UDP/AMT)
// chained to the shared original, whose reference count is raised once for the whole fan-out
// (DPDK's ipv4_multicast model). Small packets, and ports that cannot send chains (AF_XDP),
// get a copy: below the threshold a copy is cheaper than the extra segment.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/gateway_set.hpp"
#include "dataplane/tx_queue.hpp"
#include "dataplane/worker_counters.hpp"

namespace amt {

struct ReplicationPolicy {
    // Inner packets up to this many octets are copied, larger ones chained. Chaining measured
    // faster at every size on ring ports (BENCHMARKS.md); tiny packets are still copied, where
    // the two are within 12 % and a copy saves a NIC descriptor and a DMA read per replica.
    uint16_t copy_threshold = 64;
    bool chaining = true;      // false: always copy (port without multi-segment TX)
    bool udp_checksum = true;  // false: zero UDP checksum over IPv4 (checklist §8.7)
};

// What the worker learned about the inner packet before fan-out (computed once).
struct InnerPacket {
    uint16_t length = 0;  // octets of the inner IP datagram (mbuf data starts at its header)
    uint32_t sum = 0;     // checksum_add() over those octets, after the TTL decrement
    uint8_t tos = 0;      // DSCP + ECN, copied to the outer header (checklist §8.5)
};

struct ReplicationResult {
    uint32_t sent = 0;
    uint16_t too_big = 0;       // tunnels skipped because the packet exceeds their MTU
    uint16_t smallest_mtu = 0;  // the smallest such tunnel MTU (for one ICMP, checklist §2.10)
};

class Replicator {
  public:
    Replicator(rte_mempool* header_pool, rte_mempool* copy_pool, const ReplicationPolicy& policy,
               WorkerCounters& counters)
        : header_pool_(header_pool), copy_pool_(copy_pool), policy_(policy), counters_(counters) {}

    // Consumes `pkt` (its data must start at the inner IP header).
    ReplicationResult replicate(rte_mbuf* pkt, const InnerPacket& inner, const GatewaySet& set,
                                TxQueue& tx);

  private:
    static constexpr uint32_t header_bulk = 32;

    rte_mbuf* chained_replica(rte_mbuf* pkt, const InnerPacket& inner, const TunnelHeader& t);
    rte_mbuf* chain_header(rte_mbuf* hdr, rte_mbuf* pkt, const InnerPacket& inner,
                           const TunnelHeader& t);
    rte_mbuf* copied_replica(rte_mbuf* pkt, const InnerPacket& inner, const TunnelHeader& t);

    rte_mempool* header_pool_;
    rte_mempool* copy_pool_;
    ReplicationPolicy policy_;
    WorkerCounters& counters_;
};

}  // namespace amt
