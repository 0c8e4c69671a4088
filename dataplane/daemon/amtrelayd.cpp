// amtrelayd: the AMT relay daemon. Loads the configuration, starts the EAL, the ports, the
// workers (on EAL lcores) and runs the control thread on the main lcore until SIGTERM/SIGINT.
// SIGHUP reloads limits, timers, flags and the log level without dropping tunnels. Serves
// Prometheus metrics over HTTP and the operator's commands (amtctl) on a UNIX socket.
#include <grp.h>
#include <prometheus/exposer.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "controlplane/control_socket.hpp"
#include "dataplane/daemon/flow_refusal_log.hpp"
#include "dataplane/daemon/relay_config.hpp"
#include "dataplane/daemon/relay_control.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/eal.hpp"

using namespace amt;

namespace {

std::atomic<bool> stop_requested{false};
std::atomic<bool> reload_requested{false};

void on_signal(int sig) {
    if (sig == SIGHUP) {
        reload_requested = true;
    } else {
        stop_requested = true;
    }
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaction(sig, &sa, nullptr);
}

void log_startup(const RelayConfig& c, Dataplane& dp) {
    const EngineConfig& e = c.dataplane.engine;
    std::string relays, discovery;
    for (const IpAddress& a : e.relay_addresses)
        relays += (relays.empty() ? "" : ", ") + a.to_string();
    for (const IpAddress& a : e.discovery_addresses)
        discovery += (discovery.empty() ? "" : ", ") + a.to_string();
    spdlog::info("relay addresses: {}; discovery addresses: {}", relays, discovery);
    spdlog::info("ports: downstream {} (mtu {}), upstream {}; {} worker(s); chaining {}",
                 c.dataplane.port, dp.port().mtu(),
                 c.dataplane.upstream_port.empty() ? c.dataplane.port : c.dataplane.upstream_port,
                 c.dataplane.workers, c.dataplane.replication.chaining ? "on" : "off");
    if (dp.control_shares_tx_queue()) {
        spdlog::info(
            "ports: one TX queue per worker, no spare: the control thread shares the last "
            "worker's under a lock");
    }
    const DataplaneConfig& d = c.dataplane;
    std::string sources;
    for (const IpPrefix& p : d.upstream_source_prefixes)
        sources += (sources.empty() ? "" : ", ") + p.to_string();
    const bool one_port = d.upstream_port.empty() || d.upstream_port == d.port;
    if (one_port && sources.empty()) {
        spdlog::warn(
            "ports: one port carries gateways and sources and upstream.source_prefixes is empty: "
            "all native multicast is refused (multicast_source_not_allowed); list the sources' "
            "prefixes there, or give the sources a port of their own (ports.upstream)");
    } else {
        spdlog::info("native multicast accepted from: {}{}", one_port ? "" : "the upstream port",
                     sources.empty() ? "" : (one_port ? "" : ", sources in ") + sources);
    }
    spdlog::info("flow table {} entries; flow budgets: {} per source address, {} per endpoint",
                 d.flow_table_size, e.limits.max_flows_per_source_ip,
                 e.limits.max_flows_per_endpoint);
    std::string on_link;
    for (const IpPrefix& p : d.downstream_prefixes)
        on_link += (on_link.empty() ? "" : ", ") + p.to_string();
    if (!on_link.empty()) {
        spdlog::info("gateways on the relay's link ({}) are resolved with ARP / ND (at most {})",
                     on_link, d.max_neighbors);
    }
    spdlog::info(
        "query interval {} s, membership timeout {} s, secret rotation {} s, teardown {}, asm {}",
        e.query_interval.count(), e.membership_timeout.count(), e.secret_rotation.count(),
        e.teardown ? "on" : "off", e.asm_enabled ? "on" : "off");
}

// Drop counters summarised at a bounded rate: input from the network is never logged per packet.
// Records ignored and inner-header anomalies (checklist §8.4) are summarised the same way; each
// anomaly names the last endpoint that sent it, so the operator can find the odd gateway.
class DropSummary {
  public:
    void log_changes(Dataplane& dp) {
        const std::string dropped = changes(drop_counts(dp), last_drops_, nullptr);
        if (!dropped.empty()) spdlog::warn("dropped since last summary: {}", dropped);
        const std::string ignored = changes(ignored_record_counts(dp), last_ignored_, nullptr);
        if (!ignored.empty()) spdlog::info("group records ignored since last summary: {}", ignored);
        const RelayEngine& engine = dp.control().engine();
        const std::string odd = changes(anomaly_counts(dp), last_anomalies_, [&](size_t i) {
            return engine.last_anomaly_from(static_cast<InnerAnomaly>(i)).to_string();
        });
        if (!odd.empty())
            spdlog::info("accepted Updates with odd inner headers since last summary: {}", odd);
    }

