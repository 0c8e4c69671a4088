// The relay's protocol engine, sans-I/O: AMT messages (bytes with their outer addresses) and the
// time go in; replies, forwarding-table edits and upstream join/leave events come out through
// an EngineSink. It knows nothing of DPDK; the dataplane wraps it, the unit tests drive it.
//
// Update processing follows checklist §2.6: cheap checks first (type, lengths, inner IP,
// checksums), then the MAC, then the records. An Update that would change nothing for an
// unknown endpoint allocates nothing.
#pragma once

#include <array>
#include <optional>
#include <span>

#include "controlplane/engine_config.hpp"
#include "controlplane/handshake_responder.hpp"
#include "controlplane/membership_db.hpp"
#include "controlplane/protocol_counters.hpp"
#include "controlplane/relay_state.hpp"
#include "controlplane/secret_store.hpp"

namespace amt {

class EngineSink : public ReplySink, public MembershipSink {};

// The latest change the flow budgets cut (the daemon logs it at a bounded rate: who it was).
struct FlowRefusal {
    UdpEndpoint gateway;
    IpAddress group;
    DropReason reason = DropReason::endpoint_flow_limit;
    uint64_t total = 0;  // changes cut so far
};

class RelayEngine {
  public:
    RelayEngine(const EngineConfig& config, SecretStore& secrets, EngineSink& sink);

    // One AMT message. Discovery and Request are answered here too (the dataplane's workers
    // answer them with their own HandshakeResponder, drawing on this engine's reply_guard()).
    void handle(const Datagram& d, Time now);
    void handle_batch(std::span<const Datagram> batch, Time now);
    // Runs membership timers and secret rotation. Call at least every 100 ms.
    void advance(Time now);

    // SIGHUP: limits, timers, flags. Existing tunnels stay. The reply limits reach every
    // responder sharing reply_guard().
    void reconfigure(const EngineConfig& config);
    // Drain: set L in every Query and refuse new endpoints; existing ones keep their streams.
    void set_draining(bool draining);
    // The operator's rotation (amtctl secret rotate): the previous secret stays valid 2×QI, as
    // with the scheduled rotation, so joined gateways keep their tunnels.
    void rotate_secret(Time now);
    // Hitless restart. save_state: every endpoint and the secrets, with what remains of their
    // timers at `now`. restore_state: into an engine with no endpoints; each endpoint's groups go
    // through the MembershipDb, so the forwarding edits and upstream joins it emits are exactly
    // the old process's. Endpoints whose timer ran out are skipped; timers are capped at the
    // current membership_timeout. Returns how many endpoints were restored.
    void save_state(Time now, RelayState& out) const;
    size_t restore_state(const RelayState& state, Time now);
    bool draining() const { return draining_; }
    bool refusing_new_endpoints() const { return responder_.refusing_new_endpoints(); }

    // The relay's one reply budget, known-gateway set and per-address limits: the workers'
    // responders hold it by reference. The engine keeps its known set (addresses with endpoints).
    ReplyGuard& reply_guard() { return guard_; }
    const EngineConfig& config() const { return config_; }
    const MembershipDb& memberships() const { return db_; }
    const ProtocolCounters& counters() const { return counters_; }
    // The responder's counters (Discovery/Request handled by the engine itself).
    const ProtocolCounters& responder_counters() const { return responder_.counters(); }
    uint64_t secret_rotations() const { return rotations_; }
    uint64_t expired_endpoints() const { return expired_; }
    // The endpoint whose accepted Update last showed `a` (for the log; the control thread's).
    const UdpEndpoint& last_anomaly_from(InnerAnomaly a) const {
        return last_anomaly_from_[static_cast<size_t>(a)];
    }
    const FlowRefusal& last_flow_refusal() const { return flow_refusal_; }

  private:
    void handle_update(const Datagram& d, Time now);
    void handle_teardown(const Datagram& d, Time now);
    bool authenticate(const MacInput& in, const ResponseMac& mac, EndpointId known, Time now);
    EndpointId admit_new_endpoint(const Datagram& d, Time now);
    void count_anomalies(const MembershipReport& report, const UdpEndpoint& from);
    void apply_report(EndpointId e, const MembershipReport& report);
    void apply_v1v2(EndpointId e, const MembershipReport& report);
    void apply_v3_record(EndpointId e, const GroupRecord& record);
    void apply_change(EndpointId e, const IpAddress& group, RecordType type,
                      std::span<const IpAddress> sources, bool older_version_host,
                      std::optional<DropReason> partly_ignored = std::nullopt);
    bool report_needs_state(const MembershipReport& report) const;
    bool fits_flow_budgets(EndpointId e, const GroupMembership* current, GroupMembership& next);
    bool group_allowed(const IpAddress& group, bool v1v2, bool exclude);
    void update_capacity_flag();
    Time timeout() const { return config_.membership_timeout; }

    EngineConfig config_;
    SecretStore& secrets_;
    EngineSink& sink_;
    ReplyGuard guard_;  // before responder_ and db_, which use it
    HandshakeResponder responder_;
    MembershipDb db_;
    ProtocolCounters counters_;
    bool draining_ = false;
    uint64_t rotations_ = 0;
    uint64_t expired_ = 0;
    std::array<UdpEndpoint, inner_anomaly_count> last_anomaly_from_{};
    FlowRefusal flow_refusal_;
};

}  // namespace amt
