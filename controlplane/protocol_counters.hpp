// Counters of the protocol engine and of each handshake responder. Each is written by one thread
// only; the metrics exporter reads them with relaxed atomic loads and sums them over threads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "common/igmp_mld.hpp"
#include "common/parse_error.hpp"
#include "controlplane/drop_reason.hpp"

namespace amt {

// A counter written by one thread and read by others: a relaxed load/store, no read-modify-write.
class Counter {
  public:
    void add(uint64_t n = 1) {
        v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t value() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

struct ProtocolCounters {
    std::array<Counter, parse_error_count> malformed;  // by ParseError
    std::array<Counter, drop_reason_count> dropped;    // by DropReason
    std::array<Counter, 8> received;                   // AMT messages by type 1..7
    std::array<Counter, 8> sent;                       // replies by type (2, 4)
    Counter mac_failures;
    Counter mac_previous_secret;  // Update/Teardown accepted with the previous secret
    Counter mac_sticky;           // Update accepted by sticky MAC only
    std::array<Counter, inner_anomaly_count> anomalies;  // accepted Updates, by InnerAnomaly

    void drop(DropReason r) { dropped[static_cast<size_t>(r)].add(); }
    void malformed_input(ParseError e) { malformed[static_cast<size_t>(e)].add(); }
};

}  // namespace amt
