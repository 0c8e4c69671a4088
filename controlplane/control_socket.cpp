#include "controlplane/control_socket.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace amt {

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) {
        throw std::runtime_error("control socket path " + path + " is longer than " +
                                 std::to_string(sizeof(a.sun_path) - 1) + " bytes");
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

// True when something accepts connections on `path` (another relay is running).
bool socket_in_use(const sockaddr_un& a) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    // Non-blocking: a relay whose backlog is full is busy, not gone (EAGAIN), and must not
    // make this one hang at start-up.
    const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
    const bool live = rc == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

}  // namespace

std::string answer_request(const std::string& line, const ControlSocket::Handler& handler) {
    nlohmann::ordered_json answer;
    try {
        const nlohmann::ordered_json request = nlohmann::ordered_json::parse(line);
        if (!request.is_object() || !request.contains("command") ||
            !request["command"].is_string()) {
            answer = {{"ok", false}, {"error", "a request is a JSON object with a \"command\""}};
        } else {
            answer = {{"ok", true}, {"result", handler(request)}};
        }
    } catch (const std::exception& e) {
        answer = {{"ok", false}, {"error", e.what()}};
    }
    // Replace invalid UTF-8 rather than throw: an answer always goes back.
    return answer.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

ControlSocket::ControlSocket(const std::string& path, std::optional<gid_t> group) : path_(path) {
    const sockaddr_un a = unix_address(path);
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw std::runtime_error(
                "control socket path " + path +
                " exists and is not a socket: remove it or set control.socket");
        }
        if (socket_in_use(a)) {
            throw std::runtime_error("control socket " + path +
                                     " is in use: another amtrelayd runs with it; stop that one "
                                     "or give this one another control.socket");
        }
        unlink(path.c_str());  // left by a relay that did not stop cleanly
    }
    // Outside systemd (RuntimeDirectory=) the default /run/amtrelayd may not exist yet.
    if (const size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
        const std::string dir = path.substr(0, slash);
        if (mkdir(dir.c_str(), 0750) == 0 && group) {
            if (chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0) fail("chown " + dir);
        }
    }
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) fail("control socket");
    // Never a moment with wider permissions than 0660.
    const mode_t old_mask = umask(0117);
    const int bound = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
    umask(old_mask);
    if (bound != 0) {
        close(listen_fd_);
        fail("bind control socket " + path + " (does its directory exist?)");
    }
    if (group && chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
        close(listen_fd_);
        unlink(path.c_str());
        fail("chown control socket " + path + " to control.group");
    }
    if (listen(listen_fd_, static_cast<int>(max_clients)) != 0) {
        close(listen_fd_);
        unlink(path.c_str());
        fail("listen on control socket " + path);
    }
}

ControlSocket::~ControlSocket() {
    for (Client& c : clients_)
        close(c.fd);
    if (listen_fd_ >= 0) {
        close(listen_fd_);
        unlink(path_.c_str());
    }
}

void ControlSocket::accept_clients(Clock::time_point now) {
    while (clients_.size() < max_clients) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        clients_.push_back({.fd = fd, .last_activity = now});
    }
}

bool ControlSocket::flush(Client& c) {
    while (!c.out.empty()) {
        const ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c.out.erase(0, static_cast<size_t>(n));
    }
    return true;
}

// Reads what is there (never more than one request's worth beyond a complete line) and answers
// up to requests_per_poll lines. A client that does not read its answers is not read from:
// nothing it sends can make the relay buffer without bound or keep the control thread busy.
size_t ControlSocket::serve(Client& c, const Handler& handler) {
    if (!c.out.empty() || c.closing) return 0;
    char buf[4096];
    while (c.in.find('\n') == std::string::npos && c.in.size() <= max_request_bytes) {
        const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n == 0) {
            c.closing = true;  // answer what it sent, then close
            break;
        }
        if (n < 0) break;
        c.in.append(buf, static_cast<size_t>(n));
    }
    size_t served = 0;
    for (size_t end; served < requests_per_poll && (end = c.in.find('\n')) != std::string::npos;) {
        if (end > max_request_bytes) break;
        c.out += answer_request(c.in.substr(0, end), handler);
        c.in.erase(0, end + 1);
        ++served;
    }
    if (c.in.find('\n') > max_request_bytes && c.in.size() > max_request_bytes) {
        c.out += R"({"ok":false,"error":"request longer than 64 KiB"})"
                 "\n";
        c.closing = true;  // the rest of that line would be read as requests
    }
    return served;
}

size_t ControlSocket::poll(const Handler& handler) {
    const Clock::time_point now = Clock::now();
    accept_clients(now);
    size_t served = 0;
    for (Client& c : clients_) {
        const size_t n = serve(c, handler);
        if (n > 0) c.last_activity = now;
        served += n;
        const bool healthy = flush(c);
        // Idle clients go, so that 16 forgotten connections cannot lock the operator out.
        if (!healthy || (c.closing && c.out.empty()) || now - c.last_activity > idle_timeout) {
            close(c.fd);
            c.fd = -1;
        }
    }
    std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
    return served;
}

}  // namespace amt
