#include "dataplane/dataplane.hpp"

#include <rte_launch.h>
#include <rte_lcore.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace amt {

namespace {
// Header mbufs carry only the outer headers (64 octets) plus headroom.
constexpr uint16_t header_data_room = RTE_PKTMBUF_HEADROOM + 128;
constexpr uint16_t packet_data_room = RTE_MBUF_DEFAULT_BUF_SIZE;

int worker_main(void* arg) {
    auto* ctx = static_cast<std::pair<Worker*, std::atomic<bool>*>*>(arg);
    ctx->first->run(*ctx->second);
    delete ctx;
    return 0;
}
uint32_t pool_size(uint64_t n) {  // 2^k - 1: a mempool's best size
    uint64_t size = 1023;
    while (size < n)
        size = size * 2 + 1;
    return static_cast<uint32_t>(std::min<uint64_t>(size, 16'777'215));
}

}  // namespace

PoolSizes size_pools(const DataplaneConfig& c, uint16_t ports, unsigned lcores) {
    const PortSetup port{};
    const uint64_t workers = c.workers;
    // Mempool caches: up to 1.5 × 256 mbufs each per lcore may sit there.
    const uint64_t caches = uint64_t{lcores} * 384;
    // Packet mbufs: every RX descriptor holds one; each worker buffers up to two TX bursts per
    // port; the control thread's replies and reports. Then the egress backlog (its input packets).
    const uint64_t rx =
        uint64_t{port.rx_descriptors} * (workers * ports + (c.exception_port ? 1 : 0));
    const uint64_t reserved = rx + workers * 3 * TxQueue::capacity + caches + 512;
    constexpr uint32_t default_backlog = 4096, min_backlog = 64;  // two RX bursts at least
    PoolSizes p{};
    if (c.egress_buffer_packets != 0)
        p.backlog_packets = c.egress_buffer_packets;
    else if (c.packet_mbufs == 0 || c.packet_mbufs < reserved)
        p.backlog_packets = default_backlog;
    else
        p.backlog_packets = static_cast<uint32_t>(std::clamp<uint64_t>(
            (c.packet_mbufs - reserved) / workers, min_backlog, default_backlog));
    const uint64_t packets_needed = reserved + workers * p.backlog_packets;
    if (c.packet_mbufs != 0 && c.packet_mbufs < packets_needed) {
        throw std::invalid_argument(
            "dataplane.packet_mbufs = " + std::to_string(c.packet_mbufs) + " cannot hold " +
            std::to_string(rx) + " RX descriptors, the TX buffers and caches (" +
            std::to_string(reserved - rx) + ") and an egress backlog of " +
            std::to_string(p.backlog_packets) + " packets per worker (ports.workers = " +
            std::to_string(workers) + ", dataplane.egress_buffer_packets): set " +
            "dataplane.packet_mbufs to at least " + std::to_string(packets_needed) +
            (c.egress_buffer_packets != 0 ? " or lower dataplane.egress_buffer_packets" : "") +
            ", or leave it out to size it from the queues");
    }
    // Every replica waiting in a TX ring holds a header; copies and replies use packet mbufs.
    p.packet_mbufs = c.packet_mbufs != 0 ? c.packet_mbufs
                                         : pool_size(packets_needed +
                                                     uint64_t{port.tx_descriptors} * (workers + 1) +
                                                     c.control_ring_size);
    // Header mbufs: a TX ring full of chained replicas (one header per descriptor at most),
    // the TX buffer and one bulk allocation per worker, and the caches.
    const uint64_t headers_needed =
        workers * (port.tx_descriptors + TxQueue::capacity + 32) + caches + 256;
    if (c.header_mbufs != 0 && c.header_mbufs < headers_needed) {
        throw std::invalid_argument(
            "dataplane.header_mbufs = " + std::to_string(c.header_mbufs) +
            " cannot cover the TX rings of ports.workers = " + std::to_string(workers) + " (" +
            std::to_string(port.tx_descriptors) + " descriptors each, plus TX buffers and " +
            "per-lcore caches): set dataplane.header_mbufs to at least " +
            std::to_string(headers_needed) + ", or leave it out to size it from the queues");
    }
    p.header_mbufs = c.header_mbufs != 0 ? c.header_mbufs : pool_size(headers_needed);
    return p;
}

