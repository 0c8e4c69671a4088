// RAII wrappers for the DPDK resources the relay owns: the EAL itself, mbuf pools, rings, ports.
// Each constructor throws std::runtime_error with DPDK's reason; each destructor releases.
#pragma once

#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <string>
#include <vector>

#include "common/packet_headers.hpp"

namespace amt {

class Eal {
  public:
    // `args` are EAL arguments without the program name (e.g. "--no-huge", "-m", "512").
    explicit Eal(const std::vector<std::string>& args);
    ~Eal();
    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
};

class Mempool {
  public:
    Mempool(const std::string& name, uint32_t mbufs, uint16_t data_room);
    ~Mempool();
    Mempool(const Mempool&) = delete;
    Mempool& operator=(const Mempool&) = delete;
    rte_mempool* get() const { return pool_; }
    unsigned available() const { return rte_mempool_avail_count(pool_); }

  private:
    rte_mempool* pool_;
};

class Ring {
  public:
    // Many producers (workers), one consumer (the control thread).
    Ring(const std::string& name, uint32_t size);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    rte_ring* get() const { return ring_; }

  private:
    rte_ring* ring_;
};

struct PortSetup {
    uint16_t rx_queues = 1;
    uint16_t tx_queues = 1;
    uint16_t rx_descriptors = 1024;
    uint16_t tx_descriptors = 1024;
    bool rss = true;  // spread RX over the queues by IP addresses/ports
};

class Port {
  public:
    // Finds an ethdev by name ("net_ring0", "0000:3b:00.0", ...).
    static uint16_t id_by_name(const std::string& name);

    Port(uint16_t id, const PortSetup& setup, rte_mempool* rx_pool);
    ~Port();
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    uint16_t id() const { return id_; }
    const MacAddress& mac() const { return mac_; }
    uint16_t mtu() const { return mtu_; }
    bool multi_segment_tx() const { return multi_segment_tx_; }
    // RX queues configured: at least PortSetup::rx_queues, more for drivers whose queues come in
    // pairs that all receive (net_af_packet's qpairs share one fanout group).
    uint16_t rx_queues() const { return rx_queues_; }

  private:
    uint16_t id_;
    MacAddress mac_{};
    uint16_t mtu_ = 1500;
    bool multi_segment_tx_ = false;
    uint16_t rx_queues_ = 0;
};

}  // namespace amt
