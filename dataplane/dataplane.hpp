// The relay's dataplane assembled: mbuf pools, the NIC port (and the TAP exception port), the
// RCU variable and flow table, the control ring, one Worker per RX queue and the ControlThread.
// The EAL must be initialised first (Eal). Workers run on EAL worker lcores when there are
// enough, otherwise on plain threads (tests and small machines); the control thread runs on the
// caller's thread (run_control) or is stepped by tests (control().poll_once).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/control_thread.hpp"
#include "dataplane/eal.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/worker.hpp"

namespace amt {

struct DataplaneConfig {
    std::string port;           // downstream ethdev (PCI address or vdev name): gateways' side
    std::string upstream_port;  // sources' side; empty: the same port as downstream
    std::vector<IpAddress> upstream_addresses;  // the relay's addresses on the upstream link
    // Sources whose native multicast is accepted (required with one port; see Worker).
    std::vector<IpPrefix> upstream_source_prefixes;
    std::optional<std::string> exception_port;  // net_tap vdev toward the kernel
    uint16_t workers = 1;                       // = RX queues
    // 0: sized from the queues (see size_pools); a number too small to work stops the start.
    uint32_t packet_mbufs = 0;
    uint32_t header_mbufs = 0;
    // Egress backlog per worker (issue 13): bursts up to this much link time wait for the TX
    // queue instead of being dropped; beyond it native multicast is refused whole.
    uint32_t egress_buffer_us = 50'000;
    uint32_t egress_buffer_packets = 0;  // fan-outs waiting; 0: 4,096, or what packet_mbufs leaves
    double egress_link_gbps = 0;         // 0: the port's link speed (10 when it reports none)
    uint32_t flow_table_size = 65536;
    uint32_t control_ring_size = 4096;
    // The downstream router of each family: an IP resolved with ARP / ND, or a static MAC.
    std::optional<IpAddress> next_hop_v4;
    std::optional<MacAddress> next_hop_v4_mac;
    std::optional<IpAddress> next_hop_v6;
    std::optional<MacAddress> next_hop_v6_mac;
    // Directly connected prefixes of the downstream link: gateways there get replicas at their
    // own MAC (ARP / ND), not the next hop's.
    std::vector<IpPrefix> downstream_prefixes;
    uint32_t max_neighbors = 1024;
    NeighborTimers neighbor_timers;
    uint16_t pmtu = 0;  // 0: the port's MTU
    uint8_t outer_ttl = 64;
    bool decrement_ttl = true;
    ReplicationPolicy replication;
    EngineConfig engine;
    // Per-flow packet/octet counters for per-tunnel accounting (on with ipfix.collector).
    bool count_flows = false;
};

// The mbuf pools and the egress backlog, sized from the queues that hold mbufs.
struct PoolSizes {
    uint32_t packet_mbufs;
    uint32_t header_mbufs;
    uint32_t backlog_packets;  // per worker
};
// Throws std::invalid_argument naming the keys (and the value that would work) when an explicit
// pool cannot hold what the queues, the workers and the egress backlog need.
PoolSizes size_pools(const DataplaneConfig& config, uint16_t ports_with_queues, unsigned lcores);

class Dataplane {
  public:
    explicit Dataplane(const DataplaneConfig& config);
    ~Dataplane();
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    void start_workers();
    void stop_workers();
    void run_control(const std::atomic<bool>& stop) { control_->run(stop); }

    Worker& worker(size_t i) { return *workers_[i]; }
    size_t worker_count() const { return workers_.size(); }
    ControlThread& control() { return *control_; }
    FlowTable& flows() { return *flows_; }
    Rcu& rcu() { return *rcu_; }
    SecretStore& secrets() { return secrets_; }
    NextHops& next_hops() { return next_hops_; }
    const Port& port() const { return *port_; }
    const PoolSizes& pools() const { return pools_; }
    const EgressBuffer& egress() const { return egress_; }
    const Port& upstream_port() const { return upstream_port_ ? *upstream_port_ : *port_; }
    const Port* exception_port() const { return exception_port_.get(); }
    WorkerCounters& control_counters() { return control_counters_; }
    // The control thread sends on the last worker's TX queue (the port has one per worker).
    bool control_shares_tx_queue() const { return control_shares_tx_; }

  private:
    DataplaneConfig config_;
    PoolSizes pools_{};
    EgressBuffer egress_;
    SecretStore secrets_;
    NextHops next_hops_;
    std::unique_ptr<Mempool> packet_pool_;
    std::unique_ptr<Mempool> header_pool_;
    std::unique_ptr<Port> port_;
    std::unique_ptr<Port> upstream_port_;  // only when it is another port
    std::unique_ptr<Port> exception_port_;
    std::unique_ptr<Rcu> rcu_;
    std::unique_ptr<FlowCounters> flow_counters_;  // before flows_, which gives slots back
    std::unique_ptr<FlowTable> flows_;
    std::unique_ptr<Ring> control_ring_;
    WorkerCounters control_counters_;
    bool control_shares_tx_ = false;
    rte_spinlock_t shared_tx_lock_ = RTE_SPINLOCK_INITIALIZER;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::unique_ptr<ControlThread> control_;
    std::atomic<bool> stop_workers_{false};
    std::vector<std::thread> threads_;
    std::vector<unsigned> lcores_;
};

}  // namespace amt
