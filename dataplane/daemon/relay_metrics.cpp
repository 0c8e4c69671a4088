#include "dataplane/daemon/relay_metrics.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <array>
#include <limits>
#include <string>

namespace amt {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

namespace {

constexpr std::array<std::string_view, 8> message_type_names = {"",
                                                                "relay_discovery",
                                                                "relay_advertisement",
                                                                "request",
                                                                "membership_query",
                                                                "membership_update",
                                                                "multicast_data",
                                                                "teardown"};

MetricFamily family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add(MetricFamily& f, double value, Labels labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
}

// One family with a single unlabelled sample.
MetricFamily single(std::string name, std::string help, MetricType type, double value) {
    MetricFamily f = family(std::move(name), std::move(help), type);
    add(f, value);
    return f;
}

MetricFamily histogram(std::string name, std::string help, const LatencyHistogram& h) {
    MetricFamily f = family(std::move(name), std::move(help), MetricType::Histogram);
    ClientMetric m;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LatencyHistogram::bounds.size(); ++i) {
        cumulative += h.bucket(i);
        m.histogram.bucket.push_back({cumulative, LatencyHistogram::bounds[i]});
    }
    cumulative += h.bucket(LatencyHistogram::bounds.size());
    m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = h.sum_seconds();
    f.metric.push_back(std::move(m));
    return f;
}

// The protocol counters of every thread that handles AMT messages: the workers' responders, the
// engine and the engine's own responder; and the control thread's for upstream queries.
template <typename Fn>
uint64_t sum_protocol(Dataplane& dp, Fn&& field) {
    const RelayEngine& engine = dp.control().engine();
    uint64_t v = field(engine.counters()) + field(engine.responder_counters()) +
                 field(dp.control().query_counters());
    for (size_t w = 0; w < dp.worker_count(); ++w)
        v += field(*dp.worker(w).counters().protocol);
    return v;
}

template <typename Fn>
uint64_t sum_workers(Dataplane& dp, Fn&& field) {
    uint64_t v = field(dp.control_counters());
    for (size_t w = 0; w < dp.worker_count(); ++w)
        v += field(dp.worker(w).counters());
    return v;
}

}  // namespace

std::vector<DropCount> drop_counts(Dataplane& dp) {
    std::vector<DropCount> out;
    for (size_t i = 0; i < parse_error_count; ++i) {
        if (static_cast<ParseError>(i) == ParseError::ok) continue;
        out.push_back(
            {"parse", to_string(static_cast<ParseError>(i)),
             sum_protocol(dp, [i](const ProtocolCounters& c) { return c.malformed[i].value(); })});
    }
    for (size_t i = 0; i < drop_reason_count; ++i) {
        if (ignores_a_record(static_cast<DropReason>(i))) continue;  // not a packet
        out.push_back(
            {"protocol", to_string(static_cast<DropReason>(i)),
             sum_protocol(dp, [i](const ProtocolCounters& c) { return c.dropped[i].value(); })});
    }
    for (size_t i = 0; i < dataplane_drop_count; ++i) {
        out.push_back(
            {"dataplane", to_string(static_cast<DataplaneDrop>(i)),
             sum_workers(dp, [i](const WorkerCounters& c) { return c.dropped[i].value(); })});
    }
    return out;
}

std::vector<ReasonCount> ignored_record_counts(Dataplane& dp) {
    std::vector<ReasonCount> out;
    for (size_t i = 0; i < drop_reason_count; ++i) {
        if (!ignores_a_record(static_cast<DropReason>(i))) continue;
        out.push_back(
            {to_string(static_cast<DropReason>(i)),
             sum_protocol(dp, [i](const ProtocolCounters& c) { return c.dropped[i].value(); })});
    }
    return out;
}

