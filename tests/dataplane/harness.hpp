// In-process dataplane test harness: one EAL for the test binary (no hugepages, no PCI), ports
// backed by rte_rings (rte_eth_from_rings) so that a test injects frames into a port's RX rings
// and reads what the relay sent from its TX rings, and helpers that build frames with the codec.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/next_hops.hpp"

namespace amt::test {

using Frame = std::vector<uint8_t>;

// A DPDK port whose queues are rings the test can reach.
class RingPort {
  public:
    RingPort(const std::string& name, uint16_t rx_queues, uint16_t tx_queues);
    ~RingPort();
    const std::string& name() const { return name_; }
    void inject(const Frame& frame, uint16_t rx_queue = 0);
    // Everything sent on any TX queue since the last call, chains linearised, in queue order.
    std::vector<Frame> sent();
    // The same for one TX queue (worker i sends on queue i, the control thread on the last).
    std::vector<Frame> sent_on(uint16_t tx_queue);
    // Makes TX queue `queue` behave like a NIC ring of `descriptors` (a chained frame takes one
    // per segment): a burst is taken only as far as there is room, the rest is the caller's
    // again. sent() drains the ring, as the link would. Call after the relay started the port.
    void limit_tx(uint16_t queue, unsigned descriptors);

  private:
    std::string name_;
    std::vector<rte_ring*> rx_;
    std::vector<rte_ring*> tx_;
    struct TxLimit {
        rte_ring* ring;
        unsigned descriptors;
        uint16_t queue;
        const rte_eth_rxtx_callback* callback;
    };
    std::vector<std::unique_ptr<TxLimit>> limits_;
};

inline const MacAddress relay_mac_placeholder{};
inline const MacAddress router_mac{0x02, 0, 0, 0, 0, 0x01};   // the upstream/downstream router
inline const MacAddress gateway_mac{0x02, 0, 0, 0, 0, 0x02};  // a gateway's next hop as seen

// Gateway i's public address and port (203.0.113.i:40000+i), as the relay sees it.
inline UdpEndpoint gw(int i) {
    return {IpAddress::v4(0xcb007100u + static_cast<uint32_t>(i)),
            static_cast<uint16_t>(40000 + i)};
}

// Ethernet + IPv4/IPv6 + UDP frame around `payload` (checksums valid).
Frame udp_frame(const MacAddress& dst_mac, const MacAddress& src_mac, const UdpEndpoint& src,
                const UdpEndpoint& dst, ByteView payload, uint8_t ttl = 64, uint8_t tos = 0);

// A native multicast UDP packet from `source` to `group` (port 5000) with `payload_size` octets.
Frame multicast_frame(const IpAddress& source, const IpAddress& group, size_t payload_size,
                      uint8_t ttl = 8, uint8_t tos = 0, bool dont_fragment = false);

// An Ethernet ARP frame (op 1 request, broadcast; 2 reply to `target_mac`).
Frame arp_frame(uint16_t op, const MacAddress& sender_mac, const IpAddress& sender_ip,
                const MacAddress& target_mac, const IpAddress& target_ip);

// The UDP datagram of an Ethernet frame (parse error → ok == false).
struct Received {
    bool ok = false;
    EthernetHeader eth;
    UdpDatagram udp;
};
Received parse_frame(const Frame& f);

// Pops the next frame from `q` (fails the test if there is none).
Frame pop(std::vector<Frame>& q);

// The RX queue (= the worker) each message of a handshake arrives on. RSS usually puts a
// gateway's Request and Update on the same queue, but a NAT rebinding or a rehash may not.
struct HandshakeQueues {
    uint16_t request = 0;
    uint16_t update = 0;
};

// A relay on ring ports, stepped by the test: step() polls every worker and the control thread.
class TestRelay {
  public:
    explicit TestRelay(const std::string& name, uint16_t workers = 1,
                       const EngineConfig& engine = default_engine(),
                       bool with_exception_port = false, DataplaneConfig overrides = {},
                       bool separate_upstream = false, uint16_t nic_tx_queues = 0,
                       bool trust_test_sources = true);
    static EngineConfig default_engine();
    // On one port the relay takes native multicast only from upstream.source_prefixes: the
    // tests' sources (198.51.100.0/24, 2001:db8:5::/48) unless the test gives its own list or
    // passes trust_test_sources = false.
    static std::vector<IpPrefix> test_source_prefixes();

    void step(int rounds = 3);
    Dataplane& dp() { return *dataplane_; }
    RingPort& nic() { return nic_; }
    RingPort* tap() { return tap_.get(); }
    // The sources' side: a port of its own, or the NIC itself.
    RingPort& upstream() { return upstream_ ? *upstream_ : nic_; }
    const MacAddress& upstream_mac() const { return dataplane_->upstream_port().mac(); }
    const UdpEndpoint& relay_v4() const { return relay_v4_; }
    const UdpEndpoint& relay_v6() const { return relay_v6_; }
    const MacAddress& relay_mac() const { return dataplane_->port().mac(); }
    Time now() const { return now_; }
    void advance(Time t) { now_ += t; }

    // Request → Query → Update (report built by `report`), stepping the relay; returns true if
    // the Query came back. `relay` picks the family of the outer header.
    bool join(const UdpEndpoint& gateway, const UdpEndpoint& relay, ByteView report_datagram,
              HandshakeQueues queues = {});
    // Request → Query only (on `queue`, stepping the relay): the Query's MAC and nonce, with
    // which the gateway's Updates (update_frame) are accepted until the secret changes.
    std::optional<MembershipQuery> handshake(const UdpEndpoint& gateway, const UdpEndpoint& relay,
                                             uint16_t queue = 0);
    Frame update_frame(const UdpEndpoint& gateway, const UdpEndpoint& relay,
                       const MembershipQuery& query, ByteView report_datagram) const;
    // A report with one record of `type` for `group` and `sources`, in the group's family.
    static Frame report(RecordType type, const IpAddress& group,
                        const std::vector<IpAddress>& sources);

  private:
    RingPort nic_;
    std::unique_ptr<RingPort> tap_;
    std::unique_ptr<RingPort> upstream_;
    UdpEndpoint relay_v4_;
    UdpEndpoint relay_v6_;
    std::unique_ptr<Dataplane> dataplane_;
    Time now_{std::chrono::seconds(1)};
};

}  // namespace amt::test
