#include "dataplane/replicator.hpp"

#include <rte_prefetch.h>

#include <algorithm>

namespace amt {

rte_mbuf* Replicator::chained_replica(rte_mbuf* pkt, const InnerPacket& inner,
                                      const TunnelHeader& t) {
    rte_mbuf* hdr = rte_pktmbuf_alloc(header_pool_);
    if (hdr == nullptr) return nullptr;
    return chain_header(hdr, pkt, inner, t);
}

rte_mbuf* Replicator::chain_header(rte_mbuf* hdr, rte_mbuf* pkt, const InnerPacket& inner,
                                   const TunnelHeader& t) {
    finish_tunnel_header(t, rte_pktmbuf_mtod(hdr, uint8_t*), inner.length, inner.sum, inner.tos,
                         policy_.udp_checksum);
    hdr->data_len = t.size;
    hdr->pkt_len = t.size + pkt->pkt_len;
    hdr->nb_segs = static_cast<uint16_t>(pkt->nb_segs + 1);
    hdr->next = pkt;
    return hdr;
}

rte_mbuf* Replicator::copied_replica(rte_mbuf* pkt, const InnerPacket& inner,
                                     const TunnelHeader& t) {
    rte_mbuf* m = rte_pktmbuf_alloc(copy_pool_);
    if (m == nullptr) return nullptr;
    auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, t.size + inner.length));
    if (out == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    finish_tunnel_header(t, out, inner.length, inner.sum, inner.tos, policy_.udp_checksum);
    const void* src = rte_pktmbuf_read(pkt, 0, inner.length, out + t.size);
    if (src != out + t.size) std::memcpy(out + t.size, src, inner.length);
    return m;
}

ReplicationResult Replicator::replicate(rte_mbuf* pkt, const InnerPacket& inner,
                                        const GatewaySet& set, TxQueue& tx) {
    ReplicationResult r;
    const bool chain = policy_.chaining && inner.length > policy_.copy_threshold;
    // An mbuf's reference count is 16 bits: a fan-out beyond it (a channel with more than
    // 65,535 gateways) chains each further slice of replicas to a fresh copy of the packet, one
    // copy per `refs_per_original` replicas.
    constexpr uint32_t refs_per_original = 16384;
    rte_mbuf* original = pkt;
    uint32_t slice_left = 0;  // replicas the current original still holds references for
    uint32_t unused = 0;      // of those, references no replica took
    uint32_t left = set.size();
    bool stopped = false;
    // Header mbufs come in bulk, and their header and data lines are prefetched together:
    // a recycled mbuf is usually out of cache, and one miss at a time per replica was the
    // largest cost of a chained replica (BENCHMARKS.md).
    rte_mbuf* headers[header_bulk];
    uint32_t have = 0, next = 0;
    const auto close_slice = [&] {
        if (chain && unused > 0) rte_pktmbuf_refcnt_update(original, -static_cast<int16_t>(unused));
        if (original != pkt) rte_pktmbuf_free(original);  // the copy's own reference
        unused = 0;
    };
    const auto open_slice = [&] {
        const uint32_t n = std::min(left, refs_per_original);
        if (chain && left != set.size()) {
            original = rte_pktmbuf_copy(pkt, copy_pool_, 0, UINT32_MAX);
            if (original == nullptr) {
                original = pkt;
                counters_.drop(DataplaneDrop::mbuf_exhausted, left);
                return false;
            }
        }
        // One reference per possible replica up front: a TX flush inside the loop may free
        // earlier replicas, and the shared original must outlive them all.
        if (chain) rte_pktmbuf_refcnt_update(original, static_cast<int16_t>(n));
        slice_left = n;
        return true;
    };
    // The set is a few chunks (one for a small flow); the next one is prefetched meanwhile.
    set.for_each_run([&](const TunnelHeader* run, uint32_t count) {
        for (uint32_t i = 0; i < count && !stopped; ++i, --left) {
            if (slice_left == 0 && !open_slice()) {
                stopped = true;
                break;
            }
            --slice_left;
            const TunnelHeader& t = run[i];
            rte_mbuf* m = nullptr;
            if (inner.length > t.tunnel_mtu()) {
                ++r.too_big;
                if (r.smallest_mtu == 0 || t.tunnel_mtu() < r.smallest_mtu)
                    r.smallest_mtu = t.tunnel_mtu();
                ++unused;
            } else {
                if (!chain) {
                    m = copied_replica(pkt, inner, t);
                } else {
                    if (next == have && left > 1) {
                        have = std::min<uint32_t>(header_bulk, left);
                        next = 0;
                        if (rte_pktmbuf_alloc_bulk(header_pool_, headers, have) != 0) have = 0;
                        for (uint32_t k = 0; k < have; ++k)
                            rte_prefetch0(rte_pktmbuf_mtod(headers[k], void*));
                    }
                    m = next < have ? chain_header(headers[next++], original, inner, t)
                                    : chained_replica(original, inner, t);
                }
                if (m == nullptr) {
                    counters_.drop(DataplaneDrop::mbuf_exhausted);
                    ++unused;
                } else {
                    counters_.replica_bytes.add(m->pkt_len);
                    tx.send(m);
                    ++r.sent;
                }
            }
            if (slice_left == 0) close_slice();
        }
    });
    if (next < have) rte_pktmbuf_free_bulk(headers + next, have - next);  // skipped tunnels
    rte_pktmbuf_free(pkt);  // the worker's own reference
    counters_.replicas.add(r.sent);
    if (r.too_big > 0) counters_.drop(DataplaneDrop::too_big, r.too_big);
    return r;
}

}  // namespace amt
