// One worker's buffered TX queue on one port: packets are collected and sent in bursts, and the
// buffer is flushed at the end of every loop iteration that produced output (and by the drain
// timer) so that latency stays bounded at low rates.
//
// What the driver does not take (its descriptor ring is full) stays in the buffer, in order, for
// the next flush: nothing is dropped for a full ring that a later poll can still send (issue 13).
// Replication fills the buffer only up to one burst and then waits (room_for_replica); the slots
// above it are kept for replies, ARP and ND, which never wait behind a fan-out. Only when those
// are taken too is a frame dropped (tx_full).
#pragma once

#include <rte_ethdev.h>
#include <rte_spinlock.h>

#include <array>

#include "dataplane/worker_counters.hpp"

namespace amt {

class TxQueue {
  public:
    static constexpr uint16_t burst = 32;
    static constexpr uint16_t capacity = 2 * burst;

    // `lock`: set when two threads share the queue (a port with fewer TX queues than workers + 1,
    // e.g. net_af_xdp on an interface with one channel); both then buffer privately and hold the
    // lock only to hand a burst to the driver.
    TxQueue(uint16_t port, uint16_t queue, WorkerCounters& counters,
            rte_spinlock_t* lock = nullptr);
    ~TxQueue();
    TxQueue(const TxQueue&) = delete;
    TxQueue& operator=(const TxQueue&) = delete;

    // A frame that does not wait (reply, ARP, exception): buffered, dropped only when the buffer
    // is full and the driver takes nothing.
    void send(rte_mbuf* m) {
        if (count_ == capacity) {
            flush();
            if (count_ == capacity) {
                counters_.drop(DataplaneDrop::tx_full);
                rte_pktmbuf_free(m);
                return;
            }
        }
        pkts_[count_++] = m;
        if (count_ >= burst) flush();
    }
    // Replication: whether one more replica fits now (a full burst is handed to the driver
    // first). When not, the driver's ring is full: the fan-out waits for the next poll.
    bool room_for_replica() {
        if (count_ < burst) return true;
        flush();
        return count_ < burst;
    }
    // After room_for_replica() said yes.
    void send_replica(rte_mbuf* m) { pkts_[count_++] = m; }
    void flush() {
        if (count_ == 0) return;
        if (lock_ != nullptr) rte_spinlock_lock(lock_);
        const uint16_t sent = rte_eth_tx_burst(port_, queue_, pkts_.data(), count_);
        if (lock_ != nullptr) rte_spinlock_unlock(lock_);
        if (sent == 0) return;
        counters_.tx_packets.add(sent);
        count_ = static_cast<uint16_t>(count_ - sent);
        for (uint16_t i = 0; i < count_; ++i)
            pkts_[i] = pkts_[sent + i];
    }
    uint16_t port() const { return port_; }
    uint16_t pending() const { return count_; }

  private:
    uint16_t port_;
    uint16_t queue_;
    rte_spinlock_t* lock_;
    WorkerCounters& counters_;
    uint16_t count_ = 0;
    std::array<rte_mbuf*, capacity> pkts_;
};

}  // namespace amt