std::vector<ReasonCount> anomaly_counts(Dataplane& dp) {
    std::vector<ReasonCount> out;
    for (size_t i = 0; i < inner_anomaly_count; ++i) {
        out.push_back(
            {to_string(static_cast<InnerAnomaly>(i)),
             sum_protocol(dp, [i](const ProtocolCounters& c) { return c.anomalies[i].value(); })});
    }
    return out;
}

MetricFamily xdp_family(const XdpCounters& n) {
    MetricFamily f = family("amt_xdp_packets_total",
                            "Packets the XDP program saw in AF_XDP mode, by verdict and class",
                            MetricType::Counter);
    const auto sample = [&](const char* verdict, const char* klass, uint64_t v) {
        add(f, static_cast<double>(v), {{"class", klass}, {"verdict", verdict}});
    };
    sample("steered", "amt", n.steered_amt);
    sample("steered", "multicast", n.steered_multicast);
    sample("steered", "igmp_mld_query", n.steered_igmp_mld);
    sample("passed", "other", n.passed);
    sample("passed", "malformed", n.passed_malformed);
    sample("passed", "unicast_fragment", n.passed_fragment);
    sample("passed", "other_vlan", n.passed_other_vlan);
    sample("passed", "no_socket", n.no_socket);
    return f;
}

void add_state_families(const StateStats& st, std::vector<MetricFamily>& out) {
    out.push_back(single("amt_state_snapshots_total", "State snapshots written to state.file",
                         MetricType::Counter, static_cast<double>(st.snapshots.load())));
    out.push_back(single("amt_state_snapshot_failures_total",
                         "State snapshots that could not be written (see the log)",
                         MetricType::Counter, static_cast<double>(st.failures.load())));
    out.push_back(single("amt_state_snapshot_bytes", "Size of the last state snapshot",
                         MetricType::Gauge, static_cast<double>(st.last_bytes.load())));
    out.push_back(
        single("amt_state_snapshot_duration_seconds",
               "From the start of the last state snapshot to the file on disk (fsync, rename)",
               MetricType::Gauge, static_cast<double>(st.last_duration_ns.load()) / 1e9));
    out.push_back(single("amt_state_snapshot_fork_seconds",
                         "The control thread's pause to fork the last periodic snapshot's writer",
                         MetricType::Gauge, static_cast<double>(st.last_fork_ns.load()) / 1e9));
    const int64_t saved = st.last_saved_unix_ns.load();
    out.push_back(single("amt_state_snapshot_timestamp_seconds",
                         "When the last state snapshot was written (Unix time; 0: none yet)",
                         MetricType::Gauge, static_cast<double>(saved) / 1e9));
    out.push_back(single("amt_state_restored_endpoints",
                         "Tunnels restored from state.file when the relay started",
                         MetricType::Gauge, static_cast<double>(st.restored_endpoints.load())));
}

void add_ipfix_families(const IpfixStats& st, uint64_t sessions, std::vector<MetricFamily>& out) {
    out.push_back(single("amt_ipfix_records_exported_total",
                         "Per-tunnel accounting records sent to ipfix.collector",
                         MetricType::Counter, static_cast<double>(st.exported.load())));
    MetricFamily dropped = family("amt_ipfix_records_dropped_total",
                                  "Per-tunnel accounting records lost: the export queue was full "
                                  "(queue_full) or the transport refused them (send_failed)",
                                  MetricType::Counter);
    add(dropped, static_cast<double>(st.dropped_queue_full.load()), {{"reason", "queue_full"}});
    add(dropped, static_cast<double>(st.dropped_send_failed.load()), {{"reason", "send_failed"}});
    out.push_back(std::move(dropped));
    out.push_back(single("amt_ipfix_messages_total", "IPFIX messages sent", MetricType::Counter,
                         static_cast<double>(st.messages.load())));
    out.push_back(single("amt_ipfix_template_sends_total",
                         "IPFIX template sets sent (at start, after a failure, every "
                         "ipfix.template_refresh over UDP)",
                         MetricType::Counter, static_cast<double>(st.template_sends.load())));
    out.push_back(single("amt_ipfix_queue_records", "Records waiting for the IPFIX exporter thread",
                         MetricType::Gauge, static_cast<double>(st.queued.load())));
    out.push_back(single("amt_ipfix_sessions",
                         "Tunnel sessions being accounted (a tunnel on a forwarding entry)",
                         MetricType::Gauge, static_cast<double>(sessions)));
}

