// Per-tunnel accounting (issue 15): one session per tunnel and forwarding entry, from the edit
// that added the tunnel to the flow until the edit that removed it (a leave, expiry, Teardown) or
// the relay's stop, with what the tunnel was sent meanwhile. Sessions longer than the active
// timeout are reported every active timeout ("still active").
//
// Counts are derived, not counted per replica: the dataplane counts packets and octets per flow
// (one counter update per native packet, whatever the fan-out), and a session's figures are its
// flow's counters at its end minus at its start. What that cannot see is anything that happens
// to one tunnel's replicas alone: replicas withheld for an unresolved MAC, too big for that
// tunnel's MTU, or lost to a full TX queue or mbuf pool are counted as delivered; and packets in
// flight while a change is published (about 1 ms, the publish batch) may be counted on either
// side of a session's edges.
//
// Sans-I/O like the engine: flow edits and the time in, SessionRecords out. The daemon hands the
// records to the IPFIX exporter's queue.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "controlplane/membership_db.hpp"

namespace amt {

// A flow's packets and inner octets since its entry was made (monotonic while it exists).
struct FlowCount {
    uint64_t packets = 0;
    uint64_t octets = 0;
};

class FlowCountSource {
  public:
    virtual ~FlowCountSource() = default;
    // What the dataplane has forwarded for `key` so far; zeros for a flow not yet in the table.
    virtual FlowCount flow_count(const FlowKey& key) const = 0;
};

struct SessionRecord {
    UdpEndpoint gateway;   // the tunnel's far end as the relay sees it (after NAT)
    UdpEndpoint relay;     // the relay address and port the gateway talks to
    FlowKey flow;          // (S,G), or (*,G) with S unspecified
    int64_t start_ms = 0;  // Unix time of the interval's start (the session's, or the last report)
    int64_t end_ms = 0;
    uint64_t packets = 0;  // native packets of the flow during the interval
    uint64_t octets = 0;   // their inner IP octets
    SessionEnd reason = SessionEnd::active;
};

class SessionSink {
  public:
    virtual ~SessionSink() = default;
    virtual void session_record(const SessionRecord& record) = 0;
};

class SessionLedger {
  public:
    // `wall_offset`: Unix time minus the steady clock, so records carry wall-clock times.
    // `active_timeout`: how long a session runs before it is reported while still active.
    SessionLedger(const FlowCountSource& counts, SessionSink& sink, Time active_timeout,
                  Time wall_offset);

    // Every forwarding edit, before the dataplane applies it (the flow's counters must still be
    // readable when it is deleted).
    void flow_edit(const FlowEdit& edit, Time now);
    // Reports sessions that have run an active timeout since their last report. Call often
    // (every 100 ms); it looks at a share of the sessions each time, all of them every
    // sweep_period().
    void advance(Time now);
    // The relay stops: every session ends now (relay_stop).
    void stop(Time now);

    size_t sessions() const { return index_.size(); }
    Time sweep_period() const;

  private:
    struct Key {
        EndpointId endpoint;
        FlowKey flow;
        friend bool operator==(const Key&, const Key&) = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const noexcept {
            return std::hash<FlowKey>{}(k.flow) * 31 + k.endpoint;
        }
    };
    struct Session {
        UdpEndpoint gateway;
        UdpEndpoint relay;
        FlowKey flow;
        EndpointId endpoint = 0;
        uint32_t position = 0;  // in its flow's member list
        Time start{};           // of the interval not reported yet
        FlowCount base;         // the flow's counters at `start`
        bool in_use = false;
    };
    static constexpr uint32_t none = 0xffffffff;

    void begin(const FlowEdit& edit, Time now);
    void end(uint32_t id, Time now, SessionEnd why, const FlowCount& count);
    void report(Session& s, Time now, SessionEnd why, const FlowCount& count);
    void unlink_member(uint32_t id);

    const FlowCountSource& counts_;
    SessionSink& sink_;
    Time active_timeout_;
    Time wall_offset_;
    std::vector<Session> sessions_;
    std::vector<uint32_t> free_;
    std::unordered_map<Key, uint32_t, KeyHash> index_;
    std::unordered_map<FlowKey, std::vector<uint32_t>> members_;  // flow → its sessions
    size_t cursor_ = 0;  // the active-timeout sweep's place in sessions_
    Time last_sweep_{};
    bool swept_ = false;
};

inline int64_t unix_ms(Time t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

}  // namespace amt
