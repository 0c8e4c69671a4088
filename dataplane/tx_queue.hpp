// One worker's buffered TX queue on one port: packets are collected and sent in bursts, and the
// buffer is flushed at the end of every loop iteration that produced output (and by the drain
// timer) so that latency stays bounded at low rates.
#pragma once

#include <rte_ethdev.h>
#include <rte_spinlock.h>

#include "dataplane/worker_counters.hpp"

namespace amt {

class TxQueue {
  public:
    // `lock`: set when two threads share the queue (a port with fewer TX queues than workers + 1,
    // e.g. net_af_xdp on an interface with one channel); both then buffer privately and hold the
    // lock only to hand a burst to the driver.
    TxQueue(uint16_t port, uint16_t queue, WorkerCounters& counters, uint16_t burst = 32,
            rte_spinlock_t* lock = nullptr);
    ~TxQueue();
    TxQueue(const TxQueue&) = delete;
    TxQueue& operator=(const TxQueue&) = delete;

    void send(rte_mbuf* m) {
        ++queued_;
        if (lock_ == nullptr) {
            sent_ += rte_eth_tx_buffer(port_, queue_, buffer_, m);
            return;
        }
        buffer_->pkts[buffer_->length++] = m;
        if (buffer_->length == buffer_->size) flush();
    }
    void flush() {
        if (queued_ == 0) return;
        if (lock_ != nullptr) rte_spinlock_lock(lock_);
        sent_ += rte_eth_tx_buffer_flush(port_, queue_, buffer_);
        if (lock_ != nullptr) rte_spinlock_unlock(lock_);
        queued_ = 0;
        counters_.tx_packets.add(sent_);
        sent_ = 0;
    }
    uint16_t port() const { return port_; }

  private:
    static void on_unsent(rte_mbuf** pkts, uint16_t unsent, void* self);

    uint16_t port_;
    uint16_t queue_;
    rte_eth_dev_tx_buffer* buffer_;
    rte_spinlock_t* lock_;
    WorkerCounters& counters_;
    uint64_t sent_ = 0;
    uint32_t queued_ = 0;
};

}  // namespace amt
