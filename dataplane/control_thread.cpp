#include "dataplane/control_thread.hpp"

#include <rte_ethdev.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <thread>

namespace amt {

namespace {
// Gateways see the relay's MLD querier at the same link-local address routers see its reports.
EngineConfig with_query_source(EngineConfig c, const UpstreamConfig& upstream) {
    if (upstream.source_v6.is_v6() && upstream.source_v6.is_link_local_unicast())
        c.query_source_v6 = upstream.source_v6;
    return c;
}

NeighborConfig neighbor_config(const ControlSetup& setup) {
    return {.prefixes = setup.on_link_prefixes,
            .own_addresses = setup.own_addresses,
            .mac = setup.mac,
            .max_entries = setup.max_neighbors,
            .timers = setup.neighbor_timers};
}
}  // namespace

ControlThread::ControlThread(const ControlSetup& setup, const EngineConfig& engine_config,
                             SecretStore& secrets, FlowTable& flows, rte_ring* control_ring,
                             const TunnelDefaults& tunnels, NextHops& next_hops, rte_mempool* pool,
                             WorkerCounters& counters)
    : setup_(setup),
      engine_(with_query_source(engine_config, setup.upstream), secrets, *this),
      upstream_(setup.upstream, *this),
      flows_(flows),
      neighbors_(neighbor_config(setup), *this),
      publisher_(flows, tunnels, next_hops, neighbors_.enabled() ? &neighbors_ : nullptr),
      ring_(control_ring),
      tx_(setup.port, setup.tx_queue, counters, setup.tx_lock),
      next_hops_(next_hops),
      pool_(pool) {
    if (setup.upstream_port != setup.port)
        upstream_tx_.emplace(setup.upstream_port, setup.tx_queue, counters, setup.tx_lock);
    next_hop_generation_ = {next_hops.v4.generation(), next_hops.v6.generation()};
}

void ControlThread::resolve_next_hops(Time now) {
    for (const Family family : {Family::ipv4, Family::ipv6}) {
        const size_t i = family == Family::ipv4 ? 0 : 1;
        NextHop& hop = next_hops_.of(family);
        // A new MAC: rewrite and republish every tunnel of the family.
        if (const uint64_t g = hop.generation(); g != next_hop_generation_[i]) {
            next_hop_generation_[i] = g;
            publisher_.next_hop_changed(family);
        }
        if (!hop.ip() || hop.is_static()) continue;
        const Time wait = hop.mac() ? setup_.resolve_refresh : setup_.resolve_retry;
        if (now - next_hop_asked_[i] < wait) continue;
        const auto own = std::find_if(setup_.own_addresses.begin(), setup_.own_addresses.end(),
                                      [&](const IpAddress& a) { return a.family() == family; });
        if (own == setup_.own_addresses.end()) continue;
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        if (m == nullptr) continue;
        const MutByteView room(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m));
        const size_t n = family == Family::ipv4
                             ? build_arp_request(room, setup_.mac, *own, *hop.ip())
                             : build_neighbor_solicitation(room, setup_.mac, *own, *hop.ip());
        rte_pktmbuf_append(m, static_cast<uint16_t>(n));
        tx_.send(m);
        next_hop_asked_[i] = now;
    }
}

size_t ControlThread::drain_control_ring(Time now) {
    std::array<void*, 64> objs;
    const unsigned n = rte_ring_dequeue_burst(ring_, objs.data(), objs.size(), nullptr);
    if (n == 0) return 0;
    std::array<Datagram, 64> batch;
    size_t count = 0;
    for (unsigned i = 0; i < n; ++i) {
        auto* m = static_cast<rte_mbuf*>(objs[i]);
        const auto* frame = rte_pktmbuf_mtod(m, const uint8_t*);
        EthernetHeader eth;
        if (parse_ethernet(ByteView(frame, m->data_len), eth) != ParseError::ok) continue;
        if (NeighborTable::is_neighbor_message(ByteView(frame, m->data_len))) {
            neighbors_.receive(ByteView(frame, m->data_len), now);
            continue;
        }
        const ByteView ip(frame + eth.size, m->data_len - eth.size);
        UdpDatagram udp;
        // Workers queue AMT Updates/Teardowns (lengths and UDP checksum already checked) and
        // the upstream routers' IGMP / MLD queries.
        if (parse_udp_datagram(ip, udp, false) == ParseError::ok) {
            batch[count++] = {udp.src, udp.dst, udp.payload};
        } else if (ParseError e = upstream_.handle_query(ip, now); e != ParseError::ok) {
            query_counters_.malformed_input(e);  // was dropped uncounted (issue 18, item 5)
        }
    }
    engine_.handle_batch(std::span(batch.data(), count), now);
    for (unsigned i = 0; i < n; ++i)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[i]));
    return n;
}

void ControlThread::send_neighbor_frame(ByteView frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) return;
    auto* out =
        reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())));
    if (out == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    std::memcpy(out, frame.data(), frame.size());
    tx_.send(m);
}