RelayMetrics::RelayMetrics(Dataplane& dp)
    : dp_(dp),
      start_time_(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                      .count()),
      last_cycles_(dp.worker_count()),
      busy_ratio_(std::make_unique<std::atomic<double>[]>(dp.worker_count())) {
    for (const uint16_t id : {dp.port().id(), dp.upstream_port().id()}) {
        if (!kernel_drops_.contains(id))
            kernel_drops_.emplace(id, std::make_unique<AfPacketDrops>(id));
    }
}

void RelayMetrics::sample_worker_load() {
    for (size_t w = 0; w < dp_.worker_count(); ++w) {
        const WorkerCounters& c = dp_.worker(w).counters();
        const uint64_t b = c.busy_cycles.value(), i = c.idle_cycles.value();
        const uint64_t db = b - last_cycles_[w].first, di = i - last_cycles_[w].second;
        if (db + di != 0) {
            busy_ratio_[w].store(static_cast<double>(db) / static_cast<double>(db + di),
                                 std::memory_order_relaxed);
        }
        last_cycles_[w] = {b, i};
    }
}

void RelayMetrics::collect_ports(std::vector<MetricFamily>& out) const {
    struct Field {
        const char* name;
        const char* help;
        uint64_t rte_eth_stats::*value;
    };
    static constexpr std::array<Field, 8> fields = {{
        {"amt_port_rx_packets_total", "Packets received by the port", &rte_eth_stats::ipackets},
        {"amt_port_tx_packets_total", "Packets sent by the port", &rte_eth_stats::opackets},
        {"amt_port_rx_bytes_total", "Bytes received by the port", &rte_eth_stats::ibytes},
        {"amt_port_tx_bytes_total", "Bytes sent by the port", &rte_eth_stats::obytes},
        {"amt_port_rx_errors_total", "Erroneous packets received", &rte_eth_stats::ierrors},
        {"amt_port_tx_errors_total", "Packets the port failed to send", &rte_eth_stats::oerrors},
        {"amt_port_rx_missed_total",
         "Packets the NIC (net_af_packet: the kernel socket) dropped: RX queues full (workers "
         "behind)",
         &rte_eth_stats::imissed},
        {"amt_port_rx_nombuf_total", "RX mbuf allocation failures", &rte_eth_stats::rx_nombuf},
    }};
    std::vector<std::pair<std::string, uint16_t>> ports = {{"downstream", dp_.port().id()}};
    if (dp_.upstream_port().id() != dp_.port().id())
        ports.emplace_back("upstream", dp_.upstream_port().id());
    if (const Port* e = dp_.exception_port()) ports.emplace_back("exception", e->id());

    std::vector<MetricFamily> families;
    for (const Field& f : fields)
        families.push_back(family(f.name, f.help, MetricType::Counter));
    for (const auto& [role, id] : ports) {
        rte_eth_stats stats{};
        if (rte_eth_stats_get(id, &stats) != 0) continue;
        // net_af_packet: frames its sockets' rings had no room for are missed as well.
        if (const auto k = kernel_drops_.find(id); k != kernel_drops_.end())
            stats.imissed += k->second->total();
        char device[RTE_ETH_NAME_MAX_LEN] = "";
        rte_eth_dev_get_name_by_port(id, device);
        for (size_t i = 0; i < fields.size(); ++i) {
            add(families[i], static_cast<double>(stats.*fields[i].value),
                {{"device", device}, {"port", role}});
        }
    }
    for (MetricFamily& f : families)
        out.push_back(std::move(f));
}

