#include "dataplane/worker.hpp"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <chrono>

#include "common/checksum.hpp"
#include "common/icmp.hpp"
#include "common/igmp_mld.hpp"

namespace amt {

namespace {

constexpr uint8_t icmpv6_neighbor_solicitation = 135;
constexpr uint8_t icmpv6_neighbor_advertisement = 136;
constexpr size_t arp_size = 28;

bool is_link_local_group_v4(const uint8_t* g) {
    return g[0] == 224 && g[1] == 0 && g[2] == 0;
}

// (family, S, G) hash keys straight from the packet's address octets.
void fill_keys(Family f, const uint8_t* src, const uint8_t* grp, FlowHashKey& sg,
               FlowHashKey& any_g) {
    sg = FlowHashKey{};
    sg.family = static_cast<uint8_t>(f);
    const size_t w = f == Family::ipv4 ? 4 : 16;
    std::memcpy(sg.source + 16 - w, src, w);
    std::memcpy(sg.group + 16 - w, grp, w);
    any_g = sg;
    std::memset(any_g.source, 0, sizeof(any_g.source));
}

// An MLD query: ICMPv6 type 130, directly or after one Hop-by-Hop header (RFC 3810 §5).
bool is_mld_query(const uint8_t* ip, size_t avail) {
    size_t off = ipv6_header_size;
    uint8_t next = ip[6];
    if (next == ip_proto_hop_by_hop && avail >= off + 8) {
        next = ip[off];
        off += (size_t{ip[off + 1]} + 1) * 8;
    }
    return next == ip_proto_icmpv6 && avail > off && ip[off] == mld_query;
}

Time steady_now() {
    return std::chrono::steady_clock::now().time_since_epoch();
}

}  // namespace

Worker::Worker(const WorkerSetup& setup, const WorkerShared& shared)
    : setup_(setup),
      shared_(shared),
      flow_counters_(shared.flows.counters()),
      responder_(setup.engine, shared.secrets, shared.replies),
      tx_(setup.downstream.port, setup.downstream.tx_queue, counters_, setup.downstream.tx_lock),
      replicator_(shared.header_pool, shared.packet_pool, setup.replication, counters_) {
    counters_.protocol = &responder_.counters();
    too_big_limiter_.configure(10, 10);  // per source: enough for PMTU discovery, no flood
    if (setup.upstream)
        upstream_tx_.emplace(setup.upstream->port, setup.upstream->tx_queue, counters_,
                             setup.upstream->tx_lock);
    if (setup.exception_port)
        exception_tx_.emplace(*setup.exception_port, setup.exception_tx_queue, counters_);
    backlog_.resize(std::max<uint32_t>(setup.egress.packets, 1));
    stall_ = std::chrono::microseconds(setup.egress.stall_us);
}

Worker::~Worker() {
    abandon_backlog();
    for (uint16_t i = 0; i < pending_count_; ++i)
        rte_pktmbuf_free(pending_[i].mbuf);
}

bool Worker::is_own_address(const IpAddress& a) const {
    return std::find(link_->addresses.begin(), link_->addresses.end(), a) != link_->addresses.end();
}

bool Worker::is_relay_address(const IpAddress& a) const {
    const auto& d = setup_.downstream.addresses;
    return std::find(d.begin(), d.end(), a) != d.end();
}

bool Worker::on_link(const IpAddress& a) const {
    if (link_ != &setup_.downstream) return false;
    for (const IpPrefix& p : setup_.on_link_prefixes) {
        if (p.contains(a)) return true;
    }
    return false;
}

// A neighbour's ARP or ND message for the control thread's table; the original goes on (answered,
// or to the kernel), so the kernel behind the exception port keeps learning too.
void Worker::copy_to_control(const rte_mbuf* m) {
    rte_mbuf* copy = rte_pktmbuf_copy(m, shared_.packet_pool, 0, UINT32_MAX);
    if (copy == nullptr) return counters_.drop(DataplaneDrop::mbuf_exhausted);
    to_control(copy);
}

void Worker::to_control(rte_mbuf* m) {
    if (rte_ring_enqueue(shared_.control_ring, m) != 0) {
        return drop(m, DataplaneDrop::control_ring_full);
    }
    counters_.control_to_ring.add();
}

void Worker::drop(rte_mbuf* m, DataplaneDrop reason) {
    counters_.drop(reason);
    rte_pktmbuf_free(m);
}

void Worker::to_exception(rte_mbuf* m) {
    if (!exception_tx_) {
        drop(m, DataplaneDrop::exception_unavailable);
        return;
    }
    counters_.exception_packets.add();
    exception_tx_->send(m);
}

uint16_t Worker::poll_link(const WorkerLink& link, bool upstream) {
    uint16_t total = 0;
    for (const uint16_t queue : link.rx_queues) {
        std::array<rte_mbuf*, burst_size> pkts;
        const uint16_t n = rte_eth_rx_burst(link.port, queue, pkts.data(), burst_size);
        for (uint16_t i = 0; i < n; ++i) {
            if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
            counters_.rx_bytes.add(pkts[i]->pkt_len);
            process(pkts[i], upstream);
        }
        total += n;
    }
    counters_.rx_packets.add(total);
    return total;
}

uint16_t Worker::poll_once(Time now) {
    const uint64_t start = rte_rdtsc();
    poll_time_ = now;
    poll_token_ = shared_.rcu.token();  // before any lookup of this poll
    const bool intake_paused = backlog_full();
    const uint32_t waiting = backlog_count_;
    tx_.flush();  // what the driver did not take last time, first
    uint16_t n = poll_link(setup_.downstream, false);
    if (setup_.upstream) n += poll_link(*setup_.upstream, true);
    if (pending_count_ > 0) answer_handshakes(steady_now());  // replies before the backlog
    drain_backlog();
    flush();
    report_quiescent();
    const uint64_t end = rte_rdtsc();
    (n > 0 || waiting > 0 ? counters_.busy_cycles : counters_.idle_cycles).add(end - start);
    if (intake_paused && last_poll_end_ != 0)
        counters_.intake_paused_cycles.add(end - last_poll_end_);
    last_poll_end_ = end;
    counters_.egress_backlog.store(backlog_count_, std::memory_order_relaxed);
    return n;
}

// A walk that waits holds its set past this poll: the worker is quiescent only as of the token
// read before the oldest such walk looked its set up (every walk behind it is younger).
void Worker::report_quiescent() {
    if (backlog_count_ == 0) {
        rte_rcu_qsbr_quiescent(shared_.rcu.get(), setup_.rcu_thread_id);
    } else {
        shared_.rcu.quiescent_since(setup_.rcu_thread_id, backlog_[backlog_head_].rcu_token);
    }
}

void Worker::fan_out(rte_mbuf* m, const InnerPacket& inner, const GatewaySet& set) {
    if (backlog_count_ == backlog_.size()) return drop(m, DataplaneDrop::egress_buffer_full);
    FanOut walk = replicator_.start(m, inner, set);
    // The common case: nothing waits, and the TX queue takes the whole fan-out.
    if (backlog_count_ == 0 && replicator_.replicate(walk, tx_)) return;
    const uint32_t outer = set.chunk_count() > 0 && set.chunk(0).count > 0
                               ? set.chunk(0).tunnels()[0].size
                               : max_outer_header_size;
    const uint32_t octets = inner.length + outer + 24;  // + preamble, FCS and inter-frame gap
    const uint32_t slot = (backlog_head_ + backlog_count_) % static_cast<uint32_t>(backlog_.size());
    backlog_[slot] = {walk, poll_token_, poll_time_, octets};
    ++backlog_count_;
    backlog_octets_ += uint64_t{walk.left} * octets;
}

// Fan-outs that wait go on, oldest first, until the TX queue is full again.
void Worker::drain_backlog() {
    while (backlog_count_ > 0) {
        Waiting& w = backlog_[backlog_head_];
        const uint32_t left = w.walk.left;
        const bool done = replicator_.replicate(w.walk, tx_);
        backlog_octets_ -= uint64_t{left - w.walk.left} * w.replica_octets;
        if (!done) {
            if (w.walk.left != left) {
                w.progress = poll_time_;
                return;
            }
            if (poll_time_ - w.progress < stall_) return;
            // The link has not taken a replica for egress.stall_us: give the walk up, so that
            // it holds no set (and no RCU grace period) any longer.
            backlog_octets_ -= uint64_t{w.walk.left} * w.replica_octets;
            replicator_.abandon(w.walk, DataplaneDrop::tx_full);
        }
        backlog_head_ = (backlog_head_ + 1) % static_cast<uint32_t>(backlog_.size());
        --backlog_count_;
    }
}

void Worker::abandon_backlog() {
    while (backlog_count_ > 0) {
        replicator_.abandon(backlog_[backlog_head_].walk, DataplaneDrop::tx_full);
        backlog_head_ = (backlog_head_ + 1) % static_cast<uint32_t>(backlog_.size());
        --backlog_count_;
    }
    backlog_octets_ = 0;
}

void Worker::flush() {
    if (pending_count_ > 0) answer_handshakes(steady_now());
    tx_.flush();
    if (upstream_tx_) upstream_tx_->flush();
    if (exception_tx_) exception_tx_->flush();
}

void Worker::run(const std::atomic<bool>& stop) {
    rte_rcu_qsbr* v = shared_.rcu.get();
    rte_rcu_qsbr_thread_register(v, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_online(v, setup_.rcu_thread_id);
    while (!stop.load(std::memory_order_relaxed))
        poll_once(steady_now());
    flush();
    // Offline, the worker may no longer hold sets: what still waits is dropped.
    abandon_backlog();
    rte_rcu_qsbr_thread_offline(v, setup_.rcu_thread_id);
    rte_rcu_qsbr_thread_unregister(v, setup_.rcu_thread_id);
}

void Worker::process(rte_mbuf* m, bool upstream) {
    link_ = upstream ? &*setup_.upstream : &setup_.downstream;
    link_tx_ = upstream ? &*upstream_tx_ : &tx_;
    const auto* frame = rte_pktmbuf_mtod(m, const uint8_t*);
    EthernetHeader eth;
    if (parse_ethernet(ByteView(frame, m->data_len), eth) != ParseError::ok || eth.vlan_tci != 0) {
        to_exception(m);
        return;
    }
    switch (eth.ethertype) {
        case ethertype_ipv4:
            classify_ipv4(m, eth.size);
            break;
        case ethertype_ipv6:
            classify_ipv6(m, eth.size);
            break;
        case ethertype_arp:
            answer_arp(m, eth.size);
            break;
        default:
            to_exception(m);
            break;
    }
}

void Worker::classify_ipv4(rte_mbuf* m, size_t l2) {
    const uint8_t* ip = rte_pktmbuf_mtod_offset(m, const uint8_t*, l2);
    const size_t avail = m->data_len - l2;
    if (avail < ipv4_header_size) {
        to_exception(m);
        return;
    }
    const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
    const size_t total = load_be16(ip + 2);
    const bool sane = (ip[0] >> 4) == 4 && ihl >= ipv4_header_size && total >= ihl &&
                      total <= m->pkt_len - l2 && ihl <= avail;
    const uint8_t proto = ip[9];
    if ((ip[16] >> 4) == 0xe) {
        if (!sane) return drop(m, DataplaneDrop::malformed_multicast);
        // A router's IGMP query is the upstream proxy's (control thread). Link-local groups,
        // other IGMP and PIM are never replicated (checklist §2.10).
        if (proto == ip_proto_igmp && avail > ihl && ip[ihl] == igmp_membership_query) {
            if (auto refused = refuse_native(ip + 12, Family::ipv4, true)) return drop(m, *refused);
            return to_control(m);
        }
        if (is_link_local_group_v4(ip + 16) || proto == ip_proto_igmp || proto == ip_proto_pim) {
            return to_exception(m);
        }
        if (auto refused = refuse_native(ip + 12, Family::ipv4, false)) return drop(m, *refused);
        return forward_multicast(m, l2, Family::ipv4);
    }
    if (sane && proto == ip_proto_udp && avail >= ihl + udp_header_size &&
        load_be16(ip + ihl + 2) == amt_udp_port &&
        is_own_address(IpAddress::v4_from_bytes(ip + 16))) {
        return handle_amt(m, l2);
    }
    to_exception(m);
}

void Worker::classify_ipv6(rte_mbuf* m, size_t l2) {
    const uint8_t* ip = rte_pktmbuf_mtod_offset(m, const uint8_t*, l2);
    const size_t avail = m->data_len - l2;
    if (avail < ipv6_header_size || (ip[0] >> 4) != 6) {
        to_exception(m);
        return;
    }
    const size_t total = ipv6_header_size + load_be16(ip + 4);
    const bool sane = total <= m->pkt_len - l2;
    const uint8_t next = ip[6];
    if (sane && next == ip_proto_icmpv6 && avail >= ipv6_header_size + 24) {
        learn_next_hop_v6(rte_pktmbuf_mtod(m, const uint8_t*), ip, avail);
        // An on-link gateway's NS (its source) or NA (its target) may carry its MAC.
        const uint8_t type = ip[ipv6_header_size];
        if ((type == icmpv6_neighbor_solicitation && on_link(IpAddress::v6_from_bytes(ip + 8))) ||
            (type == icmpv6_neighbor_advertisement &&
             on_link(IpAddress::v6_from_bytes(ip + ipv6_header_size + 8)))) {
            copy_to_control(m);
        }
    }
    if (sane && next == ip_proto_icmpv6 && avail >= ipv6_header_size + 24 &&
        ip[ipv6_header_size] == icmpv6_neighbor_solicitation &&
        is_own_address(IpAddress::v6_from_bytes(ip + ipv6_header_size + 8))) {
        return answer_neighbor_solicitation(m, l2, ipv6_header_size);
    }
    if (ip[24] == 0xff) {
        if (!sane) return drop(m, DataplaneDrop::malformed_multicast);
        if (is_mld_query(ip, avail)) {
            if (auto refused = refuse_native(ip + 8, Family::ipv6, true)) return drop(m, *refused);
            return to_control(m);
        }
        // Scopes 0-2 (ND, MLD, routers), Hop-by-Hop (MLD), ICMPv6 and PIM: never replicated.
        if ((ip[25] & 0x0f) <= 2 || next == ip_proto_hop_by_hop || next == ip_proto_icmpv6 ||
            next == ip_proto_pim) {
            return to_exception(m);
        }
        if (auto refused = refuse_native(ip + 8, Family::ipv6, false)) return drop(m, *refused);
        return forward_multicast(m, l2, Family::ipv6);
    }
    if (sane && next == ip_proto_udp && avail >= ipv6_header_size + udp_header_size &&
        load_be16(ip + ipv6_header_size + 2) == amt_udp_port && link_ == &setup_.downstream &&
        is_relay_address(IpAddress::v6_from_bytes(ip + 24))) {
        return handle_amt(m, l2);
    }
    to_exception(m);
}

// Native multicast is replicated into tunnels, so it is taken only from where sources live
// (issue 18: multicast injected on the gateways' segment reached every joined gateway). With an
// upstream port, that is the upstream port; with one port for both, the frame's source address
// must be in upstream.source_prefixes, and with none configured nothing is accepted. The list,
// when given, filters the upstream port as well (an RPF-style check).
// IGMP/MLD queries make the upstream proxy report, so only the upstream link's queriers count:
// the upstream port, or on one port a querier listed in upstream.source_prefixes.
std::optional<DataplaneDrop> Worker::refuse_native(const uint8_t* source, Family family,
                                                   bool query) const {
    if (setup_.upstream && link_ == &setup_.downstream)
        return query ? DataplaneDrop::query_from_downstream
                     : DataplaneDrop::multicast_from_downstream;
    if (setup_.upstream && (query || setup_.source_prefixes.empty())) return std::nullopt;
    const IpAddress s = family == Family::ipv4 ? IpAddress::v4_from_bytes(source)
                                               : IpAddress::v6_from_bytes(source);
    for (const IpPrefix& p : setup_.source_prefixes) {
        if (p.contains(s)) return std::nullopt;
    }
    return query ? DataplaneDrop::query_source_not_allowed
                 : DataplaneDrop::multicast_source_not_allowed;
}

// The one's-complement sum of the whole inner datagram, which every replica's UDP checksum
// needs. For a complete UDP datagram with a checksum it follows from the headers alone: a valid
// IPv4 header sums to zero, and a valid UDP checksum makes the segment sum to the complement of
// its pseudo-header. That saves a pass over the payload (measured in BENCHMARKS.md). A source
// that sent a wrong inner checksum gets a wrong outer one: the receiver would drop it anyway.
uint32_t Worker::inner_packet_sum(const rte_mbuf* m, const uint8_t* ip, uint16_t length) {
    const bool v4 = (ip[0] >> 4) == 4;
    const size_t header = v4 ? size_t{ip[0] & 0x0fu} * 4 : ipv6_header_size;
    const bool fragment = v4 && (load_be16(ip + 6) & 0x3fff) != 0;
    const uint8_t proto = v4 ? ip[9] : ip[6];
    if (proto == ip_proto_udp && !fragment && length >= header + udp_header_size &&
        load_be16(ip + header + 6) != 0 && load_be16(ip + header + 4) == length - header) {
        const IpAddress src =
            v4 ? IpAddress::v4_from_bytes(ip + 12) : IpAddress::v6_from_bytes(ip + 8);
        const IpAddress dst =
            v4 ? IpAddress::v4_from_bytes(ip + 16) : IpAddress::v6_from_bytes(ip + 24);
        const uint32_t pseudo = pseudo_header_sum(src, dst, ip_proto_udp, length - header);
        const uint32_t segment = static_cast<uint16_t>(~checksum_add({}, pseudo));
        return v4 ? segment : checksum_add(ByteView(ip, header), segment);
    }
    uint32_t sum = 0;
    for (const rte_mbuf* seg = m; seg != nullptr; seg = seg->next) {
        sum = checksum_add(ByteView(rte_pktmbuf_mtod(seg, const uint8_t*), seg->data_len), sum);
    }
    return sum;
}

// Neighbor Solicitations and Advertisements from the IPv6 next hop carry its MAC.
void Worker::learn_next_hop_v6(const uint8_t* frame, const uint8_t* ip, size_t avail) {
    const NextHop& hop = shared_.next_hops.v6;
    if (!hop.ip() || avail < ipv6_header_size + 24) return;
    const uint8_t type = ip[ipv6_header_size];
    const bool from_hop =
        (type == icmpv6_neighbor_solicitation && IpAddress::v6_from_bytes(ip + 8) == *hop.ip()) ||
        (type == icmpv6_neighbor_advertisement &&
         IpAddress::v6_from_bytes(ip + ipv6_header_size + 8) == *hop.ip());
    if (!from_hop) return;
    MacAddress mac;
    std::memcpy(mac.data(), frame + 6, 6);
    shared_.next_hops.v6.learn(mac);
}

void Worker::forward_multicast(rte_mbuf* m, size_t l2, Family family) {
    auto* ip = rte_pktmbuf_mtod_offset(m, uint8_t*, l2);
    const bool v4 = family == Family::ipv4;
    FlowHashKey sg, any_g;
    fill_keys(family, v4 ? ip + 12 : ip + 8, v4 ? ip + 16 : ip + 24, sg, any_g);
    const GatewaySet* set = shared_.flows.lookup(sg, any_g);
    if (set == nullptr) return drop(m, DataplaneDrop::no_flow);
    // One count per replica not made: its gateway's (or next hop's) MAC is not resolved yet.
    if (set->withheld() != 0) counters_.drop(DataplaneDrop::neighbor_unresolved, set->withheld());
    if (set->size() == 0) {
        if (set->withheld() == 0) counters_.drop(DataplaneDrop::no_flow);
        rte_pktmbuf_free(m);
        return;
    }
    // The egress backlog is full: the packet is refused whole, never fanned out in part.
    if (backlog_full()) return drop(m, DataplaneDrop::egress_buffer_full);

    // Router model (checklist §8.5): the inner TTL drops by one, once, before the fan-out.
    uint8_t& ttl = ip[v4 ? 8 : 7];
    if (setup_.decrement_ttl) {
        if (ttl <= 1) return drop(m, DataplaneDrop::ttl_expired);
        if (v4) {
            const uint16_t old_word = load_be16(ip + 8);
            --ttl;
            store_be16(ip + 10, checksum_update16(load_be16(ip + 10), old_word, load_be16(ip + 8)));
        } else {
            --ttl;
        }
    }
    const uint16_t length =
        v4 ? load_be16(ip + 2) : static_cast<uint16_t>(ipv6_header_size + load_be16(ip + 4));
    const uint8_t tos = v4 ? ip[1] : static_cast<uint8_t>(load_be16(ip) >> 4);
    if (length > set->min_tunnel_mtu()) {
        // Too big for some tunnel (checklist §2.10): an IPv4 DF=0 packet is fragmented for all;
        // otherwise the tunnels that fit get it and an SSM source hears of the smallest MTU once.
        if (v4 && (load_be16(ip + 6) & 0x4000) == 0) {
            return fragment_and_replicate(m, l2, length, tos, *set);
        }
        const IpAddress group =
            v4 ? IpAddress::v4_from_bytes(ip + 16) : IpAddress::v6_from_bytes(ip + 24);
        if (group.is_ssm()) send_packet_too_big(m, l2, length, set->min_tunnel_mtu());
    }
    rte_pktmbuf_adj(m, static_cast<uint16_t>(l2));
    if (m->pkt_len > length) rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - length));
    InnerPacket inner;
    inner.length = length;
    inner.tos = tos;
    inner.sum = inner_packet_sum(m, ip, length);
    counters_.multicast_in.add();
    count_flow(*set, length);
    fan_out(m, inner, *set);
}

