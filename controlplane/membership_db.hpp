// Every tunnel endpoint's membership, the merged view across endpoints that drives upstream joins,
// and the forwarding-table edits the dataplane applies (checklist §2.6-§2.8).
//
// Forwarding rules (3376 §6.3 applied per endpoint): endpoint e receives a packet from S to G if
// e is INCLUDE with S listed, or EXCLUDE without S listed. The dataplane looks up (S,G) and then
// (*,G), so the table holds:
//   (*,G): every endpoint in EXCLUDE mode for G;
//   (S,G): for every S some endpoint includes or blocks, every endpoint that forwards S.
// An (S,G) flow may be empty: it exists so that a source every EXCLUDE endpoint blocks does not
// fall through to (*,G).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/group_membership.hpp"
#include "controlplane/id_index.hpp"
#include "controlplane/reply_guard.hpp"

namespace amt {

using EndpointId = uint32_t;

// (S,G), or (*,G) with S the unspecified address of G's family.
struct FlowKey {
    IpAddress source;
    IpAddress group;
    bool any_source() const { return source.is_unspecified(); }
    friend auto operator<=>(const FlowKey&, const FlowKey&) = default;
};

// The unspecified address of the group's family: the S of a (*,G) flow.
IpAddress any_source_of(const IpAddress& group);

}  // namespace amt

template <>
struct std::hash<amt::FlowKey> {
    size_t operator()(const amt::FlowKey& k) const noexcept {
        return std::hash<amt::IpAddress>{}(k.source) * 1000003u ^
               std::hash<amt::IpAddress>{}(k.group);
    }
};

namespace amt {

enum class FlowOp : uint8_t { create_flow, delete_flow, add_tunnel, remove_tunnel };

// Why a tunnel stops receiving a flow (per-tunnel accounting, issue 15): a report that left it,
// the membership timer, a Teardown, the relay stopping, or (for periodic records) not at all.
enum class SessionEnd : uint8_t { leave, expiry, teardown, relay_stop, active };

struct FlowEdit {
    FlowOp op;
    FlowKey key;
    EndpointId endpoint = 0;  // add_tunnel / remove_tunnel
    UdpEndpoint tunnel;       // add_tunnel: where Data goes (the Update's source, post-NAT)
    UdpEndpoint relay;        // add_tunnel: where Data comes from (the Update's destination)
    SessionEnd why = SessionEnd::leave;  // remove_tunnel / delete_flow: what ended the members
};

class MembershipSink {
  public:
    virtual ~MembershipSink() = default;
    virtual void flow_edit(const FlowEdit& edit) = 0;
    // Merged upstream interest: (S,G) joined when the first endpoint includes S, (*,G) when the
    // first endpoint is in EXCLUDE mode; left when the last one goes.
    virtual void upstream_change(const FlowKey& key, bool join) = 0;
};

struct EndpointRecord {
    UdpEndpoint address;
    UdpEndpoint relay;
    ResponseMac last_mac{};
    uint32_t last_nonce = 0;
    bool in_use = false;
    // Timer wheel links (intrusive: no allocation per restart).
    EndpointId timer_prev = 0;
    EndpointId timer_next = 0;
    int64_t expires_tick = 0;
    std::vector<GroupMembership> groups;
};

class MembershipDb {
  public:
    static constexpr EndpointId no_endpoint = 0xffffffff;

    // `known`, if given, holds every source IP with at least one endpoint (for the workers).
    explicit MembershipDb(MembershipSink& sink, KnownGateways* known = nullptr);

    EndpointId find(const UdpEndpoint& address) const;
    const EndpointRecord& endpoint(EndpointId id) const { return endpoints_[id]; }
    size_t endpoint_count() const { return address_index_.size(); }
    // When the endpoint expires unless refreshed (timer resolution: tick_ns).
    static Time expiry(const EndpointRecord& r) { return Time(r.expires_tick * tick_ns); }
    size_t endpoints_from(const IpAddress& ip) const;
    size_t group_count() const { return groups_.size(); }
    size_t flow_count() const { return flow_count_; }
    // The flow budgets (limits.max_flows_per_endpoint / _per_source_ip). An endpoint holds an
    // (S,G) flow for every source it lists in a group (forwarded or blocked) and a (*,G) flow
    // for every group it is in EXCLUDE mode for: the entries it makes the table keep. Its
    // address holds the distinct flows of all its endpoints, so gateways behind one CGNAT
    // address that watch the same channel cost the address one flow.
    size_t flows_of(EndpointId e) const;
    size_t flows_of_address(EndpointId e) const;
    // Whether another endpoint of e's address holds `key` (it then costs the address nothing).
    bool address_shares(EndpointId e, const FlowKey& key) const;