void RelayMetrics::collect_workers(std::vector<MetricFamily>& out) const {
    const double hz = static_cast<double>(rte_get_tsc_hz());
    MetricFamily busy =
        family("amt_worker_busy_seconds_total",
               "Time each worker spent in poll loops that received packets", MetricType::Counter);
    MetricFamily idle = family("amt_worker_idle_seconds_total",
                               "Time each worker spent polling empty queues", MetricType::Counter);
    MetricFamily ratio =
        family("amt_worker_busy_ratio",
               "Share of each worker's time spent in polls that received packets, over the last "
               "second (0..1)",
               MetricType::Gauge);
    MetricFamily rx = family("amt_worker_rx_packets_total",
                             "Frames each worker took from its RX queues: how RSS spreads the load",
                             MetricType::Counter);
    MetricFamily replicas =
        family("amt_replicas_total", "AMT Data packets (replicas) handed to the NIC, per worker",
               MetricType::Counter);
    MetricFamily replica_bytes =
        family("amt_replica_bytes_total", "Bytes of AMT Data replicas, outer headers included",
               MetricType::Counter);
    MetricFamily multicast_in =
        family("amt_multicast_packets_total",
               "Native multicast packets that matched a flow and were replicated, per worker",
               MetricType::Counter);
    MetricFamily backlog =
        family("amt_egress_backlog_packets",
               "Native multicast packets whose fan-out waits for the TX queue, per worker",
               MetricType::Gauge);
    MetricFamily paused =
        family("amt_egress_intake_paused_seconds_total",
               "Time the worker's egress backlog was full, refusing native multicast whole",
               MetricType::Counter);
    for (size_t w = 0; w < dp_.worker_count(); ++w) {
        const WorkerCounters& c = dp_.worker(w).counters();
        const Labels labels = {{"worker", std::to_string(w)}};
        add(backlog, static_cast<double>(c.egress_backlog.load(std::memory_order_relaxed)), labels);
        add(paused, static_cast<double>(c.intake_paused_cycles.value()) / hz, labels);
        add(busy, static_cast<double>(c.busy_cycles.value()) / hz, labels);
        add(idle, static_cast<double>(c.idle_cycles.value()) / hz, labels);
        add(ratio, busy_ratio_[w].load(std::memory_order_relaxed), labels);
        add(rx, static_cast<double>(c.rx_packets.value()), labels);
        add(replicas, static_cast<double>(c.replicas.value()), labels);
        add(replica_bytes, static_cast<double>(c.replica_bytes.value()), labels);
        add(multicast_in, static_cast<double>(c.multicast_in.value()), labels);
    }
    for (MetricFamily* f :
         {&busy, &idle, &ratio, &rx, &replicas, &replica_bytes, &multicast_in, &backlog, &paused})
        out.push_back(std::move(*f));

    const auto total = [&](const char* name, const char* help, auto field) {
        out.push_back(
            single(name, help, MetricType::Counter, static_cast<double>(sum_workers(dp_, field))));
    };
    total("amt_fragments_total", "Inner IPv4 fragments made for DF=0 packets over the tunnel MTU",
          [](const WorkerCounters& c) { return c.fragments.value(); });
    total("amt_packet_too_big_sent_total",
          "ICMP Fragmentation Needed / ICMPv6 Packet Too Big sent to SSM sources",
          [](const WorkerCounters& c) { return c.too_big_notices.value(); });
    total("amt_arp_replies_total", "ARP replies for the relay's addresses",
          [](const WorkerCounters& c) { return c.arp_replies.value(); });
    total("amt_nd_replies_total", "Neighbor Advertisements for the relay's addresses",
          [](const WorkerCounters& c) { return c.nd_replies.value(); });
    total("amt_exception_packets_total", "Packets passed to the kernel through the exception port",
          [](const WorkerCounters& c) { return c.exception_packets.value(); });
    total("amt_control_ring_enqueued_total",
          "Updates, Teardowns, router queries and on-link ARP/ND the workers passed to the "
          "control thread",
          [](const WorkerCounters& c) { return c.control_to_ring.value(); });
}