void Worker::fragment_and_replicate(rte_mbuf* m, size_t l2, uint16_t length, uint8_t tos,
                                    const GatewaySet& set) {
    const uint8_t* ip = rte_pktmbuf_mtod_offset(m, const uint8_t*, l2);
    Ipv4Fragmenter fragmenter(ByteView(ip, length), set.min_tunnel_mtu());
    if (m->nb_segs != 1 || !fragmenter.valid()) return drop(m, DataplaneDrop::fragment_failed);
    counters_.multicast_in.add();
    count_flow(set, length);
    for (;;) {
        rte_mbuf* frag = rte_pktmbuf_alloc(shared_.packet_pool);
        if (frag == nullptr) {
            counters_.drop(DataplaneDrop::mbuf_exhausted);
            break;
        }
        auto* out = rte_pktmbuf_mtod(frag, uint8_t*);
        size_t frag_length = 0;
        if (!fragmenter.next(MutByteView(out, rte_pktmbuf_tailroom(frag)), frag_length)) {
            rte_pktmbuf_free(frag);
            break;
        }
        rte_pktmbuf_append(frag, static_cast<uint16_t>(frag_length));
        counters_.fragments.add();
        const InnerPacket inner{static_cast<uint16_t>(frag_length),
                                checksum_add(ByteView(out, frag_length)), tos};
        fan_out(frag, inner, set);
    }
    rte_pktmbuf_free(m);
}

