// The control thread: drains the control ring (Updates and Teardowns the workers passed on),
// runs the protocol engine, applies its table edits in batches through the FlowPublisher, runs
// the engine's timers and secret rotation, reclaims what RCU says the workers no longer use, and
// carries exception-path traffic from the kernel (TAP) back out of the NIC.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <functional>
#include <optional>

#include "controlplane/relay_engine.hpp"
#include "controlplane/session_ledger.hpp"
#include "controlplane/upstream_proxy.hpp"
#include "dataplane/flow_publisher.hpp"
#include "dataplane/neighbor_table.hpp"
#include "dataplane/next_hops.hpp"
#include "dataplane/tx_queue.hpp"

namespace amt {

struct ControlSetup {
    uint16_t port = 0;
    MacAddress mac{};                      // the port's address (ARP / NS we send)
    std::vector<IpAddress> own_addresses;  // the relay's unicast addresses
    uint16_t tx_queue = 0;                 // the control thread's own TX queue on each port
    rte_spinlock_t* tx_lock = nullptr;     // set when it shares tx_queue with the last worker
    uint16_t upstream_port = 0;            // = port when the relay has a single port
    MacAddress upstream_mac{};
    UpstreamConfig upstream;
    std::optional<uint16_t> exception_port;
    uint16_t exception_rx_queues = 1;  // all polled: the kernel picks one per flow (net_tap)
    Time publish_interval = std::chrono::milliseconds(1);
    Time timer_interval = std::chrono::milliseconds(100);
    Time resolve_retry = std::chrono::seconds(1);     // next hop unresolved: ask every second
    Time resolve_refresh = std::chrono::seconds(30);  // resolved: ask again now and then
    // Gateways on the downstream link (downstream.prefixes) get their own MAC, resolved here.
    std::vector<IpPrefix> on_link_prefixes;
    size_t max_neighbors = 1024;
    NeighborTimers neighbor_timers;
};

// What the control thread owns, copied every timer tick for readers on other threads (the metrics
// exporter): relaxed atomics, so a scrape never takes a lock the control thread could wait on.
struct ControlGauges {
    std::atomic<uint64_t> endpoints{0};
    std::atomic<uint64_t> max_endpoints{0};
    std::atomic<uint64_t> groups{0};  // distinct groups with at least one member
    std::atomic<uint64_t> flows{0};   // (S,G) and (*,G) forwarding entries
    std::atomic<uint64_t> upstream_groups{0};
    std::atomic<uint64_t> upstream_reports{0};
    std::atomic<uint64_t> secret_rotations{0};
    std::atomic<uint64_t> expired_endpoints{0};
    std::atomic<uint64_t> publish_failures{0};
    std::atomic<uint64_t> flows_unpublished{0};  // table full: not forwarding yet
    std::atomic<bool> draining{false};
    std::atomic<bool> refusing{false};  // L flag set: draining or at capacity
    // Per-tunnel accounting (ipfix.collector): sessions open.
    std::atomic<uint64_t> accounting_sessions{0};
};

class ControlThread : private EngineSink, private UpstreamSink, private NeighborSink {
  public:
    ControlThread(const ControlSetup& setup, const EngineConfig& engine_config,
                  SecretStore& secrets, FlowTable& flows, rte_ring* control_ring,
                  const TunnelDefaults& tunnels, NextHops& next_hops, rte_mempool* pool,
                  WorkerCounters& counters);

    // One iteration; returns how much work it did (0 = idle).
    size_t poll_once(Time now);
    void run(const std::atomic<bool>& stop);

    RelayEngine& engine() { return engine_; }
    UpstreamProxy& upstream() { return upstream_; }
    // Hitless restart, before the workers start: the saved endpoints into the engine, their
    // flows published and the upstream joins sent now, not at the first poll.
    size_t restore_state(const RelayState& state, Time now);
    // Graceful stop (checklist §2.15): leave every group upstream, now.
    void leave_upstream();
    // Per-tunnel accounting (issue 15): sessions from the engine's flow edits, counted from the
    // flow table's FlowCounters, go to `sink`. Before the first poll.
    void start_accounting(SessionSink& sink, Time active_timeout, Time wall_offset);
    // The relay stops: every session ends now (after the workers have stopped).
    void stop_accounting(Time now);
    const SessionLedger* ledger() const { return ledger_ ? &*ledger_ : nullptr; }
    FlowPublisher& publisher() { return publisher_; }
    const NeighborTable& neighbors() const { return neighbors_; }
    const ControlGauges& gauges() const { return gauges_; }
    // Malformed IGMP/MLD queries from the upstream routers, by ParseError.
    const ProtocolCounters& query_counters() const { return query_counters_; }
    // Refreshes gauges() now (also done every timer tick).
    void update_gauges();
    // Called with each merged upstream join (true) / leave (false): the upstream proxy's input.
    std::function<void(const FlowKey&, bool)> on_upstream_change;
    // Called when the relay starts or stops refusing new endpoints (L flag for the workers).
    std::function<void(bool)> on_refusing_change;

  private:
    void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) override;
    void flow_edit(const FlowEdit& edit) override {
        if (ledger_) ledger_->flow_edit(edit, now_);  // first: a deleted flow's counts go next
        publisher_.apply(edit);
    }
    void upstream_change(const FlowKey& key, bool join) override {
        upstream_.change(key, join, now_);
        if (on_upstream_change) on_upstream_change(key, join);
    }
    void send_upstream(Family family, ByteView datagram) override;
    void send_neighbor_frame(ByteView frame) override;
    void apply_neighbor_changes();
    size_t drain_control_ring(Time now);
    size_t forward_exception_traffic();
    void resolve_next_hops(Time now);

    ControlSetup setup_;
    RelayEngine engine_;
    UpstreamProxy upstream_;
    FlowTable& flows_;
    NeighborTable neighbors_;  // before publisher_, which uses it
    FlowPublisher publisher_;
    rte_ring* ring_;
    TxQueue tx_;
    std::optional<TxQueue> upstream_tx_;  // when upstream is a port of its own
    NextHops& next_hops_;
    rte_mempool* pool_;
    std::array<uint64_t, 2> next_hop_generation_{};  // v4, v6 as last seen
    std::array<Time, 2> next_hop_asked_{};
    Time now_{};
    Time last_publish_{};
    Time last_timers_{};
    bool refusing_ = false;
    ControlGauges gauges_;
    ProtocolCounters query_counters_;
    std::optional<SessionLedger> ledger_;
};

}  // namespace amt