  private:
    // "reason=N, ..." for the counts that rose; `from(i)`, if given, names who sent the last one.
    template <typename Count, typename From>
    static std::string changes(std::vector<Count> now, std::vector<Count>& last, From from) {
        std::string line;
        for (size_t i = 0; i < now.size(); ++i) {
            const uint64_t before = i < last.size() ? last[i].value : 0;
            if (now[i].value <= before) continue;
            line += fmt::format("{}{}={}", line.empty() ? "" : ", ", now[i].reason,
                                now[i].value - before);
            if constexpr (!std::is_same_v<From, std::nullptr_t>)
                line += fmt::format(" (last from {})", from(i));
        }
        last = std::move(now);
        return line;
    }

    std::vector<DropCount> last_drops_;
    std::vector<ReasonCount> last_ignored_;
    std::vector<ReasonCount> last_anomalies_;
};

void reload(const std::string& path, Dataplane& dp, RelayControl& control) {
    try {
        const RelayConfig fresh = load_relay_config(path);
        dp.control().engine().reconfigure(fresh.dataplane.engine);
        control.reconfigure(fresh.operations);
        spdlog::set_level(spdlog::level::from_str(fresh.log_level));
        spdlog::info(
            "SIGHUP: reloaded limits, timers, flags, drain hooks and log level from {} (ports, "
            "addresses, EAL arguments, metrics and control socket need a restart)",
            path);
    } catch (const ConfigError& e) {
        spdlog::error("SIGHUP: {}; keeping the running configuration", e.what());
    }
}

// The Prometheus exporter; null when metrics.listen is "". Started before the EAL so that its
// HTTP threads are not pinned to the main lcore's CPU.
std::unique_ptr<prometheus::Exposer> start_exposer(const OperationsConfig& ops) {
    if (ops.metrics_listen.empty()) return nullptr;
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
        exposer = std::make_unique<prometheus::Exposer>(ops.metrics_listen, 2);
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics.listen = \"" + ops.metrics_listen +
                                 "\": cannot listen (" + e.what() +
                                 "): is the port in use or the address not local?");
    }
    spdlog::info("metrics: http://{}/metrics", ops.metrics_listen);
    return exposer;
}

// Registers the relay's metrics with the exporter for as long as it lives. Unregistering waits
// for a scrape in progress, so no scrape reads the Dataplane while it is torn down.
class MetricsRegistration {
  public:
    MetricsRegistration(prometheus::Exposer* exposer, std::shared_ptr<RelayMetrics> metrics)
        : exposer_(exposer), metrics_(std::move(metrics)) {
        if (exposer_) exposer_->RegisterCollectable(metrics_);
    }
    ~MetricsRegistration() {
        if (exposer_) exposer_->RemoveCollectable(metrics_);
    }
    MetricsRegistration(const MetricsRegistration&) = delete;
    MetricsRegistration& operator=(const MetricsRegistration&) = delete;