void Worker::send_packet_too_big(rte_mbuf* m, size_t l2, uint16_t length, uint16_t mtu) {
    const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
    const ByteView original(frame + l2, length);
    const bool v4 = (original[0] >> 4) == 4;
    const IpAddress source = v4 ? IpAddress::v4_from_bytes(original.data() + 12)
                                : IpAddress::v6_from_bytes(original.data() + 8);
    const auto& relays = setup_.engine.relay_addresses;
    const auto relay = std::find_if(relays.begin(), relays.end(), [&](const IpAddress& a) {
        return a.family() == source.family();
    });
    if (relay == relays.end() || !too_big_limiter_.allow(source, steady_now())) return;
    rte_mbuf* reply = rte_pktmbuf_alloc(shared_.packet_pool);
    if (reply == nullptr) return counters_.drop(DataplaneDrop::mbuf_exhausted);
    auto* out = rte_pktmbuf_mtod(reply, uint8_t*);
    const MutByteView room(out, rte_pktmbuf_tailroom(reply));
    MacAddress router;
    std::memcpy(router.data(), frame + 6, 6);  // back toward the source: where it came from
    build_ethernet(room, router, link_->mac, v4 ? ethertype_ipv4 : ethertype_ipv6);
    const size_t n =
        build_packet_too_big(room.subspan(ethernet_header_size), *relay, original, mtu);
    if (n == 0) return drop(reply, DataplaneDrop::mbuf_exhausted);
    rte_pktmbuf_append(reply, static_cast<uint16_t>(ethernet_header_size + n));
    counters_.too_big_notices.add();
    link_tx_->send(reply);
}

