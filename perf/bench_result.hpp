// One measured figure of amtbench and the loop that measures rates.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace amt::bench {

struct Result {
    std::string section;
    std::string name;
    double value;
    std::string unit;
};

// Runs `body` until `seconds` have passed and returns operations per second. Each call counts
// `per_call` operations, times what `body` returns if it returns a count.
template <typename Body>
double rate(double seconds, size_t per_call, Body&& body) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    size_t ops = 0;
    double elapsed = 0;
    do {
        for (int i = 0; i < 16; ++i) {
            if constexpr (std::is_void_v<decltype(body())>) {
                body();
                ops += per_call;
            } else {
                ops += body() * per_call;
            }
        }
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < seconds);
    return static_cast<double>(ops) / elapsed;
}

struct ScaleOptions {
    size_t endpoints = 1'000'000;  // steady endpoints, one (S,G) each
    size_t channels = 1000;        // (S,G) channels they spread over
    size_t hot_channels = 8;       // channels with the stream and the churn
    double stream_pps = 16000;
    double churn_rate = 100'000;  // membership changes per second
    double churn_seconds = 3;
    double lifetime_ms = 10;   // a churn gateway leaves this long after joining
    size_t big_flow = 10'000;  // steady members of the one-big-flow run; 0 skips it
    size_t payload = 1316;
};

// Legitimate gateways during a spoofed Request flood (issue 18, item 4).
struct FloodOptions {
    double pps = 300'000;               // spoofed Requests per second
    double seconds = 5;                 // flood duration per scenario
    size_t spoofed_addresses = 50'000;  // distinct spoofed sources (each far below its own limit)
    size_t established = 20;            // gateways joined before the flood
    size_t newcomers = 20;              // gateways that join during it
    uint16_t workers = 2;
    double refresh_ms = 100;  // established gateways' Request interval
    double retry_ms = 100;    // newcomers' Request retry until a Query comes
};

// The egress section (issue 13): a NIC-like port with a bounded TX ring drained at a link rate.
struct EgressOptions {
    double link_gbps = 25;
    uint32_t tx_descriptors = 1024;  // the worker's TX ring; a chained replica takes 2
    size_t payload = 1316;           // UDP payload octets of the stream
    size_t fanout = 1024;            // gateways per channel
    size_t burst = 64;               // back-to-back packets per burst (an I-frame)
    size_t channels = 4;
    std::vector<double> loads = {10, 50, 90, 120};  // average egress, % of the link
    double seconds = 2;                             // virtual time of input per case
    double request_rate = 2000;     // handshakes started per second during each case
    uint32_t egress_buffer_us = 0;  // the relay's dataplane.egress_buffer_us; 0: its default
};

void bench_handshake(double seconds, std::vector<Result>& out);
void bench_egress(const EgressOptions& options, std::vector<Result>& out);
void bench_scale(const ScaleOptions& options, std::vector<Result>& out);
void bench_flood(const FloodOptions& options, std::vector<Result>& out);
// families: "4in4", "6in6", "4in6", "6in4" (inner multicast family in the gateway's family).
// count_flows: per-flow counters on, as with ipfix.collector (issue 15).
void bench_replication(double seconds, const std::vector<size_t>& fanouts,
                       const std::vector<size_t>& payloads,
                       const std::vector<std::string>& families, std::vector<Result>& out,
                       bool count_flows = false);

}  // namespace amt::bench
