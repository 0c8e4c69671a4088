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

// One inner packet's fan-out over a GatewaySet, which may stop where the TX queue is full and
// go on from there at a later poll (issue 13): the walk's position and the mbufs it holds.
// The set must outlive the walk: the worker keeps it from being freed (see Worker: a paused
// walk holds back the worker's RCU quiescent state).
struct FanOut {
    rte_mbuf* pkt = nullptr;  // the worker's own reference to the inner packet
    const GatewaySet* set = nullptr;
    InnerPacket inner;
    uint32_t chunk = 0;  // where the walk is: the chunk, and the tunnel in it
    uint32_t index = 0;
    uint32_t left = 0;             // tunnels not walked yet
    rte_mbuf* original = nullptr;  // what replicas chain to: pkt, or a copy past 16,384 refs
    uint32_t slice_left = 0;       // replicas `original` still holds references for
    uint32_t unused = 0;           // of those, references no replica took
    bool chain = false;
};

class Replicator {
  public:
    Replicator(rte_mempool* header_pool, rte_mempool* copy_pool, const ReplicationPolicy& policy,
               WorkerCounters& counters)
        : header_pool_(header_pool), copy_pool_(copy_pool), policy_(policy), counters_(counters) {}

    // A fan-out of `pkt` (its data must start at the inner IP header) over `set`; the walk
    // takes the packet over.
    FanOut start(rte_mbuf* pkt, const InnerPacket& inner, const GatewaySet& set) const;
    // Walks on until the set is done (true: the packet is released) or the TX queue is full
    // (false: call again later, with the same set).
    bool replicate(FanOut& walk, TxQueue& tx);
    // Gives up the rest of a walk (shutdown, or a link that stopped draining): its replicas
    // not made are dropped for `reason`.
    void abandon(FanOut& walk, DataplaneDrop reason);

  private:
    static constexpr uint32_t header_bulk = 32;

    bool open_slice(FanOut& walk);
    void close_slice(FanOut& walk);
    void release(FanOut& walk);
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