void Worker::handle_amt(rte_mbuf* m, size_t l2) {
    const uint8_t* ip = rte_pktmbuf_mtod_offset(m, const uint8_t*, l2);
    UdpDatagram udp;
    ProtocolCounters& pc = responder_.counters();
    // One drop, one reason: what the codec or the protocol rejects is counted there only.
    if (ParseError e = parse_udp_datagram(ByteView(ip, m->data_len - l2), udp, true);
        e != ParseError::ok) {
        pc.malformed_input(e);
        return rte_pktmbuf_free(m);
    }
    MessageType type;
    if (ParseError e = peek_message_type(udp.payload, type); e != ParseError::ok) {
        pc.malformed_input(e);
        return rte_pktmbuf_free(m);
    }
    switch (type) {
        case MessageType::relay_discovery:
        case MessageType::request: {
            PendingHandshake& p = pending_[pending_count_];
            p.mbuf = m;
            std::memcpy(p.peer_mac.data(), rte_pktmbuf_mtod_offset(m, const uint8_t*, 6), 6);
            handshakes_[pending_count_] = {udp.src, udp.dst, udp.payload};
            if (++pending_count_ == burst_size) answer_handshakes(steady_now());
            return;
        }
        case MessageType::membership_update:
        case MessageType::teardown:
            if (rte_ring_enqueue(shared_.control_ring, m) != 0) {
                return drop(m, DataplaneDrop::control_ring_full);
            }
            counters_.control_to_ring.add();
            return;
        default:  // Advertisement, Query, Data: never reflected (checklist §2.1)
            pc.received[static_cast<size_t>(type)].add();
            pc.drop(DropReason::unexpected_message_type);
            return rte_pktmbuf_free(m);
    }
}

