// The commands of the control socket (amtctl's other end). They run on the control thread, which
// owns the engine, so they read and change its state directly:
//   status                          one screen of the relay's state
//   tunnels [group] [limit]         gateway endpoints with their groups and expiry
//   groups [limit]                  (S,G) / (*,G) flows with member counts and upstream state
//   drain {state: on|off}           the L flag in every Query, plus the configured hook command
//   log-level {level}               spdlog's level
//   secret-rotate                   a new MAC secret now (the previous stays valid 2×QI)
//   restart-prepare                 save state.file and stop without leaving upstream
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/daemon/relay_config.hpp"
#include "dataplane/dataplane.hpp"

namespace amt {

class RelayControl {
  public:
    static constexpr size_t default_list_limit = 1000;
    static constexpr size_t max_list_limit = 100'000;

    RelayControl(Dataplane& dp, const OperationsConfig& ops);

    // One request (a JSON object with "command"); throws std::invalid_argument for bad ones.
    nlohmann::ordered_json handle(const nlohmann::ordered_json& request, Time now);
    // Reaps finished drain hook commands and logs how they ended. Call from the control loop.
    void reap_hooks();
    void reconfigure(const OperationsConfig& ops) { ops_ = ops; }
    // The saved state, for status (null: none).
    void set_state(const StateKeeper* state) { state_ = state; }
    // restart-prepare: stops the workers, saves the state and asks the daemon to stop without
    // leaving upstream; returns what was saved, throws std::invalid_argument when it cannot.
    std::function<nlohmann::ordered_json(Time)> on_restart_prepare;

  private:
    nlohmann::ordered_json status(Time now);
    nlohmann::ordered_json tunnels(const nlohmann::ordered_json& request, Time now);
    nlohmann::ordered_json groups(const nlohmann::ordered_json& request);
    nlohmann::ordered_json drain(const nlohmann::ordered_json& request);
    nlohmann::ordered_json log_level(const nlohmann::ordered_json& request);
    nlohmann::ordered_json rotate_secret(Time now);
    double snapshot_age_seconds() const;
    void run_hook(const std::string& command, const char* what);

    Dataplane& dp_;
    OperationsConfig ops_;
    Time started_{};
    std::vector<pid_t> hooks_;
    const StateKeeper* state_ = nullptr;
};

}  // namespace amt
