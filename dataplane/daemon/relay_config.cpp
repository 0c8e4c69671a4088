#include "dataplane/daemon/relay_config.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace amt {

namespace {

// Reads one table, remembering which keys were used so that the rest can be reported unknown.
class Section {
  public:
    Section(const toml::table& root, std::string name, const std::string& origin)
        : name_(std::move(name)), origin_(origin) {
        if (const toml::node* n = root.get(name_)) {
            table_ = n->as_table();
            if (table_ == nullptr) fail(name_, "must be a table ([" + name_ + "])");
        }
    }

    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw ConfigError(origin_ + ": " + key + ": " + what);
    }

    template <typename T>
    void integer(const char* key, T& out, long long min, long long max) {
        const toml::node* n = find(key);
        if (n == nullptr) return;
        const auto v = n->value<int64_t>();
        if (!v || !n->is_integer()) fail(qualified(key), "must be an integer");
        if (*v < min || *v > max) {
            fail(qualified(key) + " = " + std::to_string(*v),
                 "must be " + std::to_string(min) + ".." + std::to_string(max));
        }
        out = static_cast<T>(*v);
    }
    void boolean(const char* key, bool& out) {
        const toml::node* n = find(key);
        if (n == nullptr) return;
        if (!n->is_boolean()) fail(qualified(key), "must be true or false");
        out = *n->value<bool>();
    }
    void number(const char* key, double& out, double min) {
        const toml::node* n = find(key);
        if (n == nullptr) return;
        const auto v = n->value<double>();
        if (!v) fail(qualified(key), "must be a number");
        if (*v < min)
            fail(qualified(key) + " = " + std::to_string(*v), "must be >= " + std::to_string(min));
        out = *v;
    }
    bool string(const char* key, std::string& out) {
        const toml::node* n = find(key);
        if (n == nullptr) return false;
        if (!n->is_string()) fail(qualified(key), "must be a string");
        out = *n->value<std::string>();
        return true;
    }
    void strings(const char* key, std::vector<std::string>& out) {
        const toml::node* n = find(key);
        if (n == nullptr) return;
        const toml::array* a = n->as_array();
        if (a == nullptr) fail(qualified(key), "must be an array of strings");
        out.clear();
        for (const toml::node& e : *a) {
            if (!e.is_string()) fail(qualified(key), "must be an array of strings");
            out.push_back(*e.value<std::string>());
        }
    }
    void address(const char* key, std::optional<IpAddress>& out, bool unicast = true) {
        std::string text;
        if (!string(key, text)) return;
        out = parse_address(key, text, unicast);
    }
    void addresses(const char* key, std::vector<IpAddress>& out, bool unicast = true) {
        std::vector<std::string> texts;
        if (find(key) == nullptr) return;
        strings(key, texts);
        out.clear();
        for (const std::string& t : texts)
            out.push_back(parse_address(key, t, unicast));
    }
    void prefixes(const char* key, std::vector<IpPrefix>& out) {
        std::vector<std::string> texts;
        strings(key, texts);
        for (const std::string& t : texts) {
            const auto p = IpPrefix::parse(t);
            if (!p) {
                fail(qualified(key) + ": \"" + t + "\"",
                     "must be a prefix like \"198.51.100.0/24\" or \"2001:db8::/32\" (no host "
                     "bits set; a bare address is a /32 or /128)");
            }
            out.push_back(*p);
        }
    }
    void mac(const char* key, std::optional<MacAddress>& out) {
        std::string text;
        if (!string(key, text)) return;
        MacAddress m;
        unsigned b[6];
        char tail;
        if (text.size() != 17 || std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0],
                                             &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
            fail(qualified(key) + " = \"" + text + "\"",
                 "must be a MAC address like 02:00:5e:10:00:01");
        }
        for (size_t i = 0; i < 6; ++i)
            m[i] = static_cast<uint8_t>(b[i]);
        out = m;
    }

    // Every key of the table must have been read.
    void reject_unknown() const {
        if (table_ == nullptr) return;
        for (const auto& [key, value] : *table_) {
            if (used_.count(std::string(key.str())) == 0) {
                fail(qualified(std::string(key.str()).c_str()),
                     "unknown key (see the README's configuration reference)");
            }
        }
    }

  private:
    const toml::node* find(const char* key) {
        used_.insert(key);
        return table_ ? table_->get(key) : nullptr;
    }
    std::string qualified(const char* key) const { return name_ + "." + key; }
    IpAddress parse_address(const char* key, const std::string& text, bool unicast) const {
        const auto a = IpAddress::parse(text);
        if (!a) fail(qualified(key) + " = \"" + text + "\"", "must be an IPv4 or IPv6 address");
        if (unicast && (a->is_multicast() || a->is_unspecified())) {
            fail(qualified(key) + " = \"" + text + "\"", "must be a unicast address");
        }
        return *a;
    }

    std::string name_;
    const std::string& origin_;
    const toml::table* table_ = nullptr;
    std::set<std::string> used_;
};