void Worker::answer_handshakes(Time now) {
    responder_.respond(std::span(handshakes_.data(), pending_count_), now, *this);
    for (uint16_t i = 0; i < pending_count_; ++i)
        rte_pktmbuf_free(pending_[i].mbuf);
    pending_count_ = 0;
}

void Worker::send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) {
    // Back to the MAC the message came from (its router, or the gateway itself on-link).
    MacAddress dst = shared_.next_hops.of(to.ip.family()).mac().value_or(MacAddress{});
    for (uint16_t i = 0; i < pending_count_; ++i) {
        if (handshakes_[i].src == to && handshakes_[i].dst == from) {
            dst = pending_[i].peer_mac;
            break;
        }
    }
    rte_mbuf* m = rte_pktmbuf_alloc(shared_.packet_pool);
    if (m == nullptr) return counters_.drop(DataplaneDrop::mbuf_exhausted);
    const size_t size = ethernet_header_size + ip_udp_header_size(to.ip.family()) + payload.size();
    auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(size)));
    if (out == nullptr) return drop(m, DataplaneDrop::mbuf_exhausted);
    build_ethernet(MutByteView(out, size), dst, setup_.downstream.mac,
                   to.ip.is_v4() ? ethertype_ipv4 : ethertype_ipv6);
    build_udp_datagram(MutByteView(out + ethernet_header_size, size - ethernet_header_size), from,
                       to, payload);
    tx_.send(m);
}

