// amtctl: the operator's CLI for a running amtrelayd, over its control socket (JSON lines).
// Human tables by default, the relay's JSON answer with --json. Exit codes: 0 done, 1 the relay
// refused the command, 2 usage error, 3 the relay cannot be reached or did not answer.
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using json = nlohmann::ordered_json;

namespace {

struct Failure {
    int exit_code;
    std::string message;
};

// Sends one request, returns the relay's answer.
json ask(const std::string& path, const json& request) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) throw Failure{2, "socket path too long: " + path};
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw Failure{3, std::string("socket: ") + std::strerror(errno)};
    // A relay that does not answer within 10 s (stuck, or its client slots taken) is an error,
    // not a hang: scripts and monitoring call this.
    const timeval timeout{.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        const int e = errno;
        close(fd);
        std::string hint = "is amtrelayd running, and is this its control.socket?";
        if (e == EACCES) hint = "add yourself to the relay's control.group (or use sudo)";
        throw Failure{3,
                      fmt::format("cannot connect to {}: {} ({})", path, std::strerror(e), hint)};
    }
    const std::string line = request.dump() + "\n";
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        close(fd);
        throw Failure{3, std::string("send: ") + std::strerror(errno)};
    }
    std::string answer;
    char buf[65536];
    while (answer.find('\n') == std::string::npos) {
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            close(fd);
            throw Failure{3, "no answer from the relay within 10 s (" + path + ")"};
        }
        if (n <= 0) break;
        answer.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    if (answer.find('\n') == std::string::npos) throw Failure{3, "the relay closed the connection"};
    return json::parse(answer.substr(0, answer.find('\n')));
}

std::string text(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    return v.dump();
}

// A plain left-aligned table.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width(header.size());
    for (size_t i = 0; i < header.size(); ++i)
        width[i] = header[i].size();
    for (const auto& row : rows)
        for (size_t i = 0; i < row.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    const auto print_row = [&](const std::vector<std::string>& row) {
        std::string line;
        for (size_t i = 0; i < row.size(); ++i)
            line += fmt::format("{:<{}}", row[i], i + 1 < row.size() ? width[i] + 2 : 0);
        std::puts(line.c_str());
    };
    print_row(header);
    for (const auto& row : rows)
        print_row(row);
}

void print_status(const json& s) {
    for (const auto& [key, value] : s.items()) {
        std::string v = text(value);
        if (value.is_array()) {
            v.clear();
            for (const json& e : value)
                v += (v.empty() ? "" : ", ") + text(e);
        }
        std::printf("%-28s %s\n", key.c_str(), v.c_str());
    }
}

void print_tunnels(const json& r) {
    std::vector<std::vector<std::string>> rows;
    for (const json& t : r["tunnels"]) {
        std::string groups;
        for (const json& g : t["groups"]) {
            std::string sources;
            for (const json& s : g["sources"])
                sources += (sources.empty() ? "" : ",") + s.get<std::string>();
            groups +=
                fmt::format("{}{} {}{{{}}}", groups.empty() ? "" : "; ",
                            g["group"].get<std::string>(), g["mode"].get<std::string>(), sources);
        }
        rows.push_back({t["gateway"].get<std::string>(), t["relay"].get<std::string>(),
                        fmt::format("{:.1f}", t["expires_in_seconds"].get<double>()), groups});
    }
    print_table({"GATEWAY", "RELAY", "EXPIRES(s)", "GROUPS"}, rows);
    const size_t total = r["total"].get<size_t>();
    if (total > rows.size()) std::printf("(%zu of %zu shown; --limit N)\n", rows.size(), total);
}

