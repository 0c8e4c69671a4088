#include "dataplane/daemon/relay_control.hpp"

#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "dataplane/daemon/relay_metrics.hpp"

namespace amt {

using json = nlohmann::ordered_json;

namespace {

std::string flow_source(const FlowKey& key) {
    return key.any_source() ? "*" : key.source.to_string();
}

json membership_json(const GroupMembership& g) {
    json sources = json::array();
    for (const IpAddress& s : g.sources)
        sources.push_back(s.to_string());
    return {{"group", g.group.to_string()},
            {"mode", g.mode == FilterMode::include ? "include" : "exclude"},
            {"sources", std::move(sources)},
            {"older_version_host", g.older_version_host}};
}

template <typename Fn>
uint64_t sum_workers(Dataplane& dp, Fn&& field) {
    uint64_t v = 0;
    for (size_t w = 0; w < dp.worker_count(); ++w)
        v += field(dp.worker(w).counters());
    return v;
}

// "limit": how many entries a listing returns; answers stay small enough for the control thread
// to build between polls.
size_t list_limit(const json& request) {
    if (!request.contains("limit")) return RelayControl::default_list_limit;
    const json& v = request["limit"];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<uint64_t>() > RelayControl::max_list_limit) {
        throw std::invalid_argument("limit must be an integer 0.." +
                                    std::to_string(RelayControl::max_list_limit));
    }
    return v.get<size_t>();
}

}  // namespace

RelayControl::RelayControl(Dataplane& dp, const OperationsConfig& ops)
    : dp_(dp), ops_(ops), started_(std::chrono::steady_clock::now().time_since_epoch()) {}

json RelayControl::handle(const json& request, Time now) {
    const std::string command = request.at("command").get<std::string>();
    if (command == "status") return status(now);
    if (command == "tunnels") return tunnels(request, now);
    if (command == "groups") return groups(request);
    if (command == "drain") return drain(request);
    if (command == "log-level") return log_level(request);
    if (command == "secret-rotate") return rotate_secret(now);
    if (command == "restart-prepare") {
        if (!on_restart_prepare) throw std::invalid_argument("this relay cannot restart-prepare");
        return on_restart_prepare(now);
    }
    throw std::invalid_argument(
        "unknown command \"" + command +
        "\" (status, tunnels, groups, drain, log-level, secret-rotate, restart-prepare)");
}

json RelayControl::status(Time now) {
    ControlThread& control = dp_.control();
    control.update_gauges();
    const ControlGauges& g = control.gauges();
    const RelayEngine& engine = control.engine();
    const EngineConfig& config = engine.config();
    json addresses = json::array();
    for (const IpAddress& a : config.relay_addresses)
        addresses.push_back(a.to_string());
    uint64_t dropped = 0;
    for (const DropCount& d : drop_counts(dp_))
        dropped += d.value;
    return {
        {"version", AMT_VERSION},
        {"pid", getpid()},
        {"uptime_seconds", std::chrono::duration_cast<Seconds>(now - started_).count()},
        {"relay_addresses", std::move(addresses)},
        {"workers", dp_.worker_count()},
        {"draining", engine.draining()},
        {"refusing_new_gateways", engine.refusing_new_endpoints()},
        {"endpoints", g.endpoints.load()},
        {"endpoints_limit", config.limits.max_endpoints},
        {"groups", g.groups.load()},
        {"flows", g.flows.load()},
        {"flows_unpublished", g.flows_unpublished.load()},
        {"upstream_groups", g.upstream_groups.load()},
        {"multicast_packets",
         sum_workers(dp_, [](const WorkerCounters& c) { return c.multicast_in.value(); })},
        {"replicas", sum_workers(dp_, [](const WorkerCounters& c) { return c.replicas.value(); })},
        {"dropped", dropped},
        {"secret_rotations", g.secret_rotations.load()},
        {"query_interval_seconds", config.query_interval.count()},
        {"membership_timeout_seconds", config.membership_timeout.count()},
        {"log_level", spdlog::level::to_string_view(spdlog::get_level()).data()},
        {"state_restored", state_ && state_->stats().restored.load()},
        {"state_restored_endpoints", state_ ? state_->stats().restored_endpoints.load() : 0},
        {"state_snapshot_age_seconds", snapshot_age_seconds()},
    };
}

// Seconds since the last state snapshot was written; -1 when there is none.
double RelayControl::snapshot_age_seconds() const {
    const int64_t saved = state_ ? state_->stats().last_saved_unix_ns.load() : 0;
    return saved == 0 ? -1.0 : static_cast<double>(unix_now_ns() - saved) / 1e9;
}

