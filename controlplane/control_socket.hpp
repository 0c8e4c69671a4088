// The relay's local control socket: a UNIX stream socket speaking JSON lines. Each request is one
// JSON object on one line, {"command": "status", ...}; each answer is one line,
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
//
// Polled (non-blocking) from the control thread's loop, so command handlers run on the thread
// that owns the engine and need no locks. Access is by file permissions: the socket is mode 0660,
// owned by root and the operator's group.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace amt {

class ControlSocket {
  public:
    using Handler = std::function<nlohmann::ordered_json(const nlohmann::ordered_json& request)>;
    static constexpr size_t max_clients = 16;
    static constexpr size_t max_request_bytes = 64 * 1024;
    static constexpr size_t requests_per_poll = 8;  // per client: the control thread stays free
    static constexpr std::chrono::seconds idle_timeout{30};

    // Binds `path` (a stale socket left by a crashed run is replaced; a live one is an error),
    // then gives it to `group` with mode 0660. Throws std::runtime_error naming the path and fix.
    ControlSocket(const std::string& path, std::optional<gid_t> group);
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

    // Accepts, reads and answers whatever is ready without blocking; returns requests served.
    size_t poll(const Handler& handler);
    const std::string& path() const { return path_; }

  private:
    using Clock = std::chrono::steady_clock;
    struct Client {
        int fd = -1;
        std::string in;
        std::string out;
        bool closing = false;  // the peer closed, or sent garbage: close once `out` is sent
        Clock::time_point last_activity;
    };
    void accept_clients(Clock::time_point now);
    size_t serve(Client& c, const Handler& handler);
    static bool flush(Client& c);

    std::string path_;
    int listen_fd_ = -1;
    std::vector<Client> clients_;
};

// The answer to one request line: never throws (a handler's exception becomes an error answer).
std::string answer_request(const std::string& line, const ControlSocket::Handler& handler);

}  // namespace amt
