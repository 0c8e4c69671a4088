// Per-tunnel accounting over IPFIX (RFC 7011, issue 15): the SessionLedger's records go to a
// collector over UDP, encoded by libfixbuf (the packaged IPFIX library). UDP only: a TCP
// collector that stops reading would block the sending thread for good (libfixbuf 2.4 has no send
// timeout), and a record lost over UDP is no worse than one dropped from a full queue. The control
// thread only copies each record into a bounded single-producer queue; a thread of its own encodes
// and sends, so a slow or absent collector costs the relay nothing but the records that do not fit
// the queue (counted, and logged at most every 10 s).
//
// Record layout (README, "Per-tunnel accounting"): the channel is the flow (S → G), the tunnel
// its translation (relay:2268 → gateway:port, post-NAT as the relay sees it), in the NAT
// logging elements of RFC 8158 / IANA 225-228, 281-282.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/session_ledger.hpp"

namespace amt {

struct IpfixConfig {
    std::string collector;  // "HOST:PORT" ("[v6]:PORT"); empty: no export
    uint32_t observation_domain = 0;
    uint32_t active_timeout_seconds = 300;   // long sessions reported this often
    uint32_t template_refresh_seconds = 60;  // UDP: templates resent (RFC 7011 §10.3.6)
    uint32_t queue_records = 65536;          // records waiting for the exporter thread
    bool enabled() const { return !collector.empty(); }
};

// "HOST:PORT" split; empty host or port when the text is not of that form.
std::pair<std::string, std::string> split_host_port(const std::string& text);

struct IpfixStats {
    std::atomic<uint64_t> exported{0};             // records handed to the transport
    std::atomic<uint64_t> dropped_queue_full{0};   // the exporter thread was behind
    std::atomic<uint64_t> dropped_send_failed{0};  // the transport refused the message
    std::atomic<uint64_t> messages{0};             // IPFIX messages sent
    std::atomic<uint64_t> template_sends{0};       // template sets sent (start and refreshes)
    std::atomic<uint64_t> queued{0};               // records in the queue now
};

class IpfixExporter : public SessionSink {
  public:
    // Starts the exporter thread; the collector is looked up and connected there.
    explicit IpfixExporter(const IpfixConfig& config);
    ~IpfixExporter() override;
    IpfixExporter(const IpfixExporter&) = delete;
    IpfixExporter& operator=(const IpfixExporter&) = delete;

    // Control thread: queue one record, or count it dropped when the queue is full.
    void session_record(const SessionRecord& record) override;
    // Sends what is queued (waiting at most `max_wait`), then stops the thread. The records still
    // queued after that are counted as dropped.
    void finish(std::chrono::milliseconds max_wait);
    const IpfixStats& stats() const { return stats_; }

  private:
    void run();
    bool pop(SessionRecord& out);

    IpfixConfig config_;
    IpfixStats stats_;
    std::vector<SessionRecord> ring_;
    std::atomic<uint64_t> head_{0};  // next to write (control thread)
    std::atomic<uint64_t> tail_{0};  // next to read (exporter thread)
    std::atomic<bool> stopping_{false};
    std::chrono::steady_clock::time_point deadline_{};
    std::thread thread_;
};

}  // namespace amt