const std::set<std::string> sections = {"eal",      "ports",     "relay", "limits", "downstream",
                                        "upstream", "dataplane", "log",   "af_xdp", "metrics",
                                        "control",  "drain",     "state", "ipfix"};

// [af_xdp]: net_af_xdp on a kernel-owned interface with the project's XDP program. Fills
// c.af_xdp, adds the PMD's --vdev to the EAL arguments and names the port.
void parse_af_xdp(const toml::table& root, const std::string& origin, RelayConfig& c) {
    if (root.get("af_xdp") == nullptr) return;
    Section s(root, "af_xdp", origin);
    AfXdpConfig x;
    if (!s.string("interface", x.interface) || x.interface.empty())
        s.fail("af_xdp.interface", "is required (the kernel interface, e.g. \"eth1\")");
    if (x.interface.size() >= 16 || x.interface.find_first_of(",=/ ") != std::string::npos)
        s.fail("af_xdp.interface = \"" + x.interface + "\"", "must be an interface name");
    s.integer("start_queue", x.start_queue, 0, 1023);
    s.integer("queues", x.queues, 0, 1024);
    std::string mode = "auto";
    if (s.string("xdp_mode", mode)) {
        const auto m = parse_xdp_mode(mode);
        if (!m) s.fail("af_xdp.xdp_mode = \"" + mode + "\"", "must be auto, native or generic");
        x.mode = *m;
    }
    std::vector<std::string> ranges;
    s.strings("multicast_ranges", ranges);
    if (!ranges.empty()) x.multicast_ranges.clear();
    for (const std::string& r : ranges) {
        const auto range = MulticastRange::parse(r);
        if (!range) {
            s.fail("af_xdp.multicast_ranges: \"" + r + "\"",
                   "must be a multicast prefix like \"232.0.0.0/8\" or \"ff3e::/16\" (length "
                   "4..32 for IPv4, 8..128 for IPv6)");
        }
        x.multicast_ranges.push_back(*range);
    }
    s.string("program", x.program);
    s.reject_unknown();
    const uint16_t workers = c.dataplane.workers;
    if (x.queues != 0 && x.queues < workers) {
        s.fail("af_xdp.queues = " + std::to_string(x.queues),
               "must be 0 (automatic) or at least ports.workers = " + std::to_string(workers) +
                   " (one RX/TX queue pair per worker)");
    }
    DataplaneConfig& d = c.dataplane;
    if (d.port.empty()) d.port = "net_af_xdp0";
    if (d.port != "net_af_xdp0" || (!d.upstream_port.empty() && d.upstream_port != d.port)) {
        s.fail("ports.downstream / ports.upstream",
               "with [af_xdp] the relay has one port, net_af_xdp0 (leave them out)");
    }
    // The kernel keeps ARP and ND on this interface (the XDP program passes them), so the
    // relay never sees the replies it would resolve a next hop from.
    if ((d.next_hop_v4 && !d.next_hop_v4_mac) || (d.next_hop_v6 && !d.next_hop_v6_mac)) {
        s.fail(
            d.next_hop_v4 && !d.next_hop_v4_mac ? "downstream.next_hop" : "downstream.next_hop_v6",
            "in AF_XDP mode the kernel receives ARP and ND, so the relay cannot resolve it: "
            "give downstream.next_hop_mac / next_hop_v6_mac (see `ip neigh show`)");
    }
    if (!d.downstream_prefixes.empty()) {
        s.fail("downstream.prefixes",
               "in AF_XDP mode the kernel receives ARP and ND, so the relay cannot resolve "
               "on-link gateways: leave it out (replicas go to downstream.next_hop_mac)");
    }
    // DPDK 22.11's AF_XDP TX cannot send chained mbufs: replicas are copies.
    d.replication.chaining = false;
    // The --vdev is added at start-up (af_xdp_queues() asks the interface for its channels).
    c.af_xdp = x;
}