void Worker::answer_arp(rte_mbuf* m, size_t l2) {
    auto* frame = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* arp = frame + l2;
    // Any ARP from the IPv4 next hop (request or reply) tells us its MAC.
    const NextHop& hop = shared_.next_hops.v4;
    if (m->data_len >= l2 + arp_size && hop.ip() &&
        IpAddress::v4_from_bytes(arp + 14) == *hop.ip()) {
        MacAddress sender;
        std::memcpy(sender.data(), arp + 8, 6);
        shared_.next_hops.v4.learn(sender);
    }
    if (m->data_len >= l2 + arp_size && on_link(IpAddress::v4_from_bytes(arp + 14)))
        copy_to_control(m);
    if (m->data_len < l2 + arp_size || load_be16(arp) != 1 ||
        load_be16(arp + 2) != ethertype_ipv4 || load_be16(arp + 6) != RTE_ARP_OP_REQUEST ||
        !is_own_address(IpAddress::v4_from_bytes(arp + 24))) {
        return to_exception(m);
    }
    // Turn the request into the reply in place: we are the sender now, the asker the target.
    uint8_t own_ip[4];
    std::memcpy(own_ip, arp + 24, 4);
    std::memcpy(frame, frame + 6, 6);
    std::memcpy(frame + 6, link_->mac.data(), 6);
    store_be16(arp + 6, RTE_ARP_OP_REPLY);
    std::memcpy(arp + 18, arp + 8, 10);  // target hardware + protocol address = the asker
    std::memcpy(arp + 8, link_->mac.data(), 6);
    std::memcpy(arp + 14, own_ip, 4);
    counters_.arp_replies.add();
    link_tx_->send(m);
}

