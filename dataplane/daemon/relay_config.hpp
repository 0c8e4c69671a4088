// amtrelayd's configuration: a TOML file (toml++), every key documented in the README. Loading
// checks every key's type and range and rejects unknown keys, so that a typo or a bad value stops
// start-up with a message that names the key and what is allowed.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/daemon/ipfix_exporter.hpp"
#include "dataplane/daemon/state_file.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/xdp_steering.hpp"

namespace amt {

// How operators reach the running relay: metrics, the control socket, drain hooks.
struct OperationsConfig {
    std::string metrics_listen = "127.0.0.1:9850";               // Prometheus /metrics; "" disables
    std::string control_socket = "/run/amtrelayd/control.sock";  // "" disables
    std::string control_group;      // the group that may use the socket; "": the relay's own group
    std::string drain_on_command;   // run (sh -c) when drain is switched on, e.g. withdraw anycast
    std::string drain_off_command;  // run when drain is switched off
};

struct RelayConfig {
    std::vector<std::string> eal_args;
    DataplaneConfig dataplane;  // includes the engine's configuration
    std::string log_level = "info";
    uint32_t drop_log_interval_seconds = 10;  // how often drop counters are summarised in the log
    OperationsConfig operations;
    StateConfig state;                  // [state]: hitless restart
    IpfixConfig ipfix;                  // [ipfix]: per-tunnel accounting export
    std::optional<AfXdpConfig> af_xdp;  // [af_xdp]: net_af_xdp with the steering program
};

// "host:port" or "[v6]:port" as the metrics exporter takes it; empty when valid, else the problem.
std::string check_listen_address(const std::string& text);

class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Throws ConfigError ("<file>: <key> = <value>: <what is allowed>").
RelayConfig load_relay_config(const std::string& path);
RelayConfig parse_relay_config(const std::string& toml_text, const std::string& origin);

}  // namespace amt