void parse_operations(const toml::table& root, const std::string& origin, OperationsConfig& o) {
    Section metrics(root, "metrics", origin);
    if (metrics.string("listen", o.metrics_listen) && !o.metrics_listen.empty()) {
        if (const std::string problem = check_listen_address(o.metrics_listen); !problem.empty())
            metrics.fail("metrics.listen = \"" + o.metrics_listen + "\"", problem);
    }
    metrics.reject_unknown();

    Section control(root, "control", origin);
    if (control.string("socket", o.control_socket) && !o.control_socket.empty() &&
        o.control_socket[0] != '/') {
        control.fail("control.socket = \"" + o.control_socket + "\"",
                     "must be an absolute path (or \"\" to disable the control socket)");
    }
    if (control.string("group", o.control_group) && !o.control_group.empty() &&
        getgrnam(o.control_group.c_str()) == nullptr) {
        control.fail(
            "control.group = \"" + o.control_group + "\"",
            "no such group: create it (groupadd " + o.control_group + ") or name an existing one");
    }
    control.reject_unknown();

    Section drain(root, "drain", origin);
    drain.string("on_command", o.drain_on_command);
    drain.string("off_command", o.drain_off_command);
    drain.reject_unknown();
}

void parse_state(const toml::table& root, const std::string& origin, StateConfig& st) {
    Section s(root, "state", origin);
    if (s.string("file", st.file) && !st.file.empty()) {
        if (st.file[0] != '/' || st.file.back() == '/') {
            s.fail("state.file = \"" + st.file + "\"",
                   "must be an absolute file path, e.g. \"/var/lib/amtrelayd/state\" (or \"\" "
                   "to disable saved state)");
        }
        const std::string dir = st.file.substr(0, st.file.rfind('/'));
        struct stat info {};
        if (!dir.empty() && (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))) {
            s.fail(
                "state.file = \"" + st.file + "\"",
                "its folder " + dir + " does not exist: create it (mode 0700) or choose another");
        }
    }
    s.integer("snapshot_interval", st.snapshot_interval_seconds, 0, 3600);
    s.reject_unknown();
}

// [ipfix]: per-tunnel accounting records to a collector (issue 15). Off without a collector.
void parse_ipfix(const toml::table& root, const std::string& origin, RelayConfig& c) {
    Section s(root, "ipfix", origin);
    IpfixConfig& x = c.ipfix;
    if (s.string("collector", x.collector) && !x.collector.empty()) {
        const auto [host, port] = split_host_port(x.collector);
        const bool port_ok = !port.empty() && port.size() <= 5 &&
                             port.find_first_not_of("0123456789") == std::string::npos &&
                             std::stoi(port) >= 1 && std::stoi(port) <= 65535;
        const bool host_ok = !host.empty() && (IpAddress::parse(host).has_value() ||
                                               host.find_first_of(" :[]/") == std::string::npos);
        if (!port_ok || !host_ok) {
            s.fail("ipfix.collector = \"" + x.collector + "\"",
                   "must be HOST:PORT, e.g. \"192.0.2.9:4739\", \"[2001:db8::9]:4739\" or "
                   "\"collector.example:4739\" (or \"\" to switch the export off)");
        }
    }
    std::string transport = "udp";
    if (s.string("transport", transport) && transport != "udp") {
        s.fail("ipfix.transport = \"" + transport + "\"",
               "must be \"udp\" (TCP is not offered: a collector that stops reading would stall "
               "the export)");
    }
    s.integer("observation_domain", x.observation_domain, 0, 4'294'967'295LL);
    s.integer("active_timeout", x.active_timeout_seconds, 1, 86400);
    s.integer("template_refresh", x.template_refresh_seconds, 1, 3600);
    s.integer("queue_records", x.queue_records, 1024, 16'777'216);
    s.reject_unknown();
    c.dataplane.count_flows = x.enabled();
}

}  // namespace

std::string check_listen_address(const std::string& text) {
    const size_t colon = text.rfind(':');
    const std::string allowed = "must be HOST:PORT, e.g. \"127.0.0.1:9850\" or \"[::1]:9850\"";
    if (colon == std::string::npos || colon == 0) return allowed;
    std::string host = text.substr(0, colon);
    const std::string port = text.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
        return "port must be 1..65535";
    }
    if (host.front() == '[') {
        if (host.back() != ']') return allowed;
        host = host.substr(1, host.size() - 2);
        const auto a = IpAddress::parse(host);
        return a && a->is_v6() ? "" : allowed;
    }
    const auto a = IpAddress::parse(host);
    return a && a->is_v4() ? "" : allowed;
}