void print_groups(const json& r) {
    std::vector<std::vector<std::string>> rows;
    for (const json& g : r["groups"]) {
        rows.push_back({g["source"].get<std::string>(), g["group"].get<std::string>(),
                        text(g["tunnels"]), text(g.value("forwarding", json("-"))),
                        text(g["joined_upstream"])});
    }
    print_table({"SOURCE", "GROUP", "TUNNELS", "FORWARDING", "JOINED UPSTREAM"}, rows);
    const size_t total = r["total"].get<size_t>();
    if (total > rows.size()) std::printf("(%zu of %zu shown; --limit N)\n", rows.size(), total);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"amtctl: operate a running amtrelayd over its control socket"};
    app.require_subcommand(1);
    const char* env_socket = std::getenv("AMTCTL_SOCKET");
    std::string socket_path = env_socket ? env_socket : "/run/amtrelayd/control.sock";
    bool as_json = false;
    app.add_option("-s,--socket", socket_path, "the relay's control.socket (env AMTCTL_SOCKET)")
        ->capture_default_str();
    app.add_flag("--json", as_json, "print the relay's answer as JSON");
    app.set_version_flag("--version", "amtctl " AMT_VERSION);

    json request;
    app.add_subcommand("status", "the relay's state and key numbers")->callback([&] {
        request = {{"command", "status"}};
    });
    auto* tunnels = app.add_subcommand("tunnels", "gateway endpoints, their groups and expiry");
    std::string group;
    size_t limit = 100;
    tunnels->add_option("-g,--group", group, "only endpoints that are members of GROUP");
    tunnels->add_option("-n,--limit", limit, "at most N endpoints")->capture_default_str();
    tunnels->callback([&] {
        request = {{"command", "tunnels"}, {"limit", limit}};
        if (!group.empty()) request["group"] = group;
    });
    auto* groups = app.add_subcommand(
        "groups", "(S,G) and (*,G) flows: tunnels, in the flow table, upstream join");
    size_t group_limit = 1000;
    groups->add_option("-n,--limit", group_limit, "at most N flows")->capture_default_str();
    groups->callback([&] { request = {{"command", "groups"}, {"limit", group_limit}}; });
    auto* drain = app.add_subcommand(
        "drain", "on: Queries carry the L flag (new gateways go elsewhere; joined ones stay)");
    std::string state;
    drain->add_option("state", state, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
    drain->callback([&] { request = {{"command", "drain"}, {"state", state}}; });
    auto* level = app.add_subcommand("log-level", "set the relay's log level");
    std::string level_name;
    level->add_option("level", level_name, "trace|debug|info|warn|error|critical|off")
        ->required()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    level->callback([&] { request = {{"command", "log-level"}, {"level", level_name}}; });
    auto* secret = app.add_subcommand("secret", "MAC secret");
    secret->require_subcommand(1);
    secret->add_subcommand("rotate", "a new secret now (the previous one stays valid 2×QI)")
        ->callback([&] {
            request = {{"command", "secret-rotate"}};
        });
    app.add_subcommand("restart-prepare",
                       "planned restart: save state.file and stop WITHOUT leaving upstream; then "
                       "start the new relay with the same state.file")
        ->callback([&] {
            request = {{"command", "restart-prepare"}};
        });
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; any usage error exits 2, as documented.
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        const json answer = ask(socket_path, request);
        if (!answer.value("ok", false)) {
            std::fprintf(stderr, "amtctl: the relay says: %s\n",
                         answer.value("error", std::string("no reason given")).c_str());
            return 1;
        }
        const json& result = answer["result"];
        const std::string command = request["command"];
        if (as_json) {
            std::puts(result.dump(2).c_str());
        } else if (command == "status") {
            print_status(result);
        } else if (command == "tunnels") {
            print_tunnels(result);
        } else if (command == "groups") {
            print_groups(result);
        } else {
            print_status(result);
        }
    } catch (const Failure& f) {
        std::fprintf(stderr, "amtctl: %s\n", f.message.c_str());
        return f.exit_code;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "amtctl: bad answer from the relay: %s\n", e.what());
        return 3;
    }
    return 0;
}
