#include "harness.hpp"

#include <gtest/gtest.h>
#include <rte_dev.h>
#include <rte_eth_ring.h>
#include <rte_lcore.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace amt::test {

namespace {
// Jumbo-sized buffers so that a test can inject packets larger than the tunnel MTU.
rte_mempool* inject_pool() {
    static rte_mempool* pool =
        rte_pktmbuf_pool_create("test_inject", 4095, 256, 0, RTE_PKTMBUF_HEADROOM + 9000,
                                static_cast<int>(rte_socket_id()));
    if (pool == nullptr) throw std::runtime_error("test mbuf pool");
    return pool;
}

rte_ring* make_ring(const std::string& name) {
    rte_ring* r = rte_ring_create(name.c_str(), 4096, static_cast<int>(rte_socket_id()), 0);
    if (r == nullptr) throw std::runtime_error("rte_ring_create " + name);
    return r;
}
}  // namespace

RingPort::RingPort(const std::string& name, uint16_t rx_queues, uint16_t tx_queues) : name_(name) {
    for (uint16_t i = 0; i < rx_queues; ++i)
        rx_.push_back(make_ring(name + "_rx" + std::to_string(i)));
    for (uint16_t i = 0; i < tx_queues; ++i)
        tx_.push_back(make_ring(name + "_tx" + std::to_string(i)));
    const int id = rte_eth_from_rings(name.c_str(), rx_.data(), rx_queues, tx_.data(), tx_queues,
                                      rte_socket_id());
    if (id < 0) throw std::runtime_error("rte_eth_from_rings " + name);
    // The ring PMD prefixes the name ("net_ring_..."): use the ethdev's own.
    char dev_name[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev_name);
    name_ = dev_name;
}

RingPort::~RingPort() {
    // rte_eth_from_rings made a vdev: removing the device (not only closing the port) frees its
    // name, so that the next relay of that name (--gtest_repeat) can be built.
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(name_.c_str(), &id) == 0) {
        // A callback outlives the port: the next port with this id would call it.
        for (const auto& limit : limits_)
            rte_eth_remove_tx_callback(id, limit->queue, limit->callback);
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(id, &info) != 0 || rte_dev_remove(info.device) != 0)
            rte_eth_dev_close(id);
    }
    sent();
    for (rte_ring* r : rx_) {
        void* m;
        while (rte_ring_dequeue(r, &m) == 0)
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
    }
    for (rte_ring* r : tx_)
        rte_ring_free(r);
}

void RingPort::inject(const Frame& frame, uint16_t rx_queue) {
    rte_mbuf* m = rte_pktmbuf_alloc(inject_pool());
    ASSERT_NE(m, nullptr);
    auto* p = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    ASSERT_NE(p, nullptr);
    std::memcpy(p, frame.data(), frame.size());
    ASSERT_EQ(rte_ring_enqueue(rx_[rx_queue], m), 0);
}