void RelayMetrics::collect_protocol(std::vector<MetricFamily>& out) const {
    MetricFamily drops = family("amt_dropped_packets_total",
                                "Packets dropped, by the layer that dropped them and the reason",
                                MetricType::Counter);
    for (const DropCount& d : drop_counts(dp_)) {
        add(drops, static_cast<double>(d.value),
            {{"reason", std::string(d.reason)}, {"stage", std::string(d.stage)}});
    }
    out.push_back(std::move(drops));
    MetricFamily ignored = family("amt_ignored_records_total",
                                  "Group records of accepted Membership Updates that were ignored "
                                  "in whole or in part (not packets: the Update was applied)",
                                  MetricType::Counter);
    for (const ReasonCount& r : ignored_record_counts(dp_))
        add(ignored, static_cast<double>(r.value), {{"reason", std::string(r.reason)}});
    out.push_back(std::move(ignored));
    MetricFamily anomalies =
        family("amt_accepted_anomalies_total",
               "Accepted Membership Updates whose encapsulated IP header deviates from RFC "
               "3376/3810 (accepted, not dropped), by anomaly",
               MetricType::Counter);
    for (const ReasonCount& r : anomaly_counts(dp_))
        add(anomalies, static_cast<double>(r.value), {{"anomaly", std::string(r.reason)}});
    out.push_back(std::move(anomalies));

    MetricFamily messages =
        family("amt_messages_total", "AMT control messages by type and direction (Data excluded)",
               MetricType::Counter);
    for (size_t t = 1; t < message_type_names.size(); ++t) {
        if (t == static_cast<size_t>(MessageType::multicast_data)) continue;
        const std::string type(message_type_names[t]);
        add(messages,
            static_cast<double>(sum_protocol(
                dp_, [t](const ProtocolCounters& c) { return c.received[t].value(); })),
            {{"direction", "received"}, {"type", type}});
        add(messages,
            static_cast<double>(
                sum_protocol(dp_, [t](const ProtocolCounters& c) { return c.sent[t].value(); })),
            {{"direction", "sent"}, {"type", type}});
    }
    out.push_back(std::move(messages));

    out.push_back(single(
        "amt_mac_failures_total", "Updates and Teardowns whose response MAC did not verify",
        MetricType::Counter, static_cast<double>(sum_protocol(dp_, [](const ProtocolCounters& c) {
            return c.mac_failures.value();
        }))));
    MetricFamily fallback =
        family("amt_mac_fallback_accepted_total",
               "Updates and Teardowns accepted by the previous secret or by the sticky MAC "
               "(after a rotation, or from gateways that echo an old MAC)",
               MetricType::Counter);
    add(fallback,
        static_cast<double>(sum_protocol(
            dp_, [](const ProtocolCounters& c) { return c.mac_previous_secret.value(); })),
        {{"via", "previous_secret"}});
    add(fallback,
        static_cast<double>(
            sum_protocol(dp_, [](const ProtocolCounters& c) { return c.mac_sticky.value(); })),
        {{"via", "sticky_mac"}});
    out.push_back(std::move(fallback));
}

namespace {
// Gateways on the relay's own link (downstream.prefixes): the neighbour table and its ARP / ND.
void collect_neighbors(const NeighborCounters& n, std::vector<MetricFamily>& out) {
    MetricFamily states = family(
        "amt_neighbors", "On-link gateways in the neighbour table, by state", MetricType::Gauge);
    for (size_t i = 0; i < neighbor_state_count; ++i) {
        add(states, static_cast<double>(n.states[i].load(std::memory_order_relaxed)),
            {{"state", std::string(neighbor_state_names[i])}});
    }
    out.push_back(std::move(states));
    MetricFamily messages =
        family("amt_neighbor_messages_total",
               "ARP and Neighbor Discovery messages for on-link gateways", MetricType::Counter);
    for (size_t t = 0; t < neighbor_message_count; ++t) {
        const std::string type(neighbor_message_names[t]);
        add(messages, static_cast<double>(n.messages[t][0].value()),
            {{"direction", "received"}, {"type", type}});
        add(messages, static_cast<double>(n.messages[t][1].value()),
            {{"direction", "sent"}, {"type", type}});
    }
    out.push_back(std::move(messages));
    out.push_back(single("amt_neighbor_table_full_total",
                         "On-link gateways that waited for an entry: every one of "
                         "downstream.max_neighbors in use",
                         MetricType::Counter, static_cast<double>(n.table_full.value())));
}
}  // namespace