void Worker::answer_neighbor_solicitation(rte_mbuf* m, size_t l2, size_t icmp_offset) {
    const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
    const uint8_t* ip = frame + l2;
    const IpAddress asker = IpAddress::v6_from_bytes(ip + 8);
    if (asker.is_unspecified()) return to_exception(m);  // duplicate address detection
    const IpAddress target = IpAddress::v6_from_bytes(ip + icmp_offset + 8);
    MacAddress asker_mac;
    std::memcpy(asker_mac.data(), frame + 6, 6);

    rte_mbuf* reply = rte_pktmbuf_alloc(shared_.packet_pool);
    rte_pktmbuf_free(m);
    if (reply == nullptr) return counters_.drop(DataplaneDrop::mbuf_exhausted);
    constexpr size_t na_size = 32;  // NA (24) + Target Link-Layer Address option (8)
    constexpr size_t size = ethernet_header_size + ipv6_header_size + na_size;
    auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(reply, size));
    if (out == nullptr) return drop(reply, DataplaneDrop::mbuf_exhausted);
    build_ethernet(MutByteView(out, size), asker_mac, link_->mac, ethertype_ipv6);
    write_ipv6_header(MutByteView(out + ethernet_header_size, ipv6_header_size),
                      {.payload_length = na_size,
                       .next_header = ip_proto_icmpv6,
                       .hop_limit = 255,
                       .src = target,
                       .dst = asker});
    uint8_t* na = out + ethernet_header_size + ipv6_header_size;
    std::memset(na, 0, na_size);
    na[0] = icmpv6_neighbor_advertisement;
    na[4] = 0x60;  // Solicited + Override
    std::memcpy(na + 8, target.canonical16().data(), 16);
    na[24] = 2;  // Target Link-Layer Address
    na[25] = 1;
    std::memcpy(na + 26, link_->mac.data(), 6);
    const uint32_t pseudo = pseudo_header_sum(target, asker, ip_proto_icmpv6, na_size);
    store_be16(na + 2, checksum_finish(checksum_add(ByteView(na, na_size), pseudo)));
    counters_.nd_replies.add();
    link_tx_->send(reply);
}

}  // namespace amt