json RelayControl::tunnels(const json& request, Time now) {
    std::optional<IpAddress> group;
    if (request.contains("group")) {
        const std::string text = request["group"].get<std::string>();
        group = IpAddress::parse(text);
        if (!group || !group->is_multicast())
            throw std::invalid_argument("group \"" + text + "\" is not a multicast address");
    }
    const size_t limit = list_limit(request);
    json list = json::array();
    size_t matched = 0;
    const MembershipDb& db = dp_.control().engine().memberships();
    db.for_each_endpoint([&](const EndpointRecord& e) {
        if (group && std::none_of(e.groups.begin(), e.groups.end(),
                                  [&](const GroupMembership& g) { return g.group == *group; })) {
            return;
        }
        if (++matched > limit) return;
        json groups = json::array();
        for (const GroupMembership& g : e.groups)
            groups.push_back(membership_json(g));
        const Time expires = MembershipDb::expiry(e) - now;
        list.push_back({{"gateway", e.address.to_string()},
                        {"relay", e.relay.ip.to_string()},
                        {"expires_in_seconds",
                         std::max<double>(0, std::chrono::duration<double>(expires).count())},
                        {"groups", std::move(groups)}});
    });
    return {{"total", matched}, {"tunnels", std::move(list)}};
}

json RelayControl::groups(const json& request) {
    const size_t limit = list_limit(request);
    ControlThread& control = dp_.control();
    std::vector<std::pair<FlowKey, size_t>> flows;
    control.publisher().for_each_flow(
        [&](const FlowKey& key, size_t members) { flows.emplace_back(key, members); });
    std::sort(flows.begin(), flows.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    json list = json::array();
    for (const auto& [key, members] : flows) {
        if (list.size() == limit) break;
        list.push_back({{"source", flow_source(key)},
                        {"group", key.group.to_string()},
                        {"tunnels", members},
                        {"forwarding", control.publisher().forwarding(key)},
                        {"joined_upstream", control.upstream().joined(key)}});
    }
    return {{"total", flows.size()}, {"groups", std::move(list)}};
}

json RelayControl::drain(const json& request) {
    const std::string state = request.value("state", "");
    if (state != "on" && state != "off")
        throw std::invalid_argument("drain: state must be on or off");
    const bool on = state == "on";
    RelayEngine& engine = dp_.control().engine();
    const bool changed = engine.draining() != on;
    engine.set_draining(on);
    dp_.control().update_gauges();
    spdlog::warn("drain {}: Queries {} the L flag{}", state, on ? "carry" : "no longer carry",
                 changed ? "" : " (unchanged)");
    const std::string& hook = on ? ops_.drain_on_command : ops_.drain_off_command;
    if (changed && !hook.empty()) run_hook(hook, on ? "drain.on_command" : "drain.off_command");
    return {{"draining", on}, {"changed", changed}, {"command", changed ? hook : ""}};
}

json RelayControl::log_level(const json& request) {
    const std::string level = request.value("level", "");
    const auto parsed = spdlog::level::from_str(level);
    // from_str answers "off" for anything it does not know.
    if (parsed == spdlog::level::off && level != "off") {
        throw std::invalid_argument(
            "log-level: level must be trace, debug, info, warn, error, critical or off");
    }
    const std::string before(spdlog::level::to_string_view(spdlog::get_level()).data());
    spdlog::set_level(parsed);
    spdlog::info("log level {} → {} (control socket)", before, level);
    return {{"previous", before}, {"level", level}};
}

json RelayControl::rotate_secret(Time now) {
    dp_.control().engine().rotate_secret(now);
    dp_.control().update_gauges();
    spdlog::info("MAC secret rotated by the operator; the previous one stays valid for {} s",
                 dp_.control().engine().config().previous_secret_window().count());
    return {{"generation", dp_.secrets().generation()}};
}

void RelayControl::run_hook(const std::string& command, const char* what) {
    // fork + exec rather than posix_spawn: the child must not keep the relay's descriptors
    // (hugepage memfds, sockets) nor its pinning to the main lcore's CPU.
    const pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t all;
        CPU_ZERO(&all);
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            CPU_SET(cpu, &all);
        sched_setaffinity(0, sizeof(all), &all);  // the kernel keeps the online ones
        closefrom(3);
        execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    if (pid < 0) {
        spdlog::error("{}: cannot start /bin/sh -c '{}': {}", what, command, std::strerror(errno));
        return;
    }
    spdlog::info("{}: started '{}' (pid {})", what, command, pid);
    hooks_.push_back(pid);
}

void RelayControl::reap_hooks() {
    std::erase_if(hooks_, [](pid_t pid) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) != pid) return false;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            spdlog::info("drain hook (pid {}) finished", pid);
        } else {
            spdlog::error("drain hook (pid {}) failed: {}", pid,
                          WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                            : "signal " + std::to_string(WTERMSIG(status)));
        }
        return true;
    });
}

}  // namespace amt