void RelayMetrics::collect_control(std::vector<MetricFamily>& out) const {
    const ControlGauges& g = dp_.control().gauges();
    const auto value = [](const std::atomic<uint64_t>& a) {
        return static_cast<double>(a.load(std::memory_order_relaxed));
    };
    const auto gauge = [&](const char* name, const char* help, double v) {
        out.push_back(single(name, help, MetricType::Gauge, v));
    };
    const auto counter = [&](const char* name, const char* help, double v) {
        out.push_back(single(name, help, MetricType::Counter, v));
    };
    gauge("amt_endpoints", "Gateway endpoints (address and port) with membership state",
          value(g.endpoints));
    gauge("amt_endpoints_limit", "relay.max_endpoints: the L flag is set at this many endpoints",
          value(g.max_endpoints));
    gauge("amt_groups", "Groups with at least one member endpoint", value(g.groups));
    gauge("amt_flows", "(S,G) and (*,G) forwarding entries", value(g.flows));
    gauge("amt_upstream_groups", "Groups the relay has joined upstream (IGMPv3/MLDv2)",
          value(g.upstream_groups));
    counter("amt_upstream_reports_total", "IGMPv3/MLDv2 reports sent upstream",
            value(g.upstream_reports));
    counter("amt_secret_rotations_total", "MAC secret rotations", value(g.secret_rotations));
    counter("amt_expired_endpoints_total", "Endpoints dropped because they stopped refreshing",
            value(g.expired_endpoints));
    counter("amt_flow_publish_failures_total",
            "Flows that found the flow table full (each counted once until published)",
            value(g.publish_failures));
    gauge("amt_flows_unpublished",
          "Flows with members that are not in the flow table (it was full): they forward "
          "nothing until deleted flows free a slot",
          value(g.flows_unpublished));
    gauge("amt_draining", "1 while the operator drains the relay (amtctl drain on)",
          g.draining.load(std::memory_order_relaxed) ? 1 : 0);
    gauge("amt_refusing_new_gateways",
          "1 while Queries carry the L flag (draining, or at the endpoint limit)",
          g.refusing.load(std::memory_order_relaxed) ? 1 : 0);
    collect_neighbors(dp_.control().neighbors().counters(), out);
    out.push_back(histogram("amt_flow_publish_latency_seconds",
                            "From a membership change to its flow table entry being visible "
                            "to the workers (age of a publish batch's oldest edit)",
                            dp_.control().publisher().publish_latency()));
    out.push_back(histogram("amt_rcu_reclaim_delay_seconds",
                            "From retiring a replaced flow entry to freeing it (RCU grace period "
                            "plus the wait for the next reclaim)",
                            dp_.flows().reclaim_delay()));
    gauge("amt_start_time_seconds", "When the relay started (Unix time)", start_time_);
    MetricFamily info = family("amt_build_info", "The relay's version", MetricType::Gauge);
    add(info, 1, {{"version", AMT_VERSION}});
    out.push_back(std::move(info));
}

std::vector<MetricFamily> RelayMetrics::Collect() const {
    std::vector<MetricFamily> out;
    collect_ports(out);
    collect_workers(out);
    collect_protocol(out);
    collect_control(out);
    for (const auto& source : sources_)
        source(out);
    return out;
}

}  // namespace amt