Dataplane::Dataplane(const DataplaneConfig& config)
    : config_(config), secrets_(std::chrono::steady_clock::now().time_since_epoch()) {
    const uint16_t port_id = Port::id_by_name(config.port);
    const bool separate_upstream =
        !config.upstream_port.empty() && config.upstream_port != config.port;
    const uint16_t upstream_id =
        separate_upstream ? Port::id_by_name(config.upstream_port) : port_id;
    pools_ = size_pools(config, separate_upstream ? 2 : 1, rte_lcore_count());
    packet_pool_ = std::make_unique<Mempool>("amt_packets", pools_.packet_mbufs, packet_data_room);
    header_pool_ = std::make_unique<Mempool>("amt_headers", pools_.header_mbufs, header_data_room);
    // One RX and one TX queue per worker on every port, plus a TX queue for the control thread;
    // a port with exactly one queue per worker (net_af_xdp on a single-channel interface) has the
    // control thread share the last worker's queue under a lock.
    uint16_t tx_queues = static_cast<uint16_t>(config.workers + 1);
    for (uint16_t id : {port_id, upstream_id}) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(id, &info) == 0 && info.max_tx_queues == config.workers)
            tx_queues = config.workers;
    }
    control_shares_tx_ = tx_queues == config.workers;
    rte_spinlock_t* shared_tx = control_shares_tx_ ? &shared_tx_lock_ : nullptr;
    const PortSetup setup{.rx_queues = config.workers, .tx_queues = tx_queues};
    port_ = std::make_unique<Port>(port_id, setup, packet_pool_->get());
    if (separate_upstream) {
        upstream_port_ = std::make_unique<Port>(upstream_id, setup, packet_pool_->get());
    }
    std::optional<uint16_t> exception_id;
    if (config.exception_port) {
        exception_id = Port::id_by_name(*config.exception_port);
        exception_port_ = std::make_unique<Port>(
            *exception_id, PortSetup{.rx_queues = 1, .tx_queues = setup.tx_queues, .rss = false},
            packet_pool_->get());
        // The kernel behind a tap receives frames addressed to the NIC (the relay answers ARP/ND
        // for its addresses with the NIC's MAC): a tap with its own random MAC would drop them as
        // not its own.
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(*exception_id, &info) == 0 && info.driver_name != nullptr &&
            std::string(info.driver_name) == "net_tap") {
            rte_ether_addr mac{};
            std::copy(port_->mac().begin(), port_->mac().end(), mac.addr_bytes);
            if (int rc = rte_eth_dev_default_mac_addr_set(*exception_id, &mac); rc != 0)
                throw std::runtime_error("ports.exception " + *config.exception_port +
                                         ": cannot take the downstream port's MAC address (" +
                                         std::to_string(rc) + ")");
        }
    }
    rcu_ = std::make_unique<Rcu>(config.workers);
    flows_ = std::make_unique<FlowTable>("amt_flows", config.flow_table_size, *rcu_);
    if (config.count_flows) {
        flow_counters_ = std::make_unique<FlowCounters>(config.flow_table_size, config.workers);
        flows_->set_counters(flow_counters_.get());
    }
    control_ring_ = std::make_unique<Ring>("amt_control", config.control_ring_size);

    // The egress backlog in octets of link time: the link's rate as configured, else as the
    // port reports it (virtual devices report none, or a nominal 10 Gb/s).
    double gbps = config.egress_link_gbps;
    if (gbps <= 0) {
        rte_eth_link link{};
        gbps = rte_eth_link_get_nowait(port_id, &link) == 0 && link.link_speed != 0 &&
                       link.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN
                   ? link.link_speed / 1000.0
                   : 10.0;
    }
    egress_.octets = static_cast<uint64_t>(config.egress_buffer_us * gbps * 1000 / 8);
    egress_.packets = pools_.backlog_packets;
    // A walk that has not moved for twice the buffer's time is behind a link that stopped.
    egress_.stall_us = std::max<uint32_t>(2 * config.egress_buffer_us, 10'000);

    ReplicationPolicy replication = config.replication;
    replication.chaining = replication.chaining && port_->multi_segment_tx();
    // Addresses answered for ARP / ND: the relay's (and anycast) downstream, the upstream ones
    // upstream; on a single port, all of them.
    std::vector<IpAddress> downstream_addresses = config.engine.relay_addresses;
    downstream_addresses.insert(downstream_addresses.end(),
                                config.engine.discovery_addresses.begin(),
                                config.engine.discovery_addresses.end());
    if (!separate_upstream) {
        downstream_addresses.insert(downstream_addresses.end(), config.upstream_addresses.begin(),
                                    config.upstream_addresses.end());
    }
    next_hops_.v4.configure(config.next_hop_v4, config.next_hop_v4_mac);
    next_hops_.v6.configure(config.next_hop_v6, config.next_hop_v6_mac);
    const TunnelDefaults tunnels{.src_mac = port_->mac(),
                                 .ttl = config.outer_ttl,
                                 .pmtu = config.pmtu != 0 ? config.pmtu : port_->mtu()};
    ControlSetup control{.port = port_id,
                         .mac = port_->mac(),
                         .own_addresses = config.engine.relay_addresses,
                         .tx_queue = static_cast<uint16_t>(tx_queues - 1),
                         .tx_lock = shared_tx,
                         .upstream_port = upstream_id,
                         .upstream_mac = upstream_port().mac(),
                         .exception_port = exception_id,
                         .exception_rx_queues = static_cast<uint16_t>(
                             exception_port_ ? exception_port_->rx_queues() : 1),
                         .on_link_prefixes = config.downstream_prefixes,
                         .max_neighbors = config.max_neighbors,
                         .neighbor_timers = config.neighbor_timers};
    for (const IpAddress& a : config.upstream_addresses) {
        if (a.is_v4()) control.upstream.source_v4 = a;
    }
    // Not a global upstream address: routers drop MLD reports that are not from link-local.
    control.upstream.source_v6 =
        mld_report_source(config.upstream_addresses, upstream_port().mac());
    control.upstream.robustness = config.engine.robustness;
    control_ = std::make_unique<ControlThread>(control, config.engine, secrets_, *flows_,
                                               control_ring_->get(), tunnels, next_hops_,
                                               packet_pool_->get(), control_counters_);
    // The workers answer Requests from the control thread's reply budget: one for the relay, so
    // limits.replies_per_second is the relay's total, and a reload reaches every worker.
    const WorkerShared shared{*flows_,
                              *rcu_,
                              secrets_,
                              control_ring_->get(),
                              header_pool_->get(),
                              packet_pool_->get(),
                              next_hops_,
                              control_->engine().reply_guard()};
    // RX queue q goes to worker q % workers (a port may have more queues than workers).
    auto queues_of = [&](const Port& p, uint16_t worker) {
        std::vector<uint16_t> queues;
        for (uint16_t q = worker; q < p.rx_queues();
             q = static_cast<uint16_t>(q + config.workers)) {
            queues.push_back(q);
        }
        return queues;
    };
    for (uint16_t i = 0; i < config.workers; ++i) {
        const bool last = i + 1 == config.workers;
        WorkerSetup w{.downstream = {port_id, queues_of(*port_, i), i, last ? shared_tx : nullptr,
                                     port_->mac(), downstream_addresses},
                      .source_prefixes = config.upstream_source_prefixes,
                      .on_link_prefixes = config.downstream_prefixes,
                      .exception_port = exception_id,
                      .exception_tx_queue = i,
                      .rcu_thread_id = i,
                      .decrement_ttl = config.decrement_ttl,
                      .replication = replication,
                      .egress = egress_,
                      .engine = config.engine};
        if (separate_upstream) {
            w.upstream = WorkerLink{
                upstream_id,           queues_of(*upstream_port_, i), i, last ? shared_tx : nullptr,
                upstream_port_->mac(), config.upstream_addresses};
        }
        workers_.push_back(std::make_unique<Worker>(w, shared));
    }
    control_->on_refusing_change = [this](bool refusing) {
        for (auto& w : workers_)
            w->set_refusing_new_endpoints(refusing);
    };
}

Dataplane::~Dataplane() {
    stop_workers();
    workers_.clear();  // before control_: their responders use its engine's reply guard
}

void Dataplane::start_workers() {
    stop_workers_ = false;
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (auto& w : workers_) {
        auto* ctx = new std::pair<Worker*, std::atomic<bool>*>(w.get(), &stop_workers_);
        if (lcore < RTE_MAX_LCORE && rte_eal_remote_launch(worker_main, ctx, lcore) == 0) {
            lcores_.push_back(lcore);
            lcore = rte_get_next_lcore(lcore, 1, 0);
        } else {
            threads_.emplace_back([ctx] { worker_main(ctx); });
        }
    }
}

void Dataplane::stop_workers() {
    stop_workers_ = true;
    for (unsigned lcore : lcores_)
        rte_eal_wait_lcore(lcore);
    for (std::thread& t : threads_)
        t.join();
    lcores_.clear();
    threads_.clear();
}

}  // namespace amt
