// The control socket through a real UNIX socket: JSON lines in and out, bad requests answered
// with an error, permissions, and a stale socket from a crashed relay replaced.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "controlplane/control_socket.hpp"

using namespace amt;
using json = nlohmann::ordered_json;

namespace {

std::string temp_path(const char* name) {
    return std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/amt-ctl-" +
           std::to_string(getpid()) + "-" + name;
}

int connect_to(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << path;
    return fd;
}

// Sends `text`, polls the server until `lines` answer lines arrived, returns them.
std::vector<json> exchange(ControlSocket& server, int fd, const std::string& text, size_t lines,
                           const ControlSocket::Handler& handler) {
    EXPECT_EQ(send(fd, text.data(), text.size(), 0), static_cast<ssize_t>(text.size()));
    std::string got;
    for (int i = 0;
         i < 1000 && static_cast<size_t>(std::count(got.begin(), got.end(), '\n')) < lines; ++i) {
        server.poll(handler);
        char buf[4096];
        const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        usleep(1000);
    }
    std::vector<json> out;
    for (size_t start = 0, end; (end = got.find('\n', start)) != std::string::npos;
         start = end + 1) {
        out.push_back(json::parse(got.substr(start, end - start)));
    }
    return out;
}

json echo(const json& request) {
    if (request["command"] == "fail") throw std::invalid_argument("asked to fail");
    return {{"echo", request["command"]}};
}

}  // namespace

TEST(ControlSocket, AnswersEachRequestLine) {
    const std::string path = temp_path("lines");
    ControlSocket server(path, std::nullopt);
    const int fd = connect_to(path);
    const auto answers =
        exchange(server, fd, "{\"command\":\"status\"}\n{\"command\":\"groups\"}\n", 2, echo);
    ASSERT_EQ(answers.size(), 2u);
    EXPECT_EQ(answers[0]["ok"], true);
    EXPECT_EQ(answers[0]["result"]["echo"], "status");
    EXPECT_EQ(answers[1]["result"]["echo"], "groups");
    close(fd);
}

TEST(ControlSocket, BadRequestsGetAnErrorAndTheConnectionStays) {
    const std::string path = temp_path("bad");
    ControlSocket server(path, std::nullopt);
    const int fd = connect_to(path);
    const auto answers = exchange(server, fd,
                                  "not json\n[1,2]\n{\"command\":\"fail\"}\n"
                                  "{\"command\":\"ok\"}\n",
                                  4, echo);
    ASSERT_EQ(answers.size(), 4u);
    EXPECT_EQ(answers[0]["ok"], false);
    EXPECT_EQ(answers[1]["ok"], false);
    EXPECT_EQ(answers[1]["error"], "a request is a JSON object with a \"command\"");
    EXPECT_EQ(answers[2]["ok"], false);
    EXPECT_EQ(answers[2]["error"], "asked to fail");
    EXPECT_EQ(answers[3]["ok"], true);
    close(fd);
}

TEST(ControlSocket, OverlongRequestIsRefused) {
    const std::string path = temp_path("long");
    ControlSocket server(path, std::nullopt);
    const int fd = connect_to(path);
    const auto answers =
        exchange(server, fd, std::string(ControlSocket::max_request_bytes + 10, 'x'), 1, echo);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(answers[0]["error"], "request longer than 64 KiB");
    close(fd);
}

TEST(ControlSocket, ClientThatDoesNotReadStopsBeingServed) {
    const std::string path = temp_path("noread");
    ControlSocket server(path, std::nullopt);
    const int fd = connect_to(path);
    std::string burst;
    for (int i = 0; i < 200000; ++i)
        burst += "{\"command\":\"status\"}\n";
    size_t sent = 0, served = 0, idle_polls = 0;
    // Write what the socket takes, never read: once the answers fill the socket buffers the
    // server must stop reading and answering (no unbounded buffer, no busy control thread).
    while (idle_polls < 100) {
        const ssize_t n = send(fd, burst.data() + sent, burst.size() - sent, MSG_DONTWAIT);
        if (n > 0) sent += static_cast<size_t>(n);
        const size_t now = server.poll(echo);
        EXPECT_LE(now, ControlSocket::requests_per_poll);
        served += now;
        idle_polls = now == 0 ? idle_polls + 1 : 0;
    }
    EXPECT_LT(served, 200000u) << "every request answered although the client reads nothing";
    close(fd);
}

TEST(ControlSocket, OnlyOwnerAndGroupMayConnect) {
    const std::string path = temp_path("mode");
    ControlSocket server(path, getgid());
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_gid, getgid());
}

TEST(ControlSocket, StaleSocketIsReplacedLiveOneIsAnError) {
    const std::string path = temp_path("stale");
    {
        // A socket file nobody listens on: what a killed relay leaves behind.
        const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strcpy(a.sun_path, path.c_str());
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
        close(fd);
    }
    ControlSocket server(path, std::nullopt);
    try {
        ControlSocket second(path, std::nullopt);
        FAIL() << "a second relay took a live control socket";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("is in use"), std::string::npos) << e.what();
    }
    const int fd = connect_to(path);
    EXPECT_EQ(exchange(server, fd, "{\"command\":\"x\"}\n", 1, echo).size(), 1u)
        << "the first server still answers";
    close(fd);
}

TEST(ControlSocket, RegularFileInTheWayIsAnError) {
    const std::string path = temp_path("file");
    std::ofstream(path) << "not a socket";
    EXPECT_THROW(ControlSocket(path, std::nullopt), std::runtime_error);
    unlink(path.c_str());
}

TEST(ControlSocket, SocketFileIsRemovedOnStop) {
    const std::string path = temp_path("gone");
    { ControlSocket server(path, std::nullopt); }
    EXPECT_NE(access(path.c_str(), F_OK), 0);
}
