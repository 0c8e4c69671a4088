#include "dataplane/daemon/state_file.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace amt {

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// The whole file, or nullopt if it does not exist; throws nothing (an error is a reason).
std::optional<std::vector<uint8_t>> read_file(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) error = errno_text("cannot open", path);
        return std::nullopt;
    }
    std::vector<uint8_t> data;
    uint8_t chunk[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = errno_text("cannot read", path);
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        data.insert(data.end(), chunk, chunk + n);
    }
    ::close(fd);
    return data;
}

// Time spent since the file was saved, applied to what the file says remained.
void age(RelayState& s, Time elapsed) {
    s.secrets.current_age += elapsed;
    s.secrets.previous_remaining -= std::min(s.secrets.previous_remaining, elapsed);
    for (SavedEndpoint& e : s.endpoints)
        e.remaining -= std::min(e.remaining, elapsed);
}

}  // namespace

int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

StateKeeper::StateKeeper(const StateConfig& config, ControlThread& control)
    : config_(config), control_(control) {}

StateKeeper::~StateKeeper() {
    reap_child(true);
}

void StateKeeper::reject(const std::string& why) {
    const std::string aside = config_.file + ".rejected";
    const bool moved = std::rename(config_.file.c_str(), aside.c_str()) == 0;
    spdlog::warn("state: {}: {}; {}, starting with no tunnels", config_.file, why,
                 moved ? "moved aside to " + aside : errno_text("could not move it aside", aside));
}

void StateKeeper::restore(Time now) {
    last_snapshot_ = now;
    if (!enabled()) return;
    std::string error;
    const auto data = read_file(config_.file, error);
    if (!data) {
        if (error.empty()) {
            spdlog::info("state: no {} yet: starting with no tunnels", config_.file);
        } else {
            reject(error);
        }
        return;
    }
    const auto t = Clock::now();
    RelayState state;
    std::string why = decode_state(*data, state);
    const EngineConfig& engine = control_.engine().config();
    const int64_t now_unix = unix_now_ns();
    if (why.empty())
        why = state_fits(state, engine.relay_addresses, engine.membership_timeout, now_unix);
    if (!why.empty()) {
        reject(why);
        return;
    }
    const Time elapsed(now_unix - state.saved_at_unix_ns);
    age(state, elapsed);
    const size_t restored = control_.restore_state(state, now);
    stats_.restored = true;
    stats_.restored_endpoints = restored;
    spdlog::info(
        "state: restored {} of {} tunnel(s) from {} (saved {:.1f} s ago, {} octets) in {:.1f} ms; "
        "flows published and upstream joins sent",
        restored, state.endpoints.size(), config_.file,
        std::chrono::duration<double>(elapsed).count(), data->size(),
        std::chrono::duration<double, std::milli>(Clock::now() - t).count());
}

void StateKeeper::encode(Time now) {
    RelayState state;
    control_.engine().save_state(now, state);
    state.saved_at_unix_ns = unix_now_ns();
    encode_state(state, buffer_);
}

std::string StateKeeper::write(const std::vector<uint8_t>& bytes) {
    const std::string tmp = config_.file + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno_text("cannot create", tmp);
    ::fchmod(fd, 0600);  // also when an older temporary file had another mode
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const std::string e = errno_text("cannot write", tmp);
            ::close(fd);
            return e;
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const std::string e = errno_text("cannot fsync", tmp);
        ::close(fd);
        return e;
    }
    ::close(fd);
    if (std::rename(tmp.c_str(), config_.file.c_str()) != 0)
        return errno_text("cannot rename " + tmp + " to", config_.file);
    const std::string dir = std::filesystem::path(config_.file).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // the rename itself reaches the disk
        ::fsync(dfd);
        ::close(dfd);
    }
    return "";
}

void StateKeeper::maybe_snapshot(Time now) {
    if (!enabled() || config_.snapshot_interval_seconds == 0) return;
    if (child_ > 0) reap_child(false);
    if (child_ > 0 || now - last_snapshot_ < Seconds(config_.snapshot_interval_seconds)) return;
    last_snapshot_ = now;
    start_child(now);
}

void StateKeeper::start_child(Time now) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        stats_.failures.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("state: snapshot not started: pipe: {}", std::strerror(errno));
        return;
    }
    const auto t = Clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {  // the child: encode its copy of the engine, write it, say why not if not
        ::close(fds[0]);
        encode(now);
        const std::string error = write(buffer_);
        if (!error.empty()) (void)!::write(fds[1], error.data(), error.size());
        ::_exit(error.empty() ? 0 : 1);
    }
    ::close(fds[1]);
    if (pid < 0) {
        ::close(fds[0]);
        stats_.failures.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("state: snapshot not started: fork: {}", std::strerror(errno));
        return;
    }
    stats_.last_fork_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
    child_ = pid;
    child_error_ = fds[0];
    child_started_ = t;
}

void StateKeeper::reap_child(bool wait) {
    if (child_ <= 0) return;
    int status = 0;
    const pid_t done = ::waitpid(child_, &status, wait ? 0 : WNOHANG);
    if (done == 0) return;  // still writing
    char error[512];
    const ssize_t n = ::read(child_error_, error, sizeof error);
    ::close(child_error_);
    child_ = -1;
    child_error_ = -1;
    if (done < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        stats_.failures.fetch_add(1, std::memory_order_relaxed);
        // At most once a snapshot interval.
        spdlog::warn("state: snapshot not written: {}",
                     n > 0 ? std::string(error, static_cast<size_t>(n))
                           : "the writer process ended with status " + std::to_string(status));
        return;
    }
    struct stat info {};
    stats_.last_bytes = ::stat(config_.file.c_str(), &info) == 0 ? info.st_size : 0;
    stats_.last_duration_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - child_started_)
            .count());
    stats_.last_saved_unix_ns = unix_now_ns();
    stats_.snapshots.fetch_add(1, std::memory_order_relaxed);
}

std::string StateKeeper::save_now(Time now, size_t& endpoints, size_t& bytes) {
    reap_child(true);  // a periodic snapshot must not rename over this one
    const auto t = Clock::now();
    encode(now);
    endpoints = control_.engine().memberships().endpoint_count();
    bytes = buffer_.size();
    std::string error = write(buffer_);
    if (!error.empty()) {
        stats_.failures.fetch_add(1, std::memory_order_relaxed);
        return error;
    }
    stats_.last_bytes = bytes;
    stats_.last_duration_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
    stats_.last_saved_unix_ns = unix_now_ns();
    stats_.snapshots.fetch_add(1, std::memory_order_relaxed);
    return error;
}

}  // namespace amt
