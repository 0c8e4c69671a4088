// A ring-backed DPDK port for in-process benchmarks: the benchmark enqueues frames on the port's
// RX ring and dequeues what the relay sent from its TX ring (both TX queues, worker and control,
// share one ring).
#pragma once

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <stdexcept>
#include <string>

namespace amt::bench {

struct BenchPort {
    rte_ring* rx;
    rte_ring* tx;
    uint16_t id;
    std::string name;
};

inline BenchPort make_bench_port(const std::string& name, unsigned rx_size = 1024,
                                 unsigned tx_size = 65536) {
    BenchPort p;
    p.rx = rte_ring_create((name + "_rx").c_str(), rx_size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx = rte_ring_create((name + "_tx").c_str(), tx_size, 0, RING_F_SC_DEQ);
    if (p.rx == nullptr || p.tx == nullptr) throw std::runtime_error("bench port rings");
    rte_ring* tx[2] = {p.tx, p.tx};  // worker queue + control queue
    const int id = rte_eth_from_rings(name.c_str(), &p.rx, 1, tx, 2, 0);
    if (id < 0) throw std::runtime_error("bench port");
    p.id = static_cast<uint16_t>(id);
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(p.id, dev);
    p.name = dev;
    return p;
}

}  // namespace amt::bench