  private:
    prometheus::Exposer* exposer_;
    std::shared_ptr<RelayMetrics> metrics_;
};

std::unique_ptr<ControlSocket> open_control_socket(const OperationsConfig& ops) {
    if (ops.control_socket.empty()) return nullptr;
    std::optional<gid_t> group;
    if (!ops.control_group.empty()) {
        const struct group* g = getgrnam(ops.control_group.c_str());
        if (g == nullptr) throw std::runtime_error("control.group: no group " + ops.control_group);
        group = g->gr_gid;
    }
    auto socket = std::make_unique<ControlSocket>(ops.control_socket, group);
    spdlog::info("control socket: {} (amtctl --socket {})", ops.control_socket, ops.control_socket);
    return socket;
}

// AF_XDP mode, before the EAL: net_af_xdp loads the steering program when its port starts and
// reuses the maps pinned and filled here (see dataplane/xdp_steering.hpp).
std::unique_ptr<XdpSteering> prepare_af_xdp(RelayConfig& c) {
    if (!c.af_xdp) return nullptr;
    const AfXdpConfig& x = *c.af_xdp;
    XdpSteeringSetup setup{.object_path = x.program.empty() ? default_program_path() : x.program,
                           .interface = x.interface,
                           .mode = x.mode,
                           .addresses = c.dataplane.engine.relay_addresses,
                           .multicast_ranges = x.multicast_ranges};
    const auto& discovery = c.dataplane.engine.discovery_addresses;
    setup.addresses.insert(setup.addresses.end(), discovery.begin(), discovery.end());
    const uint16_t queues = af_xdp_queues(x, c.dataplane.workers);
    c.eal_args.push_back("--vdev");
    c.eal_args.push_back(af_xdp_vdev(x, queues));
    spdlog::info("af_xdp: {} queue(s) from {} on {}{}", queues, x.start_queue, x.interface,
                 queues == c.dataplane.workers
                     ? " (one per worker: the control thread shares the last worker's)"
                     : "");
    spdlog::info(
        "af_xdp: replication copies packets (chaining off: DPDK 22.11's net_af_xdp "
        "cannot send chained mbufs)");
    return std::make_unique<XdpSteering>(setup);
}

