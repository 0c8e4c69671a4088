// The relay's local control socket: a UNIX stream socket speaking JSON lines. Each request is one
// JSON object on one line, {"command": "status", ...}; each answer is one line,
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
//
// Polled (non-blocking) from the control thread's loop, so command handlers run on the thread
// that owns the engine and need no locks. Access is by file permissions: the socket is mode 0660,
// owned by root and the operator's group.
#pragma once

#include <sys/types.h>

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
    struct Client {
        int fd;
        std::string in;
        std::string out;
        bool peer_closed;
    };
    void accept_clients();
    size_t serve(Client& c, const Handler& handler);
    static bool flush(Client& c);

    std::string path_;
    int listen_fd_ = -1;
    std::vector<Client> clients_;
};

// The answer to one request line: never throws (a handler's exception becomes an error answer).
std::string answer_request(const std::string& line, const ControlSocket::Handler& handler);

}  // namespace amt
