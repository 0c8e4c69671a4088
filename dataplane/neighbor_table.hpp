// Gateways on the relay's own link (downstream.prefixes): each one's MAC, resolved with ARP /
// Neighbor Discovery and kept fresh the way the Linux kernel does it (RFC 4861 §7.3 states:
// INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED; net/core/neighbour.c timers). Control
// thread only: workers copy ARP and ND frames from on-link senders to the control ring, the
// FlowPublisher asks for MACs and rewrites the tunnels whose neighbour changed.
//
// Only tunnels create entries (a gateway whose Update verified, whose address is on-link): a
// spoofed ARP or ND message updates an existing entry at most, never creates one. The table is
// capped (downstream.max_neighbors); at the cap an unused entry is evicted, and when every entry
// is in use the new gateway waits (counted) until one frees.
#pragma once

#include <array>
#include <atomic>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/enum_names.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/protocol_counters.hpp"

namespace amt {

// The kernel's defaults (ip-sysctl: base_reachable_time_ms, retrans_time_ms,
// delay_first_probe_time, mcast_solicit, ucast_solicit, gc_stale_time, locktime).
struct NeighborTimers {
    Time reachable = std::chrono::seconds(30);  // each confirmation: 0.5..1.5 × this
    Time retransmit = std::chrono::seconds(1);
    Time delay_first_probe = std::chrono::seconds(5);
    Time failed_retry = std::chrono::seconds(5);  // a FAILED gateway with tunnels is asked again
    Time gc_stale = std::chrono::seconds(60);     // unused entries go after this
    Time locktime = std::chrono::seconds(1);      // a second ARP reply within this does not move
    unsigned multicast_solicits = 3;
    unsigned unicast_solicits = 3;
};

#define AMT_NEIGHBOR_STATES(X) X(incomplete) X(reachable) X(stale) X(delay) X(probe) X(failed)
enum class NeighborState : uint8_t { AMT_NEIGHBOR_STATES(AMT_ENUM_VALUE) count_ };
inline constexpr size_t neighbor_state_count = static_cast<size_t>(NeighborState::count_);
inline constexpr std::array<std::string_view, neighbor_state_count> neighbor_state_names = {
    AMT_NEIGHBOR_STATES(AMT_ENUM_STRING)};

#define AMT_NEIGHBOR_MESSAGES(X) \
    X(arp_request) X(arp_reply) X(neighbor_solicitation) X(neighbor_advertisement)
enum class NeighborMessage : uint8_t { AMT_NEIGHBOR_MESSAGES(AMT_ENUM_VALUE) count_ };
inline constexpr size_t neighbor_message_count = static_cast<size_t>(NeighborMessage::count_);
inline constexpr std::array<std::string_view, neighbor_message_count> neighbor_message_names = {
    AMT_NEIGHBOR_MESSAGES(AMT_ENUM_STRING)};

struct NeighborConfig {
    std::vector<IpPrefix> prefixes;        // downstream.prefixes: directly connected
    std::vector<IpAddress> own_addresses;  // the relay's: the source of its solicitations
    MacAddress mac{};                      // the downstream port's
    size_t max_entries = 1024;             // downstream.max_neighbors
    NeighborTimers timers;
};

// Read by the metrics exporter at scrape time (single writer: the control thread).
struct NeighborCounters {
    std::array<std::array<Counter, 2>, neighbor_message_count> messages;  // [type][received, sent]
    Counter table_full;  // gateways that had to wait: every entry in use at max_entries
    std::array<std::atomic<uint64_t>, neighbor_state_count> states{};  // entries by state
};

class NeighborSink {
  public:
    virtual ~NeighborSink() = default;
    // An Ethernet frame to send on the downstream link.
    virtual void send_neighbor_frame(ByteView frame) = 0;
};

class NeighborTable {
  public:
    NeighborTable(const NeighborConfig& config, NeighborSink& sink);

    bool enabled() const { return !config_.prefixes.empty(); }
    // On a directly connected prefix of the downstream link.
    bool on_link(const IpAddress& a) const;
    // A tunnel toward on-link `gateway` appeared: the first one creates the entry and asks at
    // once. release() when the tunnel goes.
    void hold(const IpAddress& gateway);
    void release(const IpAddress& gateway);
    // The MAC to send to: set in REACHABLE, STALE, DELAY and PROBE.
    std::optional<MacAddress> mac(const IpAddress& gateway) const;
    std::optional<NeighborState> state(const IpAddress& gateway) const;
    size_t size() const { return entries_.size(); }

    // An ARP frame or an ICMPv6 NS/NA frame (Ethernet header included) from the downstream link.
    static bool is_neighbor_message(ByteView frame);
    void receive(ByteView frame, Time now);
    // The clock for hold(); and the timers: retransmissions, probes, state changes, clean-up.
    void set_time(Time now) { now_ = now; }
    void advance(Time now);
    // Gateways whose usable MAC appeared, changed or went away since the last call.
    bool changed() const { return !changes_.empty(); }
    std::vector<IpAddress> take_changes();

    const NeighborCounters& counters() const { return counters_; }

  private:
    struct Entry {
        MacAddress mac{};
        NeighborState state = NeighborState::incomplete;
        uint8_t probes = 0;  // solicitations sent in this INCOMPLETE / PROBE round
        uint32_t users = 0;  // tunnels toward this gateway
        Time deadline{};     // the current state's timer
        Time updated{};      // last change or confirmation (locktime, clean-up)
    };

    bool create(const IpAddress& gateway, uint32_t users);
    void start_resolution(const IpAddress& gateway, Entry& e);
    void solicit(const IpAddress& gateway, const Entry& e, bool unicast);
    // The kernel's neigh_update: a MAC seen for an existing entry.
    void update(const IpAddress& gateway, Entry& e, const MacAddress& mac, bool confirmed,
                bool override);
    void set_reachable(Entry& e);
    void receive_arp(const EthernetHeader& eth, ByteView arp);
    void receive_nd(const EthernetHeader& eth, ByteView ip);
    Entry* find(const IpAddress& a);
    const IpAddress* source_for(const IpAddress& target) const;

    NeighborConfig config_;
    NeighborSink& sink_;
    std::unordered_map<IpAddress, Entry> entries_;
    std::unordered_map<IpAddress, uint32_t> waiting_;  // gateways refused at the cap: tunnels
    std::unordered_set<IpAddress> changes_;
    std::minstd_rand random_{0x6e656967};
    Time now_{};
    NeighborCounters counters_;
};

}  // namespace amt