std::vector<Frame> RingPort::sent_on(uint16_t tx_queue) {
    std::vector<Frame> out;
    void* obj;
    while (rte_ring_dequeue(tx_[tx_queue], &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        Frame f(m->pkt_len);
        const void* data = rte_pktmbuf_read(m, 0, m->pkt_len, f.data());
        if (data != f.data()) std::memcpy(f.data(), data, m->pkt_len);
        out.push_back(std::move(f));
        rte_pktmbuf_free(m);
    }
    return out;
}

void RingPort::limit_tx(uint16_t queue, unsigned descriptors) {
    limits_.push_back(std::make_unique<TxLimit>(TxLimit{tx_[queue], descriptors, queue, nullptr}));
    uint16_t id;
    ASSERT_EQ(rte_eth_dev_get_port_by_name(name_.c_str(), &id), 0);
    const auto take = [](uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, void* arg) -> uint16_t {
        const auto* limit = static_cast<const TxLimit*>(arg);
        // The frames still in the ring are what the "NIC" has not sent yet; each is counted
        // as a chained replica (two descriptors). Only the worker enqueues on this queue.
        unsigned used = 2 * rte_ring_count(limit->ring);
        uint16_t k = 0;
        while (k < n && used + pkts[k]->nb_segs <= limit->descriptors) {
            used += pkts[k]->nb_segs;
            ++k;
        }
        return k;
    };
    limits_.back()->callback = rte_eth_add_tx_callback(id, queue, take, limits_.back().get());
    ASSERT_NE(limits_.back()->callback, nullptr);
}

std::vector<Frame> RingPort::sent() {
    std::vector<Frame> out;
    for (uint16_t q = 0; q < tx_.size(); ++q) {
        std::vector<Frame> frames = sent_on(q);
        std::move(frames.begin(), frames.end(), std::back_inserter(out));
    }
    return out;
}

Frame udp_frame(const MacAddress& dst_mac, const MacAddress& src_mac, const UdpEndpoint& src,
                const UdpEndpoint& dst, ByteView payload, uint8_t ttl, uint8_t tos) {
    Frame f(ethernet_header_size + ip_udp_header_size(src.ip.family()) + payload.size());
    build_ethernet(f, dst_mac, src_mac, src.ip.is_v4() ? ethertype_ipv4 : ethertype_ipv6);
    build_udp_datagram(MutByteView(f).subspan(ethernet_header_size), src, dst, payload,
                       {.tos = tos, .ttl = ttl, .dont_fragment = false});
    return f;
}

Frame multicast_frame(const IpAddress& source, const IpAddress& group, size_t payload_size,
                      uint8_t ttl, uint8_t tos, bool dont_fragment) {
    std::vector<uint8_t> payload(payload_size);
    for (size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<uint8_t>(i * 7 + 1);
    MacAddress mcast_mac{0x01, 0x00, 0x5e, 0, 0, 1};
    if (group.is_v6()) mcast_mac = {0x33, 0x33, 0, 0, 0, 1};
    Frame f(ethernet_header_size + ip_udp_header_size(source.family()) + payload_size);
    build_ethernet(f, mcast_mac, router_mac, source.is_v4() ? ethertype_ipv4 : ethertype_ipv6);
    build_udp_datagram(MutByteView(f).subspan(ethernet_header_size), {source, 5000}, {group, 5000},
                       payload, {.tos = tos, .ttl = ttl, .dont_fragment = dont_fragment});
    return f;
}

Frame arp_frame(uint16_t op, const MacAddress& sender_mac, const IpAddress& sender_ip,
                const MacAddress& target_mac, const IpAddress& target_ip) {
    Frame f(ethernet_header_size + 28);
    build_arp_frame(f, op, sender_mac, sender_ip, target_mac, target_ip);
    return f;
}

Received parse_frame(const Frame& f) {
    Received r;
    if (parse_ethernet(f, r.eth) != ParseError::ok) return r;
    r.ok = parse_udp_datagram(ByteView(f).subspan(r.eth.size), r.udp, true) == ParseError::ok;
    return r;
}

Frame pop(std::vector<Frame>& q) {
    EXPECT_FALSE(q.empty()) << "expected another frame from the relay";
    if (q.empty()) return {};
    Frame f = std::move(q.front());
    q.erase(q.begin());
    return f;
}

EngineConfig TestRelay::default_engine() {
    EngineConfig c;
    c.relay_addresses = {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::1")};
    c.limits.replies_per_second_per_source_ip = 1e9;
    c.limits.replies_per_second = 1e9;
    c.limits.reply_burst = 1e9;
    c.limits.reply_burst_per_source_ip = 1e9;
    return c;
}

std::vector<IpPrefix> TestRelay::test_source_prefixes() {
    return {*IpPrefix::parse("198.51.100.0/24"), *IpPrefix::parse("2001:db8:5::/48")};
}

TestRelay::TestRelay(const std::string& name, uint16_t workers, const EngineConfig& engine,
                     bool with_exception_port, DataplaneConfig config, bool separate_upstream,
                     uint16_t nic_tx_queues, bool trust_test_sources)
    : nic_(name, workers, nic_tx_queues != 0 ? nic_tx_queues : static_cast<uint16_t>(workers + 1)),
      relay_v4_{engine.relay_addresses[0], amt_udp_port},
      relay_v6_{
          engine.relay_addresses.size() > 1 ? engine.relay_addresses[1] : engine.relay_addresses[0],
          amt_udp_port},
      now_(std::chrono::steady_clock::now().time_since_epoch()) {
    if (with_exception_port) {
        tap_ = std::make_unique<RingPort>(name + "_tap", 1, static_cast<uint16_t>(workers + 1));
        config.exception_port = tap_->name();
    }
    config.port = nic_.name();
    if (separate_upstream) {
        upstream_ =
            std::make_unique<RingPort>(name + "_up", workers, static_cast<uint16_t>(workers + 1));
        config.upstream_port = upstream_->name();
    }
    if (!separate_upstream && trust_test_sources && config.upstream_source_prefixes.empty())
        config.upstream_source_prefixes = test_source_prefixes();
    config.workers = workers;
    if (config.packet_mbufs == 0) config.packet_mbufs = 8191;
    if (config.header_mbufs == 0) config.header_mbufs = 4095;
    if (config.flow_table_size == DataplaneConfig{}.flow_table_size) config.flow_table_size = 4096;
    if (!config.next_hop_v4) config.next_hop_v4_mac = gateway_mac;
    if (!config.next_hop_v6) config.next_hop_v6_mac = gateway_mac;
    config.engine = engine;
    dataplane_ = std::make_unique<Dataplane>(config);
}

void TestRelay::step(int rounds) {
    for (int r = 0; r < rounds; ++r) {
        for (size_t i = 0; i < dataplane_->worker_count(); ++i)
            dataplane_->worker(i).poll_once(now_);
        // Past the publish interval every round, so edits are published at once.
        now_ += std::chrono::milliseconds(2);
        dataplane_->control().poll_once(now_);
    }
}

Frame TestRelay::report(RecordType type, const IpAddress& group,
                        const std::vector<IpAddress>& sources) {
    Frame buf(1500);
    ReportBuilder b(buf, group.family());
    b.add_record(type, group, sources);
    buf.resize(b.finish());
    return buf;
}

std::optional<MembershipQuery> TestRelay::handshake(const UdpEndpoint& gateway,
                                                    const UdpEndpoint& relay, uint16_t queue) {
    uint8_t req[8];
    build_request(req, {.nonce = 0x1234u + gateway.port, .flags = 0});
    nic_.inject(udp_frame(relay_mac(), router_mac, gateway, relay, ByteView(req)), queue);
    step();
    std::optional<MembershipQuery> found;
    for (const Frame& f : nic_.sent()) {
        const Received r = parse_frame(f);
        MembershipQuery q;
        if (r.ok && r.udp.dst == gateway &&
            parse_membership_query(r.udp.payload, q) == ParseError::ok) {
            q.encapsulated = {};  // points into a frame that is gone
            found = q;
        }
    }
    return found;
}

Frame TestRelay::update_frame(const UdpEndpoint& gateway, const UdpEndpoint& relay,
                              const MembershipQuery& query, ByteView report) const {
    uint8_t update[1600];
    const size_t n = build_membership_update(update, query.mac, query.nonce, report);
    return udp_frame(dataplane_->port().mac(), router_mac, gateway, relay, ByteView(update, n));
}

bool TestRelay::join(const UdpEndpoint& gateway, const UdpEndpoint& relay, ByteView report,
                     HandshakeQueues queues) {
    const std::optional<MembershipQuery> q = handshake(gateway, relay, queues.request);
    if (!q) return false;
    nic_.inject(update_frame(gateway, relay, *q, report), queues.update);
    step();
    return true;
}

}  // namespace amt::test