// Tunnels toward gateways whose MAC appeared, changed or went are rewritten; the publisher
// batches them with the membership edits.
void ControlThread::apply_neighbor_changes() {
    if (!neighbors_.changed()) return;
    for (const IpAddress& gateway : neighbors_.take_changes())
        publisher_.neighbor_changed(gateway);
}

void ControlThread::send_upstream(Family family, ByteView datagram) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) return;
    const size_t size = ethernet_header_size + datagram.size();
    auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(size)));
    if (out == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    // Multicast MAC of the report's destination (224.0.0.22 / ff02::16): RFC 1112 §6.4, RFC 2464
    // §7.
    MacAddress dst;
    if (family == Family::ipv4) {
        dst = {0x01,         0x00,        0x5e, static_cast<uint8_t>(datagram[17] & 0x7f),
               datagram[18], datagram[19]};
    } else {
        dst = {0x33, 0x33, datagram[36], datagram[37], datagram[38], datagram[39]};
    }
    build_ethernet(MutByteView(out, size), dst, setup_.upstream_mac,
                   family == Family::ipv4 ? ethertype_ipv4 : ethertype_ipv6);
    std::memcpy(out + ethernet_header_size, datagram.data(), datagram.size());
    (upstream_tx_ ? *upstream_tx_ : tx_).send(m);
}

void ControlThread::leave_upstream() {
    upstream_.leave_all();
    tx_.flush();
    if (upstream_tx_) upstream_tx_->flush();
}

size_t ControlThread::forward_exception_traffic() {
    if (!setup_.exception_port) return 0;
    std::array<rte_mbuf*, 32> pkts;
    size_t total = 0;
    for (uint16_t q = 0; q < setup_.exception_rx_queues; ++q) {
        const uint16_t n = rte_eth_rx_burst(*setup_.exception_port, q, pkts.data(), pkts.size());
        for (uint16_t i = 0; i < n; ++i)
            tx_.send(pkts[i]);
        total += n;
    }
    return total;
}

size_t ControlThread::restore_state(const RelayState& state, Time now) {
    now_ = now;
    neighbors_.set_time(now);
    const size_t restored = engine_.restore_state(state, now);
    publisher_.publish();
    last_publish_ = now;
    tx_.flush();
    if (upstream_tx_) upstream_tx_->flush();
    update_gauges();
    return restored;
}

size_t ControlThread::poll_once(Time now) {
    now_ = now;
    neighbors_.set_time(now);
    size_t work = drain_control_ring(now);
    work += forward_exception_traffic();
    if (now - last_timers_ >= setup_.timer_interval) {
        engine_.advance(now);
        if (ledger_) ledger_->advance(now);
        upstream_.advance(now);
        resolve_next_hops(now);
        if (neighbors_.enabled()) neighbors_.advance(now);
        update_gauges();
        last_timers_ = now;
    }
    apply_neighbor_changes();
    if (publisher_.dirty() && now - last_publish_ >= setup_.publish_interval) {
        work += publisher_.publish();
        last_publish_ = now;
    }
    flows_.reclaim();
    tx_.flush();
    if (upstream_tx_) upstream_tx_->flush();
    const bool refusing = engine_.refusing_new_endpoints();
    if (refusing != refusing_) {
        refusing_ = refusing;
        if (on_refusing_change) on_refusing_change(refusing);
    }
    return work;
}

void ControlThread::start_accounting(SessionSink& sink, Time active_timeout, Time wall_offset) {
    ledger_.emplace(publisher_, sink, active_timeout, wall_offset);
}

void ControlThread::stop_accounting(Time now) {
    if (ledger_) ledger_->stop(now);
}

void ControlThread::update_gauges() {
    const auto set = [](std::atomic<uint64_t>& g, uint64_t v) {
        g.store(v, std::memory_order_relaxed);
    };
    const MembershipDb& db = engine_.memberships();
    set(gauges_.endpoints, db.endpoint_count());
    set(gauges_.max_endpoints, engine_.config().limits.max_endpoints);
    set(gauges_.groups, db.group_count());
    set(gauges_.flows, publisher_.flows());
    set(gauges_.upstream_groups, upstream_.groups());
    set(gauges_.upstream_reports, upstream_.reports_sent());
    set(gauges_.secret_rotations, engine_.secret_rotations());
    set(gauges_.expired_endpoints, engine_.expired_endpoints());
    set(gauges_.publish_failures, publisher_.publish_failures());
    set(gauges_.flows_unpublished, publisher_.unpublished());
    set(gauges_.accounting_sessions, ledger_ ? ledger_->sessions() : 0);
    gauges_.draining.store(engine_.draining(), std::memory_order_relaxed);
    gauges_.refusing.store(engine_.refusing_new_endpoints(), std::memory_order_relaxed);
}

void ControlThread::run(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
        const Time now = std::chrono::steady_clock::now().time_since_epoch();
        // Idle: yield the core for a moment; 50 µs is far below the 1 ms publish batch.
        if (poll_once(now) == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

void ControlThread::send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView) {
    // The engine answers Discovery and Request only when it receives them itself; in the
    // dataplane the workers answer those, so nothing reaches here.
}

}  // namespace amt
