#include "dataplane/eal.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include <stdexcept>

namespace amt {

namespace {
[[noreturn]] void fail(const std::string& what, int err = rte_errno) {
    throw std::runtime_error(what + ": " + rte_strerror(err < 0 ? -err : err));
}
}  // namespace

Eal::Eal(const std::vector<std::string>& args) {
    std::vector<std::string> argv_storage = {"amtrelayd"};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(argv_storage.size()), argv.data()) < 0) {
        fail("rte_eal_init (check the eal arguments)");
    }
}

Eal::~Eal() {
    rte_eal_cleanup();
}

Mempool::Mempool(const std::string& name, uint32_t mbufs, uint16_t data_room) {
    pool_ = rte_pktmbuf_pool_create(name.c_str(), mbufs, std::min<uint32_t>(256, mbufs / 8), 0,
                                    data_room, static_cast<int>(rte_socket_id()));
    if (pool_ == nullptr) fail("rte_pktmbuf_pool_create " + name);
}

Mempool::~Mempool() {
    rte_mempool_free(pool_);
}

Ring::Ring(const std::string& name, uint32_t size) {
    ring_ = rte_ring_create(name.c_str(), size, static_cast<int>(rte_socket_id()), RING_F_SC_DEQ);
    if (ring_ == nullptr) fail("rte_ring_create " + name);
}

Ring::~Ring() {
    void* obj;
    while (rte_ring_dequeue(ring_, &obj) == 0)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    rte_ring_free(ring_);
}

uint16_t Port::id_by_name(const std::string& name) {
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) {
        throw std::runtime_error("no DPDK port named '" + name +
                                 "' (check the --vdev / -a EAL arguments)");
    }
    return id;
}

Port::Port(uint16_t id, const PortSetup& setup, rte_mempool* rx_pool) : id_(id) {
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(id, &info); rc != 0) fail("rte_eth_dev_info_get", rc);
    if (info.max_rx_queues < setup.rx_queues || info.max_tx_queues < setup.tx_queues) {
        char name[RTE_ETH_NAME_MAX_LEN] = "?";
        rte_eth_dev_get_name_by_port(id, name);
        throw std::runtime_error(
            std::string("port ") + name + " has " + std::to_string(info.max_rx_queues) + " RX / " +
            std::to_string(info.max_tx_queues) + " TX queues; the relay needs " +
            std::to_string(setup.rx_queues) + " / " + std::to_string(setup.tx_queues) +
            " (one per worker, plus a TX queue for the control thread; for net_af_packet add "
            "qpairs=" +
            std::to_string(setup.tx_queues) + " to its --vdev)");
    }
    rte_eth_conf conf{};
    rx_queues_ = setup.rx_queues;
    // Software rings and the null device pass mbuf chains through untouched.
    const std::string driver = info.driver_name ? info.driver_name : "";
    multi_segment_tx_ = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) ||
                        driver == "net_ring" || driver == "net_null";
    // Every af_packet socket receives from the fanout group, configured or not: poll them all.
    if (driver == "net_af_packet") rx_queues_ = std::max(rx_queues_, info.max_rx_queues);
    // net_af_xdp's TX queue i sends through RX queue i's socket: configure them in pairs (the
    // extra RX queues are polled too, since the NIC's RSS may deliver to them).
    if (driver == "net_af_xdp") rx_queues_ = std::max(rx_queues_, setup.tx_queues);
    // net_tap (the exception port) refuses unequal counts: each queue pair is one file descriptor
    // of a multi-queue tap, and the kernel spreads what it sends over all of them by flow.
    if (driver == "net_tap") rx_queues_ = std::max(rx_queues_, setup.tx_queues);
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) {
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    }
    if (setup.rss && rx_queues_ > 1 && info.flow_type_rss_offloads != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    }
    if (int rc = rte_eth_dev_configure(id, rx_queues_, setup.tx_queues, &conf); rc != 0) {
        fail("rte_eth_dev_configure", rc);
    }
    uint16_t rxd = setup.rx_descriptors, txd = setup.tx_descriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(id, &rxd, &txd);
    const auto socket = static_cast<unsigned>(rte_eth_dev_socket_id(id));
    for (uint16_t q = 0; q < rx_queues_; ++q) {
        if (int rc = rte_eth_rx_queue_setup(id, q, rxd, socket, nullptr, rx_pool); rc != 0) {
            fail("rte_eth_rx_queue_setup", rc);
        }
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < setup.tx_queues; ++q) {
        if (int rc = rte_eth_tx_queue_setup(id, q, txd, socket, &txconf); rc != 0) {
            fail("rte_eth_tx_queue_setup", rc);
        }
    }
    rte_ether_addr addr{};
    rte_eth_macaddr_get(id, &addr);
    std::copy(std::begin(addr.addr_bytes), std::end(addr.addr_bytes), mac_.begin());
    rte_eth_dev_get_mtu(id, &mtu_);
    if (int rc = rte_eth_dev_start(id); rc != 0) fail("rte_eth_dev_start", rc);
    // Multicast must reach the relay whatever the NIC's filters say.
    rte_eth_allmulticast_enable(id);
}

Port::~Port() {
    rte_eth_dev_stop(id_);
}

}  // namespace amt
