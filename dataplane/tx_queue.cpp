#include "dataplane/tx_queue.hpp"

namespace amt {

TxQueue::TxQueue(uint16_t port, uint16_t queue, WorkerCounters& counters, rte_spinlock_t* lock)
    : port_(port), queue_(queue), lock_(lock), counters_(counters) {}

TxQueue::~TxQueue() {
    flush();
    // Shutdown with the driver's ring still full: what it never took is dropped.
    if (count_ > 0) {
        counters_.drop(DataplaneDrop::tx_full, count_);
        rte_pktmbuf_free_bulk(pkts_.data(), count_);
    }
}

}  // namespace amt
