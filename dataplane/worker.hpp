// A poll-mode worker: one RX queue in, one TX queue out, never a lock or an allocation but mbufs.
//
//   RX burst → classify each frame →
//     native multicast (not link-local, not IGMP/MLD/PIM) → flow lookup (S,G) then (*,G)
//                                                          → TTL once → replicate → TX buffer
//     AMT Discovery / Request to a relay address          → answered here, MACs per burst
//     AMT Update / Teardown                                → control ring
//     ARP / Neighbor Solicitation for a relay address      → answered here
//     ARP / NS / NA from an on-link gateway's address      → a copy to the control ring
//     anything else                                        → exception path (TAP to the kernel)
//   then flush TX and report a quiescent state to RCU.
//
// Egress (issue 13). A fan-out stops where the TX queue is full and goes on at the next poll, so a
// burst bigger than the NIC's ring waits instead of being dropped. Fan-outs waiting are the
// egress backlog, in arrival order; it is bounded by link time (egress.octets) and by packets.
// While it is full, native multicast is refused whole at intake (egress_buffer_full): every
// tunnel of a flow loses the same packets, and RX keeps being polled, so AMT control traffic is
// still answered. A walk that waits holds its GatewaySet across polls; the worker then reports
// to RCU only the token read before that walk's lookup (Rcu::quiescent_since), so the set, and
// the chunks it shares, outlive the walk. A walk that makes no progress for egress.stall_us (the
// link stopped) is given up (tx_full), which bounds how long it can hold a grace period back.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <optional>
#include <vector>

#include "controlplane/handshake_responder.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/next_hops.hpp"
#include "dataplane/replicator.hpp"
#include "dataplane/tx_queue.hpp"
#include "dataplane/worker_counters.hpp"

namespace amt {

// One port the worker polls: its queues and the relay's identity on that link.
struct WorkerLink {
    uint16_t port = 0;
    std::vector<uint16_t> rx_queues;  // usually one; more when a port has more queues than workers
    uint16_t tx_queue = 0;
    rte_spinlock_t* tx_lock = nullptr;  // the control thread shares tx_queue (see TxQueue)
    MacAddress mac{};
    std::vector<IpAddress> addresses;  // answered for ARP / ND on this link
};

// The egress backlog's bounds, per worker.
struct EgressBuffer {
    uint64_t octets =
        50'000ull * 25'000 / 8;   // link time: dataplane.egress_buffer_us at the link rate
    uint32_t packets = 1024;      // fan-outs waiting (input packets held)
    uint32_t stall_us = 100'000;  // a walk without progress this long is given up
};

struct WorkerSetup {
    WorkerLink downstream;               // gateways: AMT in, replicas and replies out
    std::optional<WorkerLink> upstream;  // sources, when on a port of their own
    // Native multicast is accepted only from these sources (upstream.source_prefixes); with
    // one port and none listed, from nobody: the gateways' side must not inject streams.
    std::vector<IpPrefix> source_prefixes;
    // downstream.prefixes: ARP and ND from these addresses go (copied) to the control thread,
    // which resolves the gateways on the relay's own link.
    std::vector<IpPrefix> on_link_prefixes;
    std::optional<uint16_t> exception_port;  // TAP toward the kernel, if configured
    uint16_t exception_tx_queue = 0;
    uint32_t rcu_thread_id = 0;
    bool decrement_ttl = true;
    ReplicationPolicy replication;
    EgressBuffer egress;
    EngineConfig engine;  // for the HandshakeResponder
};

struct WorkerShared {
    FlowTable& flows;
    Rcu& rcu;
    const SecretStore& secrets;
    rte_ring* control_ring;
    rte_mempool* header_pool;
    rte_mempool* packet_pool;
    NextHops& next_hops;  // learned here from ARP / ND, resolved by the control thread
    ReplyGuard& replies;  // the relay's one reply budget, shared with every worker
};

class Worker : private ReplySink {
  public:
    static constexpr uint16_t burst_size = 32;

    Worker(const WorkerSetup& setup, const WorkerShared& shared);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // One loop iteration; returns the number of frames received.
    uint16_t poll_once(Time now);
    // Polls until `stop` is set; registered with RCU for the duration.
    void run(const std::atomic<bool>& stop);

    // One received frame, from the downstream link or (upstream = true) the upstream one.
    void process(rte_mbuf* m, bool upstream);
    void flush();
    // Gives up every fan-out still waiting (before the worker stops for good).
    void abandon_backlog();

