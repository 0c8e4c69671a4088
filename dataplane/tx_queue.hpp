// One worker's buffered TX queue on one port: packets are collected and sent in bursts, and the
// buffer is flushed at the end of every loop iteration that produced output (and by the drain
// timer) so that latency stays bounded at low rates.
#pragma once

#include <rte_ethdev.h>

#include "dataplane/worker_counters.hpp"

namespace amt {

class TxQueue {
  public:
    TxQueue(uint16_t port, uint16_t queue, WorkerCounters& counters, uint16_t burst = 32);
    ~TxQueue();
    TxQueue(const TxQueue&) = delete;
    TxQueue& operator=(const TxQueue&) = delete;

    void send(rte_mbuf* m) {
        sent_ += rte_eth_tx_buffer(port_, queue_, buffer_, m);
        ++queued_;
    }
    void flush() {
        if (queued_ == 0) return;
        sent_ += rte_eth_tx_buffer_flush(port_, queue_, buffer_);
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
    WorkerCounters& counters_;
    uint64_t sent_ = 0;
    uint32_t queued_ = 0;
};

}  // namespace amt
