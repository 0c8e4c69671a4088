// The relay's upstream side: an IGMPv3 / MLDv2 host (RFC 4605 proxy model) on the interface
// toward the multicast routers, so that they build the distribution tree to the relay. Its input
// is the engine's merged interest ((S,G) and (*,G) joins and leaves); its output is membership
// reports: state-change reports on every change (repeated robustness-1 more times, RFC 3376
// §5.1) and current-state reports in answer to the routers' queries. Sans-I/O like the engine.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/membership_db.hpp"

namespace amt {

// The MLD reports' source. RFC 3810 §5: MLDv2 messages MUST come from a link-local address (or
// ::), and routers discard reports from any other (§5.2.13). So a configured fe80::/10 upstream
// address if there is one, else the port MAC's modified EUI-64 link-local address (RFC 4291
// App. A); a global upstream address is for ND only, never the reports' source.
IpAddress mld_report_source(const std::vector<IpAddress>& upstream_addresses,
                            const std::array<uint8_t, 6>& port_mac);

struct UpstreamConfig {
    IpAddress source_v4 = IpAddress::v4(0);  // IGMP reports' source (0.0.0.0 is allowed)
    IpAddress source_v6;                     // MLD reports' source: a link-local address, or ::
    uint8_t robustness = 2;
    Time unsolicited_report_interval = std::chrono::seconds(1);
};

class UpstreamSink {
  public:
    virtual ~UpstreamSink() = default;
    // One IP datagram (IGMPv3 or MLDv2 report) to send out of the upstream interface.
    virtual void send_upstream(Family family, ByteView datagram) = 0;
};

class UpstreamProxy {
  public:
    UpstreamProxy(const UpstreamConfig& config, UpstreamSink& sink);

    // The engine's merged interest changed (MembershipSink::upstream_change).
    void change(const FlowKey& key, bool join, Time now);
    // A query from an upstream router (IPv4 + IGMP, or IPv6 + MLD); a malformed one is ignored
    // and its ParseError returned, for the caller to count.
    ParseError handle_query(ByteView datagram, Time now);
    // Retransmissions and due query responses. Call at least every 100 ms.
    void advance(Time now);
    // Shutdown: one state-change report that leaves everything, now (checklist §2.15).
    void leave_all();

    size_t groups() const { return groups_.size(); }
    bool joined(const FlowKey& key) const;
    uint64_t reports_sent() const { return reports_sent_; }

  private:
    struct GroupState {
        bool exclude = false;         // (*,G) joined: EXCLUDE{}
        std::set<IpAddress> sources;  // (S,G) joins (only meaningful in INCLUDE)
    };
    struct Record {
        RecordType type;
        IpAddress group;
        std::vector<IpAddress> sources;
    };
    struct Retransmission {
        Record record;
        int remaining;
        Time due;
    };

    void send_records(Family family, const std::vector<Record>& records);
    void schedule(Record record, Time now);
    Record current_state(const IpAddress& group, const GroupState& g) const;
    Time random_delay(const RouterQuery& q);
    bool mode_change_pending(const IpAddress& group) const;

    UpstreamConfig config_;
    UpstreamSink& sink_;
    std::map<IpAddress, GroupState> groups_;
    std::vector<Retransmission> retransmissions_;
    // Current-state answers waiting for their random delay: per family the general answer, per
    // group a group-specific one.
    std::map<Family, Time> general_due_;
    std::map<IpAddress, Time> group_due_;
    std::mt19937 rng_{std::random_device{}()};
    uint64_t reports_sent_ = 0;
};

}  // namespace amt
