#include "dataplane/tx_queue.hpp"

#include <rte_malloc.h>

#include <stdexcept>

namespace amt {

TxQueue::TxQueue(uint16_t port, uint16_t queue, WorkerCounters& counters, uint16_t burst,
                 rte_spinlock_t* lock)
    : port_(port), queue_(queue), lock_(lock), counters_(counters) {
    buffer_ = static_cast<rte_eth_dev_tx_buffer*>(
        rte_zmalloc("amt_tx_buffer", RTE_ETH_TX_BUFFER_SIZE(burst), RTE_CACHE_LINE_SIZE));
    if (buffer_ == nullptr) throw std::runtime_error("rte_zmalloc(tx buffer) failed");
    rte_eth_tx_buffer_init(buffer_, burst);
    rte_eth_tx_buffer_set_err_callback(buffer_, &TxQueue::on_unsent, this);
}

TxQueue::~TxQueue() {
    flush();
    rte_free(buffer_);
}

// The NIC's ring is full: drop what it did not take, and count it.
void TxQueue::on_unsent(rte_mbuf** pkts, uint16_t unsent, void* self) {
    auto* q = static_cast<TxQueue*>(self);
    rte_pktmbuf_free_bulk(pkts, unsent);
    q->counters_.drop(DataplaneDrop::tx_full, unsent);
}

}  // namespace amt
