// The control thread's side of the forwarding table. It keeps each flow's member list (the
// engine's FlowEdits applied in order) and, once per batch (about 1 ms), publishes a new
// immutable GatewaySet for every flow that changed: a storm of Updates costs one set per touched
// flow and one RCU grace period, never a rebuild of the whole table. A big flow's set shares its
// unchanged chunks with the previous one, so a publish costs the change, not the members.
#pragma once

#include <chrono>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "controlplane/latency_histogram.hpp"
#include "controlplane/membership_db.hpp"
#include "dataplane/endpoint_positions.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/gateway_set.hpp"
#include "dataplane/neighbor_table.hpp"
#include "dataplane/next_hops.hpp"

namespace amt {

// How tunnel headers are made: the port's MAC, outer TTL and path MTU. The destination MAC is
// the gateway's own for a gateway on the downstream link (NeighborTable), else the next hop's of
// the tunnel's family (NextHops).
struct TunnelDefaults {
    MacAddress src_mac{};
    uint8_t ttl = 64;
    uint16_t pmtu = 1500;
};

class FlowPublisher : public FlowCountSource {
  public:
    FlowPublisher(FlowTable& table, const TunnelDefaults& defaults, const NextHops& next_hops,
                  NeighborTable* neighbors = nullptr);

    void apply(const FlowEdit& edit);
    // Rewrites the destination MAC of every tunnel of `family` (the next hop was resolved or
    // changed) and republishes every flow. Tunnels of a family whose next hop is unresolved are
    // kept but not published: nothing leaves toward an unknown MAC.
    void next_hop_changed(Family family);
    // The same for the tunnels toward one on-link gateway whose MAC appeared, changed or went.
    void neighbor_changed(const IpAddress& gateway);
    // Publishes every changed flow; returns how many were published or removed.
    size_t publish();
    bool dirty() const { return !dirty_.empty() || retry_due(); }
    size_t flows() const { return flows_.size(); }
    // Flows that found the table full (counted once each until they are published).
    size_t publish_failures() const { return failures_; }
    // Flows with members that are not in the table now: they forward nothing until a deleted
    // flow's slot is freed, and are then published without waiting for a change of their own.
    size_t unpublished() const { return unpublished_.size(); }
    bool forwarding(const FlowKey& key) const {
        return table_.find(make_flow_hash_key(key)) != nullptr;
    }
    // Age of a batch's oldest edit when the batch is published (edit → visible to workers).
    const LatencyHistogram& publish_latency() const { return publish_latency_; }
    // What the workers forwarded on `key` since it was first published (the table's
    // FlowCounters; zeros when they are off or the flow is not in the table yet).
    FlowCount flow_count(const FlowKey& key) const override;
    // Every flow with its member count (the operator's view; control thread only).
    template <typename Fn>
    void for_each_flow(Fn&& fn) const {
        for (const auto& [key, members] : flows_)
            fn(key, static_cast<size_t>(members.tunnels.size()));
    }

  private:
    struct Members {
        GatewayList tunnels;         // chunks shared with the published set (issue 17)
        EndpointPositions position;  // endpoint → index in tunnels
        uint32_t unresolved = 0;     // tunnels whose destination MAC is not known yet
        uint32_t counter_slot = FlowCounters::no_slot;  // given at its first publish
        FlowCount counter_origin;                       // the slot's value then
    };
    void give_counter_slot(Members& m);

    FlowTable& table_;
    TunnelDefaults defaults_;
    const NextHops& next_hops_;
    std::unordered_map<FlowKey, Members> flows_;
    void mark_dirty(const FlowKey& key);
    bool retry_due() const { return !unpublished_.empty() && table_.freed_slots() != freed_seen_; }
    // On-link tunnels: which flows hold tunnels toward each gateway (how many), so that a
    // neighbour change touches only those flows.
    NeighborTable* neighbors_;
    std::unordered_map<IpAddress, std::unordered_map<FlowKey, uint32_t>> on_link_;
    MacAddress destination_mac(const IpAddress& gateway, const FlowKey& key);
    void forget_tunnel(const TunnelHeader& t, const FlowKey& key);
    // Writes `mac` into each tunnel `matches(t)` selects, copying only the chunks that change.
    template <typename Match>
    static void set_destination_mac(Members& m, const MacAddress& mac, Match&& matches);

    std::unordered_set<FlowKey> dirty_;
    std::chrono::steady_clock::time_point first_dirty_{};
    size_t failures_ = 0;
    std::unordered_set<FlowKey> unpublished_;  // table full when they were last tried
    uint64_t freed_seen_ = 0;                  // table_.freed_slots() at the last retry
    LatencyHistogram publish_latency_;
};

}  // namespace amt
