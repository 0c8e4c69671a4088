#include "dataplane/dataplane.hpp"

#include <rte_launch.h>
#include <rte_lcore.h>

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
}  // namespace

Dataplane::Dataplane(const DataplaneConfig& config)
    : config_(config), secrets_(std::chrono::steady_clock::now().time_since_epoch()) {
    const uint16_t port_id = Port::id_by_name(config.port);
    const bool separate_upstream =
        !config.upstream_port.empty() && config.upstream_port != config.port;
    const uint16_t upstream_id =
        separate_upstream ? Port::id_by_name(config.upstream_port) : port_id;
    packet_pool_ = std::make_unique<Mempool>("amt_packets", config.packet_mbufs, packet_data_room);
    header_pool_ = std::make_unique<Mempool>("amt_headers", config.header_mbufs, header_data_room);
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
