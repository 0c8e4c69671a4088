// The relay's state file (state.file): restored before the workers start, snapshotted
// periodically so that a crash loses only what changed since, and saved on a planned restart
// (amtctl restart-prepare). Bad files never stop the relay: they are logged with the reason,
// moved aside to FILE.rejected, and the relay starts empty.
//
// A snapshot is encoded on the control thread (it owns the engine; the workers never wait for
// it) and written by a short-lived thread: temporary file, fsync, rename, fsync of the folder, so
// a crash mid-write leaves the previous snapshot. The file is mode 0600: it holds MAC secrets.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/control_thread.hpp"

namespace amt {

struct StateConfig {
    std::string file;                     // "" disables saved state
    uint32_t snapshot_interval_seconds = 5;  // 0: no periodic snapshots (planned restarts only)
};

// For amtctl status and /metrics (read on other threads: relaxed atomics).
struct StateStats {
    std::atomic<bool> restored{false};
    std::atomic<uint64_t> restored_endpoints{0};
    std::atomic<uint64_t> snapshots{0};
    std::atomic<uint64_t> failures{0};
    std::atomic<uint64_t> last_bytes{0};
    std::atomic<uint64_t> last_duration_ns{0};  // encode + write of the last snapshot
    std::atomic<int64_t> last_saved_unix_ns{0};  // 0: none yet
};

class StateKeeper {
  public:
    StateKeeper(const StateConfig& config, ControlThread& control);
    ~StateKeeper();
    StateKeeper(const StateKeeper&) = delete;
    StateKeeper& operator=(const StateKeeper&) = delete;

    bool enabled() const { return !config_.file.empty(); }
    // Before the workers start: loads state.file into the engine (flows published, upstream
    // joins sent). Logs what it did; a bad file is moved aside.
    void restore(Time now);
    // From the control loop: a snapshot when the interval has passed and the last write is done.
    void maybe_snapshot(Time now);
    // Planned restart, workers stopped: encodes and writes now, waiting for the disk. Returns
    // "" on success, else why it failed; endpoints/bytes say what was saved.
    std::string save_now(Time now, size_t& endpoints, size_t& bytes);
    const StateStats& stats() const { return stats_; }

  private:
    void encode(Time now);
    std::string write(const std::vector<uint8_t>& bytes);  // "" or the error
    void reject(const std::string& why);

    StateConfig config_;
    ControlThread& control_;
    StateStats stats_;
    Time last_snapshot_{};
    std::vector<uint8_t> buffer_;  // the encoding; owned by the writer thread while it runs
    std::thread writer_;
    std::atomic<bool> writing_{false};
    uint64_t encode_ns_ = 0;
};

// Seconds since the Unix epoch, as a state file records them.
int64_t unix_now_ns();

}  // namespace amt
