// The relay's Prometheus metrics, collected at scrape time from the counters the workers and the
// control thread already keep (relaxed single-writer atomics): nothing on the packet path changes
// for metrics, and a scrape never takes a lock a worker could wait on. The README's metrics
// reference lists every family this produces.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "dataplane/af_packet_drops.hpp"
#include "dataplane/daemon/ipfix_exporter.hpp"
#include "dataplane/daemon/state_file.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/xdp_steering.hpp"

namespace amt {

// Every drop the relay counts, summed over the threads that count it. `stage` says which layer
// dropped it: "parse" (the wire codec's ParseError), "protocol" (the engine's DropReason) or
// "dataplane" (the worker's DataplaneDrop).
struct DropCount {
    std::string_view stage;
    std::string_view reason;
    uint64_t value;
};
std::vector<DropCount> drop_counts(Dataplane& dp);

// Counts that are not drops: group records of accepted Updates ignored, by DropReason
// (amt_ignored_records_total), and accepted Updates with odd inner headers, by InnerAnomaly
// (amt_accepted_anomalies_total).
struct ReasonCount {
    std::string_view reason;
    uint64_t value;
};
std::vector<ReasonCount> ignored_record_counts(Dataplane& dp);
std::vector<ReasonCount> anomaly_counts(Dataplane& dp);

// The XDP steering program's per-CPU counters, summed (AF_XDP mode only).
prometheus::MetricFamily xdp_family(const XdpCounters& counters);

// The saved state (state.file): snapshots written and failed, the last one's size, duration and
// age, and how many tunnels the relay restored at start.
void add_state_families(const StateStats& stats, std::vector<prometheus::MetricFamily>& out);

// Per-tunnel accounting over IPFIX (ipfix.collector): records exported and dropped, the export
// queue, and the sessions open.
void add_ipfix_families(const IpfixStats& stats, uint64_t sessions,
                        std::vector<prometheus::MetricFamily>& out);

class RelayMetrics : public prometheus::Collectable {
  public:
    explicit RelayMetrics(Dataplane& dp);
    std::vector<prometheus::MetricFamily> Collect() const override;

    // Each worker's busy share since the previous call: call once a second from the control
    // loop, so amt_worker_busy_ratio covers a fixed window whoever scrapes and how often.
    void sample_worker_load();

    // More families from pieces that exist only in some modes (the XDP program's counters).
    void add_source(std::function<void(std::vector<prometheus::MetricFamily>&)> source) {
        sources_.push_back(std::move(source));
    }

  private:
    void collect_ports(std::vector<prometheus::MetricFamily>& out) const;
    void collect_workers(std::vector<prometheus::MetricFamily>& out) const;
    void collect_protocol(std::vector<prometheus::MetricFamily>& out) const;
    void collect_control(std::vector<prometheus::MetricFamily>& out) const;

    Dataplane& dp_;
    double start_time_;
    std::vector<std::function<void(std::vector<prometheus::MetricFamily>&)>> sources_;
    std::vector<std::pair<uint64_t, uint64_t>> last_cycles_;  // busy, idle at the last sample
    std::unique_ptr<std::atomic<double>[]> busy_ratio_;
    std::map<uint16_t, std::unique_ptr<AfPacketDrops>> kernel_drops_;  // by port id
};

}  // namespace amt