void log_xdp_counters(const XdpSteering& xdp) {
    const XdpCounters n = xdp.counters();
    spdlog::info(
        "af_xdp: steered amt={} multicast={} igmp_mld={}; passed={} malformed={} fragment={} "
        "other_vlan={}; no_socket={}",
        n.steered_amt, n.steered_multicast, n.steered_igmp_mld, n.passed, n.passed_malformed,
        n.passed_fragment, n.passed_other_vlan, n.no_socket);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"amtrelayd: AMT relay (RFC 7450) on DPDK"};
    std::string config_path = "/etc/amtrelayd/amtrelayd.toml";
    bool check_only = false;
    std::string log_level;
    app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
    app.add_flag("--check", check_only, "check the configuration and exit");
    app.add_option("--log-level", log_level, "override log.level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    std::optional<std::string> metrics_listen, control_socket;
    app.add_option("--metrics-listen", metrics_listen,
                   "override metrics.listen (HOST:PORT; \"\" disables)");
    app.add_option("--control-socket", control_socket,
                   "override control.socket (a path; \"\" disables)");
    app.set_version_flag("--version", "amtrelayd " AMT_VERSION);
    app.footer(
        "Every configuration key, with its default, is in README.md (Configuration reference);\n"
        "examples in deploy/examples. Signals: SIGTERM/SIGINT stop gracefully (stop answering,\n"
        "stop data, leave upstream); SIGHUP reloads limits, timers, flags and the log level.\n"
        "Planned restart without a gap: amtctl restart-prepare (saves state.file, keeps the\n"
        "upstream joins), then start the new relay with the same state.file.\n"
        "Operate a running relay with amtctl (status, tunnels, groups, drain, log-level, secret).");
    CLI11_PARSE(app, argc, argv);

    RelayConfig config;
    try {
        config = load_relay_config(config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "amtrelayd: configuration error: %s\n", e.what());
        return 2;
    }
    if (!log_level.empty()) config.log_level = log_level;
    if (metrics_listen) config.operations.metrics_listen = *metrics_listen;
    if (control_socket) config.operations.control_socket = *control_socket;
    if (const std::string& m = config.operations.metrics_listen; !m.empty()) {
        if (const std::string problem = check_listen_address(m); !problem.empty()) {
            std::fprintf(stderr, "amtrelayd: --metrics-listen %s: %s\n", m.c_str(),
                         problem.c_str());
            return 2;
        }
    }
    spdlog::set_level(spdlog::level::from_str(config.log_level));
    if (check_only) {
        std::printf("%s: configuration OK\n", config_path.c_str());
        return 0;
    }

    install_signal_handlers();
    bool planned_restart = false;
    try {
        // The control socket first: a second relay started by mistake stops here ("in use")
        // before it touches the first one's XDP program or ports.
        const auto control_socket = open_control_socket(config.operations);
        auto exposer = start_exposer(config.operations);
        const std::unique_ptr<XdpSteering> xdp = prepare_af_xdp(config);  // outlives the EAL
        Eal eal(config.eal_args);
        Dataplane dp(config.dataplane);
        if (xdp) {
            spdlog::info("af_xdp: steering program attached to {} in {} mode",
                         config.af_xdp->interface, xdp->adopt_attached());
        }
        log_startup(config, dp);
        auto metrics = std::make_shared<RelayMetrics>(dp);
        if (xdp) {
            metrics->add_source([&steering = *xdp](std::vector<prometheus::MetricFamily>& out) {
                out.push_back(xdp_family(steering.counters()));
            });
        }
        StateKeeper state(config.state, dp.control());
        if (state.enabled()) {  // sources are added before the exporter can scrape
            metrics->add_source([&state](std::vector<prometheus::MetricFamily>& out) {
                add_state_families(state.stats(), out);
            });
        }
        // Per-tunnel accounting: sessions from the first edit on, restored tunnels included.
        std::unique_ptr<IpfixExporter> ipfix;
        if (config.ipfix.enabled()) {
            ipfix = std::make_unique<IpfixExporter>(config.ipfix);
            const Time wall_offset = std::chrono::system_clock::now().time_since_epoch() -
                                     std::chrono::steady_clock::now().time_since_epoch();
            dp.control().start_accounting(
                *ipfix, std::chrono::seconds(config.ipfix.active_timeout_seconds), wall_offset);
            metrics->add_source(
                [&exporter = *ipfix, &dp](std::vector<prometheus::MetricFamily>& out) {
                    add_ipfix_families(exporter.stats(),
                                       dp.control().gauges().accounting_sessions.load(), out);
                });
            spdlog::info(
                "ipfix: per-tunnel records to {} over {}, observation domain {}, active timeout "
                "{} s",
                config.ipfix.collector, "UDP", config.ipfix.observation_domain,
                config.ipfix.active_timeout_seconds);
        }
        const MetricsRegistration registration(exposer.get(), metrics);
        RelayControl relay_control(dp, config.operations);
        ControlThread& control = dp.control();
        // Saved state goes in before the first poll: flows published, upstream joins sent.
        state.restore(std::chrono::steady_clock::now().time_since_epoch());
        if (state.enabled()) relay_control.set_state(&state);
        bool keep_upstream = false;
        relay_control.on_restart_prepare = [&](Time now) {
            if (!state.enabled()) {
                throw std::invalid_argument(
                    "state.file is not set: a new process would have nothing to restore (set it "
                    "and restart once)");
            }
            // Stop answering and stop data first, so the saved state is the last word.
            dp.stop_workers();
            control.poll_once(now);  // what the workers passed on before they stopped
            size_t endpoints = 0, bytes = 0;
            const std::string error = state.save_now(now, endpoints, bytes);
            if (!error.empty()) {
                dp.start_workers();  // nothing saved: the relay goes on as it was
                spdlog::error("restart-prepare: {}; not stopping, the relay goes on", error);
                throw std::invalid_argument(error + "; not stopping: the relay goes on");
            }
            spdlog::info(
                "restart-prepare: saved {} tunnel(s) ({} octets) to {}; stopping without leaving "
                "upstream",
                endpoints, bytes, config.state.file);
            keep_upstream = true;
            stop_requested = true;
            return nlohmann::ordered_json{
                {"saved_endpoints", endpoints}, {"bytes", bytes}, {"file", config.state.file}};
        };
        dp.start_workers();
        spdlog::info("relay running (pid {})", getpid());

        DropSummary drops;
        FlowRefusalLog flow_refusals;
        auto last_summary = std::chrono::steady_clock::now();
        auto last_socket_poll = last_summary;
        auto last_load_sample = last_summary;
        while (!stop_requested.load()) {
            const auto now = std::chrono::steady_clock::now();
            if (control.poll_once(now.time_since_epoch()) == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
            // The operator's commands run here, between polls, on the thread that owns the engine.
            if (control_socket && now - last_socket_poll >= std::chrono::milliseconds(10)) {
                control_socket->poll([&](const nlohmann::ordered_json& request) {
                    return relay_control.handle(request, now.time_since_epoch());
                });
                relay_control.reap_hooks();
                last_socket_poll = now;
            }
            if (now - last_load_sample >= std::chrono::seconds(1)) {
                metrics->sample_worker_load();
                last_load_sample = now;
            }
            if (reload_requested.exchange(false)) reload(config_path, dp, relay_control);
            state.maybe_snapshot(now.time_since_epoch());
            if (now - last_summary >= std::chrono::seconds(config.drop_log_interval_seconds)) {
                drops.log_changes(dp);
                for (const FlowRefusalLog::Line& l : flow_refusals.since_last(dp))
                    spdlog::log(l.warning ? spdlog::level::warn : spdlog::level::info, l.text);
                last_summary = now;
            }
        }
        if (keep_upstream) {
            // Planned restart: the routers keep forwarding to the new process (graceful restart).
            spdlog::info("stopping for a planned restart: state saved, upstream joins kept");
        } else {
            // Checklist §2.15: stop answering and stop data (the workers), then leave upstream.
            spdlog::info("stopping: workers first, then leaving every group upstream");
            dp.stop_workers();
            control.leave_upstream();
        }
        if (ipfix) {
            // Every open session ends now (relay_stop); what is queued gets 2 s to leave.
            control.stop_accounting(std::chrono::steady_clock::now().time_since_epoch());
            ipfix->finish(std::chrono::seconds(2));
            const IpfixStats& st = ipfix->stats();
            spdlog::info("ipfix: {} record(s) exported, {} dropped (queue full), {} not sent",
                         st.exported.load(), st.dropped_queue_full.load(),
                         st.dropped_send_failed.load());
        }
        if (xdp) log_xdp_counters(*xdp);
        spdlog::info("stopped");
        // Planned restart: the new process waits for this one to exit, and stopping the
        // exporter's HTTP server takes 2 s (civetweb's poll quantum; measured: SIGTERM to exit
        // 2.0 s with metrics, 0.015 s without). It is left to the exit below instead; the
        // metrics are unregistered, the ports and the EAL torn down as usual.
        if (keep_upstream) {
            planned_restart = true;
            (void)exposer.release();  // not destroyed on purpose: see above
        }
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
    if (planned_restart) {
        // The exporter's threads still run: no static destructors under them.
        spdlog::default_logger()->flush();
        std::fflush(stdout);
        std::_Exit(0);
    }
    return 0;
}
