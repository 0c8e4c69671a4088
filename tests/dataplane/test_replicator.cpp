// The Replicator at fan-outs beyond the mbuf's 16-bit reference count: a channel joined by more
// than 65,535 gateways (a large live event on a relay sized for 1M tunnels). Every chained
// replica holds one reference on the original it points to; the count must match exactly, or
// the original returns to its pool while replicas still point into it.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <map>
#include <set>
#include <vector>

#include "common/checksum.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/eal.hpp"
#include "dataplane/replicator.hpp"
#include "dataplane/tx_queue.hpp"

using namespace amt;

TEST(Replicator, FanOutBeyondTheMbufReferenceCount) {
    constexpr uint32_t fanout = 70'000;
    const int socket = static_cast<int>(rte_socket_id());
    rte_ring* rx = rte_ring_create("refs_rx", 1024, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* tx = rte_ring_create("refs_tx", 131072, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(rx, nullptr);
    ASSERT_NE(tx, nullptr);
    const int id = rte_eth_from_rings("refs", &rx, 1, &tx, 1, static_cast<unsigned>(socket));
    ASSERT_GE(id, 0);
    Mempool packets("refs_packets", 1023, RTE_MBUF_DEFAULT_BUF_SIZE);
    Mempool headers("refs_headers", 131071, RTE_PKTMBUF_HEADROOM + 128);
    {
        Port port(static_cast<uint16_t>(id), PortSetup{}, packets.get());
        WorkerCounters counters;
        TxQueue queue(static_cast<uint16_t>(id), 0, counters);
        Replicator replicator(headers.get(), packets.get(), ReplicationPolicy{}, counters);

        const UdpEndpoint relay{*IpAddress::parse("192.0.2.1"), amt_udp_port};
        std::vector<TunnelHeader> tunnels;
        for (uint32_t i = 0; i < fanout; ++i) {
            tunnels.push_back(make_tunnel_header(
                relay, {IpAddress::v4(0x0a000000u + i), static_cast<uint16_t>(1024 + i % 60000)},
                MacAddress{2, 0, 0, 0, 0, 1}, MacAddress{2, 0, 0, 0, 0, 2}, 64, 1500, i));
        }
        // Both forms a set takes: one flat copy, and the chunks a big flow's list shares.
        GatewayList list;
        for (const TunnelHeader& t : tunnels)
            list.push_back(t);
        const GatewaySetPtr flat = GatewaySet::create(tunnels);
        const GatewaySetPtr chunked = list.make_set();
        ASSERT_EQ(flat->chunk_count(), 1u);
        ASSERT_GT(chunked->chunk_count(), 1000u);
        for (const GatewaySet* set : {flat.get(), chunked.get()}) {
            // The inner packet as the worker hands it over: data starts at the inner IP header.
            rte_mbuf* pkt = rte_pktmbuf_alloc(packets.get());
            ASSERT_NE(pkt, nullptr);
            const std::vector<uint8_t> payload(1316, 0x47);
            const size_t length = ip_udp_header_size(Family::ipv4) + payload.size();
            auto* data =
                reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkt, static_cast<uint16_t>(length)));
            ASSERT_NE(data, nullptr);
            build_udp_datagram(MutByteView(data, length), {*IpAddress::parse("198.51.100.7"), 5000},
                               {*IpAddress::parse("232.1.1.1"), 5000}, payload);
            const unsigned pool_full = packets.available() + 1;  // with pkt back

            const InnerPacket inner{.length = static_cast<uint16_t>(length),
                                    .sum = checksum_add(ByteView(data, length)),
                                    .tos = 0};
            FanOut walk = replicator.start(pkt, inner, *set);
            const uint64_t replicas0 = counters.replicas.value();
            EXPECT_TRUE(replicator.replicate(walk, queue)) << "the TX ring holds the fan-out";
            queue.flush();
            EXPECT_EQ(counters.replicas.value() - replicas0, fanout);

            std::vector<rte_mbuf*> sent(fanout + 1);
            const unsigned n = rte_ring_dequeue_burst(tx, reinterpret_cast<void**>(sent.data()),
                                                      fanout + 1, nullptr);
            EXPECT_EQ(n, fanout);
            std::map<rte_mbuf*, uint32_t> replicas_of;  // original → replicas chained to it
            std::set<uint32_t> gateways;                // outer IPv4 destinations
            for (unsigned i = 0; i < n; ++i) {
                ASSERT_NE(sent[i]->next, nullptr);
                ++replicas_of[sent[i]->next];
                gateways.insert(load_be32(rte_pktmbuf_mtod(sent[i], const uint8_t*) +
                                          ethernet_header_size + 16));
            }
            for (const auto& [original, replicas] : replicas_of) {
                EXPECT_EQ(rte_mbuf_refcnt_read(original), replicas)
                    << "an original's reference count differs from the replicas chained to it";
                EXPECT_EQ(rte_pktmbuf_mtod(original, const uint8_t*)[length - 1], 0x47);
            }
            rte_pktmbuf_free_bulk(sent.data(), n);
            EXPECT_EQ(packets.available(), pool_full) << "originals leaked or freed twice";
            EXPECT_EQ(gateways.size(), fanout) << "every tunnel of the set got exactly one replica";
        }
    }
    rte_eth_dev_close(static_cast<uint16_t>(id));
    rte_ring_free(rx);
    rte_ring_free(tx);
}