    WorkerCounters& counters() { return counters_; }
    uint32_t backlog_packets() const { return backlog_count_; }
    HandshakeResponder& responder() { return responder_; }
    void set_refusing_new_endpoints(bool refusing) {
        responder_.set_refusing_new_endpoints(refusing);
    }

  private:
    // A fan-out waiting for the TX queue.
    struct Waiting {
        FanOut walk;
        uint64_t rcu_token;       // read before its set was looked up
        Time progress;            // when it last sent a replica (or arrived)
        uint32_t replica_octets;  // link octets of one replica (frame + preamble, FCS, gap)
    };

    struct PendingHandshake {
        rte_mbuf* mbuf;
        MacAddress peer_mac;
    };

    void classify_ipv4(rte_mbuf* m, size_t l2);
    void classify_ipv6(rte_mbuf* m, size_t l2);
    std::optional<DataplaneDrop> refuse_native(const uint8_t* source, Family family,
                                               bool query) const;
    void forward_multicast(rte_mbuf* m, size_t l2, Family family);
    // Per-tunnel accounting: the flow's packet and inner octets, once, whatever the fan-out.
    void count_flow(const GatewaySet& set, uint16_t length) {
        if (flow_counters_ != nullptr && set.counter_slot() != FlowCounters::no_slot)
            flow_counters_->count(setup_.rcu_thread_id, set.counter_slot(), length);
    }
    static uint32_t inner_packet_sum(const rte_mbuf* m, const uint8_t* ip, uint16_t length);
    bool backlog_full() const {
        return backlog_octets_ >= setup_.egress.octets || backlog_count_ == backlog_.size();
    }
    void fan_out(rte_mbuf* m, const InnerPacket& inner, const GatewaySet& set);
    void drain_backlog();
    void report_quiescent();
    void fragment_and_replicate(rte_mbuf* m, size_t l2, uint16_t length, uint8_t tos,
                                const GatewaySet& set);
    void send_packet_too_big(rte_mbuf* m, size_t l2, uint16_t length, uint16_t mtu);
    void handle_amt(rte_mbuf* m, size_t l2);
    void answer_arp(rte_mbuf* m, size_t l2);
    void answer_neighbor_solicitation(rte_mbuf* m, size_t l2, size_t icmp_offset);
    void learn_next_hop_v6(const uint8_t* frame, const uint8_t* ip, size_t avail);
    bool on_link(const IpAddress& a) const;
    void copy_to_control(const rte_mbuf* m);
    void to_exception(rte_mbuf* m);
    void to_control(rte_mbuf* m);
    uint16_t poll_link(const WorkerLink& link, bool upstream);
    void drop(rte_mbuf* m, DataplaneDrop reason);
    void answer_handshakes(Time now);
    bool is_own_address(const IpAddress& a) const;    // on the link of the current frame
    bool is_relay_address(const IpAddress& a) const;  // where AMT is answered
    void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) override;

    WorkerSetup setup_;
    WorkerShared shared_;
    WorkerCounters counters_;
    FlowCounters* flow_counters_;  // per-tunnel accounting on: one count per native packet
    HandshakeResponder responder_;
    TxQueue tx_;                          // downstream
    std::optional<TxQueue> upstream_tx_;  // when the upstream link is a port of its own
    std::optional<TxQueue> exception_tx_;
    // The link of the frame being processed: ARP, ND and ICMP answers leave where it came in.
    const WorkerLink* link_ = nullptr;
    TxQueue* link_tx_ = nullptr;
    Replicator replicator_;
    ReplyRateLimiter too_big_limiter_{4096};  // ICMP toward each source, a few per second
    std::array<PendingHandshake, burst_size> pending_{};
    std::array<Datagram, burst_size> handshakes_{};
    uint16_t pending_count_ = 0;
    std::vector<Waiting> backlog_;  // a ring: backlog_count_ entries from backlog_head_
    uint32_t backlog_head_ = 0;
    uint32_t backlog_count_ = 0;
    uint64_t backlog_octets_ = 0;
    uint64_t poll_token_ = 0;  // RCU token read at the start of this poll
    Time poll_time_{};         // the time poll_once() was given (the steady clock, or a test's)
    uint64_t last_poll_end_ = 0;
    Time stall_{};
};

}  // namespace amt
