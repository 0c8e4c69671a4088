#include "dataplane/daemon/state_file.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
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
    if (writer_.joinable()) writer_.join();
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
        restored, state.endpoints.size(), config_.file, std::chrono::duration<double>(elapsed).count(),
        data->size(), std::chrono::duration<double, std::milli>(Clock::now() - t).count());
}

void StateKeeper::encode(Time now) {
    const auto t = Clock::now();
    RelayState state;
    control_.engine().save_state(now, state);
    state.saved_at_unix_ns = unix_now_ns();
    encode_state(state, buffer_);
    encode_ns_ = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

std::string StateKeeper::write(const std::vector<uint8_t>& bytes) {
    const auto t = Clock::now();
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
    stats_.snapshots.fetch_add(1, std::memory_order_relaxed);
    stats_.last_bytes = bytes.size();
    stats_.last_duration_ns =
        encode_ns_ + static_cast<uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
    stats_.last_saved_unix_ns = unix_now_ns();
    return "";
}

void StateKeeper::maybe_snapshot(Time now) {
    if (!enabled() || config_.snapshot_interval_seconds == 0 || writing_.load()) return;
    if (now - last_snapshot_ < Seconds(config_.snapshot_interval_seconds)) return;
    last_snapshot_ = now;
    if (writer_.joinable()) writer_.join();  // finished (writing_ is false)
    encode(now);
    writing_ = true;
    writer_ = std::thread([this] {
        const std::string error = write(buffer_);
        if (!error.empty()) {
            stats_.failures.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("state: snapshot not written: {}", error);  // at most once an interval
        }
        writing_ = false;
    });
}

std::string StateKeeper::save_now(Time now, size_t& endpoints, size_t& bytes) {
    if (!enabled()) {
        return "state.file is not set: a new process would have nothing to restore (set it and "
               "restart once)";
    }
    if (writer_.joinable()) writer_.join();
    encode(now);
    endpoints = control_.engine().memberships().endpoint_count();
    bytes = buffer_.size();
    std::string error = write(buffer_);
    if (!error.empty()) stats_.failures.fetch_add(1, std::memory_order_relaxed);
    return error;
}

}  // namespace amt