RelayConfig parse_relay_config(const std::string& text, const std::string& origin) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        std::ostringstream msg;
        msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
            << e.description();
        throw ConfigError(msg.str());
    }
    for (const auto& [key, value] : root) {
        if (sections.count(std::string(key.str())) == 0) {
            throw ConfigError(
                origin + ": [" + std::string(key.str()) +
                "]: unknown section (allowed: eal, ports, relay, limits, downstream, "
                "upstream, dataplane, log, af_xdp, metrics, control, drain, state, ipfix)");
        }
    }
    RelayConfig c;
    DataplaneConfig& d = c.dataplane;
    EngineConfig& e = d.engine;

    Section eal(root, "eal", origin);
    eal.strings("args", c.eal_args);
    eal.reject_unknown();

    Section ports(root, "ports", origin);
    if (!ports.string("downstream", d.port) && root.get("af_xdp") == nullptr)
        ports.fail("ports.downstream",
                   "is required (the DPDK port toward the gateways, e.g. \"0000:3b:00.0\" or "
                   "\"net_af_packet0\")");
    ports.string("upstream", d.upstream_port);
    std::string exception;
    if (ports.string("exception", exception)) d.exception_port = exception;
    ports.integer("workers", d.workers, 1, 128);
    ports.reject_unknown();

    Section relay(root, "relay", origin);
    relay.addresses("addresses", e.relay_addresses);
    relay.addresses("discovery_addresses", e.discovery_addresses);
    int64_t seconds = e.query_interval.count();
    relay.integer("query_interval", seconds, 1, 127);
    e.query_interval = Seconds(seconds);
    relay.integer("robustness", e.robustness, 1, 7);
    relay.integer("max_response_code", e.max_response_code, 0, 255);
    seconds = e.membership_timeout.count();
    relay.integer("membership_timeout", seconds, 2, 86400);
    e.membership_timeout = Seconds(seconds);
    seconds = e.secret_rotation.count();
    relay.integer("secret_rotation", seconds, 60, 7200);
    e.secret_rotation = Seconds(seconds);
    std::string mac = std::string(to_string(e.mac_algorithm));
    if (relay.string("mac", mac)) {
        if (mac == "aes-cmac-128") {
            e.mac_algorithm = MacAlgorithm::aes_cmac_128;
        } else if (mac == "hmac-sha256") {
            e.mac_algorithm = MacAlgorithm::hmac_sha256;
        } else {
            relay.fail("relay.mac = \"" + mac + "\"",
                       "must be \"aes-cmac-128\" or \"hmac-sha256\"");
        }
    }
    relay.boolean("teardown", e.teardown);
    relay.boolean("asm", e.asm_enabled);
    relay.boolean("sticky_mac", e.sticky_mac);
    relay.boolean("accept_linux_p_flag", e.accept_linux_p_flag);
    relay.boolean("cisco_mac_compat", e.cisco_mac_compat);
    relay.reject_unknown();

    Section limits(root, "limits", origin);
    limits.integer("max_endpoints", e.limits.max_endpoints, 1, 100'000'000);
    limits.integer("max_endpoints_per_source_ip", e.limits.max_endpoints_per_source_ip, 1,
                   100'000'000);
    limits.integer("max_groups_per_endpoint", e.limits.max_groups_per_endpoint, 1, 65535);
    limits.integer("max_sources_per_group", e.limits.max_sources_per_group, 1, 65535);
    e.limits.max_flows_per_endpoint = e.limits.max_flows_per_source_ip = 0;  // 0: not in the file
    limits.integer("max_flows_per_endpoint", e.limits.max_flows_per_endpoint, 1, 16'777'216);
    limits.integer("max_flows_per_source_ip", e.limits.max_flows_per_source_ip, 1, 16'777'216);
    limits.number("replies_per_second_per_source_ip", e.limits.replies_per_second_per_source_ip,
                  0.001);
    limits.number("reply_burst_per_source_ip", e.limits.reply_burst_per_source_ip, 1);
    limits.number("replies_per_second", e.limits.replies_per_second, 1);
    limits.number("reply_burst", e.limits.reply_burst, 1);
    limits.number("reply_reserve_percent", e.limits.reply_reserve_percent, 0);
    limits.reject_unknown();

    Section down(root, "downstream", origin);
    down.address("next_hop", d.next_hop_v4);
    down.mac("next_hop_mac", d.next_hop_v4_mac);
    down.address("next_hop_v6", d.next_hop_v6);
    down.mac("next_hop_v6_mac", d.next_hop_v6_mac);
    down.prefixes("prefixes", d.downstream_prefixes);
    down.integer("max_neighbors", d.max_neighbors, 1, 1'048'576);
    down.integer("pmtu", d.pmtu, 0, 9216);
    down.integer("outer_ttl", d.outer_ttl, 1, 255);
    bool zero_checksum = !d.replication.udp_checksum;
    down.boolean("zero_udp_checksum_ipv4", zero_checksum);
    d.replication.udp_checksum = !zero_checksum;
    down.reject_unknown();
    if (d.next_hop_v4 && !d.next_hop_v4->is_v4())
        down.fail("downstream.next_hop", "must be an IPv4 address (use next_hop_v6 for IPv6)");
    if (d.next_hop_v6 && !d.next_hop_v6->is_v6())
        down.fail("downstream.next_hop_v6", "must be an IPv6 address");
    // The relay asks on-link gateways for their MAC from one of its own addresses.
    for (const IpPrefix& p : d.downstream_prefixes) {
        const Family f = p.address.family();
        if (std::none_of(e.relay_addresses.begin(), e.relay_addresses.end(),
                         [f](const IpAddress& a) { return a.family() == f; })) {
            down.fail("downstream.prefixes: \"" + p.to_string() + "\"",
                      std::string("relay.addresses has no ") +
                          (f == Family::ipv4 ? "IPv4" : "IPv6") +
                          " address to send ARP / Neighbor Solicitations from: add one, or "
                          "remove the prefix");
        }
    }

    Section up(root, "upstream", origin);
    up.addresses("addresses", d.upstream_addresses);
    up.boolean("decrement_ttl", d.decrement_ttl);
    up.prefixes("source_prefixes", d.upstream_source_prefixes);
    up.reject_unknown();

    Section dp(root, "dataplane", origin);
    dp.integer("packet_mbufs", d.packet_mbufs, 1023, 16'777'215);
    dp.integer("header_mbufs", d.header_mbufs, 1023, 16'777'215);
    dp.integer("flow_table_size", d.flow_table_size, 64, 16'777'216);
    dp.integer("control_ring_size", d.control_ring_size, 64, 1'048'576);
    dp.integer("copy_threshold", d.replication.copy_threshold, 0, 9216);
    dp.integer("egress_buffer_us", d.egress_buffer_us, 100, 10'000'000);
    dp.integer("egress_buffer_packets", d.egress_buffer_packets, 64, 1'048'576);
    dp.number("egress_link_gbps", d.egress_link_gbps, 0);
    dp.reject_unknown();
    // Flow budgets the file does not set follow the table: one address may hold a 16th of it,
    // one endpoint a 64th, so no one address fills it (README, configuration reference).
    if (e.limits.max_flows_per_source_ip == 0)
        e.limits.max_flows_per_source_ip = std::max(1u, d.flow_table_size / 16);
    if (e.limits.max_flows_per_endpoint == 0)
        e.limits.max_flows_per_endpoint = std::max(1u, d.flow_table_size / 64);

    Section log(root, "log", origin);
    if (log.string("level", c.log_level)) {
        static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};
        if (levels.count(c.log_level) == 0) {
            log.fail("log.level = \"" + c.log_level + "\"",
                     "must be trace, debug, info, warn, error, critical or off");
        }
    }
    log.integer("drop_summary_interval", c.drop_log_interval_seconds, 1, 86400);
    log.reject_unknown();

    parse_operations(root, origin, c.operations);
    parse_state(root, origin, c.state);
    parse_ipfix(root, origin, c);
    parse_af_xdp(root, origin, c);

    if (std::string problem = validate(e); !problem.empty()) {
        // The engine names its keys; in the file the relay's addresses are relay.addresses.
        if (problem.rfind("relay_addresses", 0) == 0) problem.replace(0, 15, "addresses");
        const bool limits_key = problem.rfind("limits.", 0) == 0;
        throw ConfigError(origin + ": " + (limits_key ? "" : "relay.") + problem);
    }
    return c;
}

RelayConfig load_relay_config(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw ConfigError(path + ": cannot be read (give the configuration file with --config)");
    std::stringstream text;
    text << in.rdbuf();
    return parse_relay_config(text.str(), path);
}

}  // namespace amt
