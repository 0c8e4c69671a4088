// The control thread's side of the forwarding table. It keeps each flow's member list (the
// engine's FlowEdits applied in order) and, once per batch (about 1 ms), publishes a new
// immutable GatewaySet for every flow that changed: a storm of Updates costs one set rebuild per
// touched flow and one RCU grace period, never a rebuild of the whole table.
#pragma once

#include <chrono>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "controlplane/membership_db.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/gateway_set.hpp"

template <>
struct std::hash<amt::FlowKey> {
    size_t operator()(const amt::FlowKey& k) const noexcept {
        return std::hash<amt::IpAddress>{}(k.source) * 1000003u ^
               std::hash<amt::IpAddress>{}(k.group);
    }
};

namespace amt {

// How tunnel headers are made: the port's MAC, the next hop's, outer TTL and path MTU.
struct TunnelDefaults {
    MacAddress src_mac{};
    MacAddress next_hop_v4{};
    MacAddress next_hop_v6{};
    uint8_t ttl = 64;
    uint16_t pmtu = 1500;
};

class FlowPublisher {
  public:
    FlowPublisher(FlowTable& table, const TunnelDefaults& defaults)
        : table_(table), defaults_(defaults) {}

    void apply(const FlowEdit& edit);
    // Publishes every changed flow; returns how many were published or removed.
    size_t publish();
    bool dirty() const { return !dirty_.empty(); }
    size_t flows() const { return flows_.size(); }
    size_t publish_failures() const { return failures_; }

  private:
    struct Members {
        std::vector<TunnelHeader> tunnels;
        std::unordered_map<EndpointId, uint32_t> position;  // endpoint → index in tunnels
    };

    FlowTable& table_;
    TunnelDefaults defaults_;
    std::unordered_map<FlowKey, Members> flows_;
    std::unordered_set<FlowKey> dirty_;
    size_t failures_ = 0;
};

}  // namespace amt
