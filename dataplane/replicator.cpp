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

FanOut Replicator::start(rte_mbuf* pkt, const InnerPacket& inner, const GatewaySet& set) const {
    FanOut w;
    w.pkt = w.original = pkt;
    w.set = &set;
    w.inner = inner;
    w.left = set.size();
    w.chain = policy_.chaining && inner.length > policy_.copy_threshold;
    return w;
}

// An mbuf's reference count is 16 bits: a fan-out beyond it (a channel with more than 65,535
// gateways) chains each further slice of replicas to a fresh copy of the packet, one copy per
// `refs_per_original` replicas.
constexpr uint32_t refs_per_original = 16384;

bool Replicator::open_slice(FanOut& w) {
    const uint32_t n = std::min(w.left, refs_per_original);
    if (w.chain && w.left != w.set->size()) {
        w.original = rte_pktmbuf_copy(w.pkt, copy_pool_, 0, UINT32_MAX);
        if (w.original == nullptr) {
            w.original = w.pkt;
            return false;
        }
    }
    // One reference per possible replica up front: a TX flush inside the walk may free earlier
    // replicas, and the shared original must outlive them all.
    if (w.chain) rte_pktmbuf_refcnt_update(w.original, static_cast<int16_t>(n));
    w.slice_left = n;
    return true;
}

void Replicator::close_slice(FanOut& w) {
    if (w.chain && w.unused > 0)
        rte_pktmbuf_refcnt_update(w.original, -static_cast<int16_t>(w.unused));
    if (w.original != w.pkt) rte_pktmbuf_free(w.original);  // the copy's own reference
    w.original = w.pkt;
    w.unused = 0;
}

void Replicator::release(FanOut& w) {
    rte_pktmbuf_free(w.pkt);  // the worker's own reference
    w.pkt = w.original = nullptr;
    w.left = 0;
}

void Replicator::abandon(FanOut& w, DataplaneDrop reason) {
    if (w.pkt == nullptr) return;
    if (w.left > 0) counters_.drop(reason, w.left);
    if (w.slice_left > 0) {
        w.unused += w.slice_left;
        w.slice_left = 0;
        close_slice(w);
    }
    release(w);
}

bool Replicator::replicate(FanOut& w, TxQueue& tx) {
    const GatewaySet& set = *w.set;
    const InnerPacket& inner = w.inner;
    uint32_t sent = 0, too_big = 0;
    bool paused = false;
    // Header mbufs come in bulk, as many as the TX queue takes now, and their header and data
    // lines are prefetched together: a recycled mbuf is usually out of cache, and one miss at a
    // time per replica was the largest cost of a chained replica (BENCHMARKS.md).
    rte_mbuf* headers[header_bulk];
    uint32_t have = 0, next = 0;
    // The set is a few chunks (one for a small flow); the next one is prefetched meanwhile.
    for (; w.chunk < set.chunk_count(); ++w.chunk, w.index = 0) {
        const GatewayChunk& chunk = set.chunk(w.chunk);
        if (w.chunk + 1 < set.chunk_count()) __builtin_prefetch(set.chunk(w.chunk + 1).tunnels());
        const TunnelHeader* run = chunk.tunnels();
        for (; w.index < chunk.count; ++w.index) {
            if (w.slice_left == 0 && !open_slice(w)) {
                counters_.drop(DataplaneDrop::mbuf_exhausted, w.left);
                w.left = 0;
                break;
            }
            const TunnelHeader& t = run[w.index];
            if (inner.length > t.tunnel_mtu()) {
                ++too_big;
                ++w.unused;
            } else {
                // A full TX queue, or no mbuf until it returns some: stop here, go on later.
                if (!tx.room_for_replica()) {
                    paused = true;
                    break;
                }
                rte_mbuf* m;
                if (!w.chain) {
                    m = copied_replica(w.pkt, inner, t);
                } else {
                    if (next == have && w.left > 1) {
                        have = std::min(
                            {header_bulk, w.left, uint32_t{TxQueue::burst} - tx.pending()});
                        next = 0;
                        if (rte_pktmbuf_alloc_bulk(header_pool_, headers, have) != 0) have = 0;
                        for (uint32_t k = 0; k < have; ++k)
                            rte_prefetch0(rte_pktmbuf_mtod(headers[k], void*));
                    }
                    m = next < have ? chain_header(headers[next++], w.original, inner, t)
                                    : chained_replica(w.original, inner, t);
                }
                if (m == nullptr) {
                    paused = true;
                    break;
                }
                counters_.replica_bytes.add(m->pkt_len);
                tx.send_replica(m);
                ++sent;
            }
            --w.slice_left;
            --w.left;
            if (w.slice_left == 0) close_slice(w);
        }
        if (paused || w.left == 0) break;  // (a paused walk keeps its chunk and index)
    }
    if (next < have) rte_pktmbuf_free_bulk(headers + next, have - next);
    counters_.replicas.add(sent);
    if (too_big > 0) counters_.drop(DataplaneDrop::too_big, too_big);
    if (paused) return false;
    release(w);
    return true;
}

}  // namespace amt