    // Room for `endpoints` more without rehashing (a restore knows how many are coming).
    void reserve(size_t endpoints);
    EndpointId create(const UdpEndpoint& address, const UdpEndpoint& relay, Time now, Time timeout);
    // Replaces e's membership in `group` by `next` (empty() removes it) and emits the edits.
    void set_group(EndpointId e, const GroupMembership& next);
    GroupMembership* find_group(EndpointId e, const IpAddress& group);
    const GroupMembership* find_group(EndpointId e, const IpAddress& group) const;
    // Restarts e's membership timer and remembers the nonce+MAC that was just accepted.
    void refresh(EndpointId e, Time now, Time timeout, uint32_t nonce, const ResponseMac& mac);
    // Removes all of e's state, as a report deleting every record would (Teardown, expiry).
    void remove(EndpointId e, SessionEnd why);
    // Frees e if it holds no group (a report that left everything).
    void remove_if_empty(EndpointId e);
    // Expires endpoints whose timer ran out by `now`; returns how many.
    size_t expire(Time now);

    void for_each_endpoint(const std::function<void(const EndpointRecord&)>& fn) const;

  private:
    struct SourceRefs {
        uint32_t includers = 0;  // endpoints in INCLUDE mode listing S: the upstream (S,G) join
        uint32_t blockers = 0;   // endpoints in EXCLUDE mode listing S
        bool is_flow() const { return includers + blockers > 0; }
    };
    struct GroupView {
        std::unordered_map<IpAddress, SourceRefs> sources;
        std::unordered_set<EndpointId> excluders;  // EXCLUDE-mode endpoints: (*,G) members
    };

    static constexpr int64_t tick_ns = 100'000'000;  // 100 ms timer resolution
    static constexpr size_t wheel_slots = 4096;      // one turn = 409.6 s; longer timers wait turns

    bool member_of(EndpointId x, const IpAddress& group, const IpAddress& source);
    void emit_tunnel(FlowOp op, const FlowKey& key, EndpointId e);
    void emit_flow(FlowOp op, const FlowKey& key);
    void update_merged_view(EndpointId e, const GroupMembership* before,
                            const GroupMembership* after);
    void count_address_flows(const IpAddress& address, const GroupMembership& g, bool add);
    bool holds(EndpointId e, const FlowKey& key) const;
    void update_sources(EndpointId e, GroupView& view, const IpAddress& group,
                        const GroupMembership* before, const GroupMembership* after);
    void update_any_source(EndpointId e, GroupView& view, const IpAddress& group,
                           const GroupMembership* before, const GroupMembership* after);
    void timer_unlink(EndpointId e);
    void timer_link(EndpointId e, int64_t tick);
    void release(EndpointId e);
    size_t address_hash(EndpointId e) const {
        return std::hash<UdpEndpoint>{}(endpoints_[e].address);
    }

    MembershipSink& sink_;
    std::vector<EndpointRecord> endpoints_;
    std::vector<EndpointId> free_ids_;
    IdIndex address_index_;  // address → id; the address is the record's own (4 B per endpoint)
    struct AddressUse {
        uint32_t endpoints = 0;
        EndpointId first = 0;  // the address's only endpoint, while it has never had two
    };
    std::unordered_map<IpAddress, AddressUse> per_source_ip_;
    // Flow → how many of the address's endpoints hold it, for addresses that have had two
    // endpoints at once (CGNAT): a lone gateway, the common case, costs no such map.
    std::unordered_map<IpAddress, std::unordered_map<FlowKey, uint32_t>> shared_flows_;
    std::unordered_map<IpAddress, GroupView> groups_;
    size_t flow_count_ = 0;
    std::vector<EndpointId> wheel_;  // head of each slot's list, or no_endpoint
    int64_t wheel_tick_ = -1;        // last tick processed
    KnownGateways* known_;
    // Why the change under way ends sessions: stamped on its remove_tunnel / delete_flow edits.
    SessionEnd ending_ = SessionEnd::leave;
};

}  // namespace amt
