// The relay's state file (state.file): restored before the workers start, snapshotted
// periodically so that a crash loses only what changed since, and saved on a planned restart
// (amtctl restart-prepare). Bad files never stop the relay: they are logged with the reason,
// moved aside to FILE.rejected, and the relay starts empty.
//
// A periodic snapshot is taken by a forked child, as Redis does for its RDB files: fork() copies
// only page tables, so the control thread pauses for the fork (measured in BENCHMARKS.md) instead
// of for encoding a million endpoints, and the child encodes the engine's copy-on-write memory
// and writes it: temporary file, fsync, rename, fsync of the folder, so a crash mid-write leaves
// the previous snapshot. The child touches no DPDK state, logs nothing (a lock another thread held
// at the fork would never be released) and reports an error through a pipe. The workers never
// wait for any of it. The file is mode 0600: it holds MAC secrets.
#pragma once

#include <sys/types.h>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/control_thread.hpp"

namespace amt {

struct StateConfig {
    std::string file;                        // "" disables saved state
    uint32_t snapshot_interval_seconds = 5;  // 0: no periodic snapshots (planned restarts only)
};

// For amtctl status and /metrics (read on other threads: relaxed atomics).
struct StateStats {
    std::atomic<bool> restored{false};
    std::atomic<uint64_t> restored_endpoints{0};
    std::atomic<uint64_t> snapshots{0};
    std::atomic<uint64_t> failures{0};
    std::atomic<uint64_t> last_bytes{0};
    std::atomic<uint64_t> last_duration_ns{0};   // fork to file on disk, of the last snapshot
    std::atomic<uint64_t> last_fork_ns{0};       // the control thread's pause for it
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
    // Planned restart, workers stopped, enabled(): encodes and writes now, waiting for the disk.
    // Returns
    // "" on success, else why it failed; endpoints/bytes say what was saved.
    std::string save_now(Time now, size_t& endpoints, size_t& bytes);
    const StateStats& stats() const { return stats_; }

  private:
    void encode(Time now);
    std::string write(const std::vector<uint8_t>& bytes);  // "" or the error
    void reject(const std::string& why);
    void start_child(Time now);
    void reap_child(bool wait);

    StateConfig config_;
    ControlThread& control_;
    StateStats stats_;
    Time last_snapshot_{};
    std::vector<uint8_t> buffer_;
    pid_t child_ = -1;      // the snapshot being written, if any
    int child_error_ = -1;  // read end of the child's error pipe
    std::chrono::steady_clock::time_point child_started_{};
};

// Seconds since the Unix epoch, as a state file records them.
int64_t unix_now_ns();

}  // namespace amt
