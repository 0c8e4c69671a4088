// Egress on a NIC-like TX ring (issue 13): a fan-out larger than the ring waits where it stopped
// and goes on at the next poll, in order, over the set it started with; the set is not freed
// while such a walk holds it; a full backlog refuses native multicast whole, while AMT control
// traffic is still answered; pools too small for the queues stop the start with the keys named.
//
// The worker is stepped by the test (poll_once) and registered with RCU as a running worker is,
// so that a grace period waits for it. The TX ring takes 64 descriptors (32 chained replicas);
// relay.nic().sent() is the link: it empties the ring.
#include <gtest/gtest.h>
#include <rte_rcu_qsbr.h>

#include <map>
#include <set>

#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

const IpAddress source = *IpAddress::parse("198.51.100.7");
const IpAddress group = *IpAddress::parse("232.1.1.1");
const FlowKey flow{source, group};
constexpr size_t base_payload = 200;  // packet k carries base_payload + k octets: its number

// A replica as the test sees it: which gateway (by its UDP port) and which input packet.
struct Replica {
    int gateway;
    int packet;
};

std::vector<Replica> replicas_in(const std::vector<Frame>& frames) {
    std::vector<Replica> out;
    for (const Frame& f : frames) {
        const Received r = parse_frame(f);
        if (!r.ok || r.udp.payload.size() < 2 || r.udp.payload[0] != 6) continue;  // AMT Data
        const size_t inner = r.udp.payload.size() - 2 - ip_udp_header_size(Family::ipv4);
        out.push_back({r.udp.dst.port - 40000, static_cast<int>(inner - base_payload)});
    }
    return out;
}

class SteppedWorker {
  public:
    explicit SteppedWorker(TestRelay& relay) : relay_(relay), v_(relay.dp().rcu().get()) {
        rte_rcu_qsbr_thread_register(v_, 0);
        rte_rcu_qsbr_thread_online(v_, 0);
    }
    ~SteppedWorker() {
        rte_rcu_qsbr_thread_offline(v_, 0);
        rte_rcu_qsbr_thread_unregister(v_, 0);
    }
    void poll() { relay_.dp().worker(0).poll_once(relay_.now()); }

  private:
    TestRelay& relay_;
    rte_rcu_qsbr* v_;
};

void add_gateways(TestRelay& relay, int from, int to) {
    FlowPublisher& publisher = relay.dp().control().publisher();
    for (int i = from; i < to; ++i)
        publisher.apply(
            {FlowOp::add_tunnel, flow, static_cast<EndpointId>(i), gw(i), relay.relay_v4()});
    publisher.publish();
}

uint64_t dropped(TestRelay& relay, DataplaneDrop reason) {
    return relay.dp().worker(0).counters().dropped[static_cast<size_t>(reason)].value();
}

}  // namespace

TEST(Egress, FullTxRingDelaysTheFanOutInsteadOfDropping) {
    TestRelay relay("egress_full");
    relay.nic().limit_tx(0, 64);
    SteppedWorker worker(relay);
    relay.dp().control().publisher().apply({FlowOp::create_flow, flow});
    constexpr int gateways = 100, packets = 8;  // 800 replicas through a ring of 32
    add_gateways(relay, 0, gateways);
    for (int k = 0; k < packets; ++k)
        relay.nic().inject(multicast_frame(source, group, base_payload + k));

    std::vector<Replica> seen;
    for (int round = 0; round < 200 && seen.size() < gateways * packets; ++round) {
        worker.poll();
        for (const Replica& r : replicas_in(relay.nic().sent()))
            seen.push_back(r);
    }
    EXPECT_EQ(dropped(relay, DataplaneDrop::tx_full), 0u) << "replicas dropped for a full ring";
    ASSERT_EQ(seen.size(), size_t{gateways * packets}) << "every gateway gets every packet";
    // In order: packet by packet, and each packet's fan-out in the set's order.
    std::map<int, int> next_packet;  // gateway → the packet it should get next
    for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].packet, static_cast<int>(i / gateways)) << "replica " << i;
        EXPECT_EQ(next_packet[seen[i].gateway]++, seen[i].packet) << "gateway " << seen[i].gateway;
    }
}

TEST(Egress, PausedWalkKeepsItsSetThroughChangesAndRemoval) {
    TestRelay relay("egress_churn");
    relay.nic().limit_tx(0, 64);
    SteppedWorker worker(relay);
    rte_rcu_qsbr* v = relay.dp().rcu().get();
    FlowPublisher& publisher = relay.dp().control().publisher();
    publisher.apply({FlowOp::create_flow, flow});
    add_gateways(relay, 0, 100);  // two chunks

    relay.nic().inject(multicast_frame(source, group, base_payload + 0));
    worker.poll();  // packet 0 stops after 32 replicas: the ring is full
    std::vector<Replica> seen = replicas_in(relay.nic().sent());
    ASSERT_LT(seen.size(), 100u) << "the walk should have paused";
    ASSERT_GT(seen.size(), 0u);

    // The set changes under the paused walk: gateways 0 and 99 leave, 100 joins.
    for (int g : {0, 99})
        publisher.apply(
            {FlowOp::remove_tunnel, flow, static_cast<EndpointId>(g), gw(g), relay.relay_v4()});
    add_gateways(relay, 100, 101);
    const uint64_t after_change = rte_rcu_qsbr_start(v);
    relay.dp().flows().reclaim();
    relay.nic().inject(multicast_frame(source, group, base_payload + 1));
    worker.poll();  // packet 1 waits behind packet 0, whose walk still holds the old set
    EXPECT_EQ(rte_rcu_qsbr_check(v, after_change, false), 0)
        << "a grace period ended while a paused walk held the replaced set";
    relay.dp().flows().reclaim();  // must not free it (ASan: heap-use-after-free below)

    for (int round = 0; round < 50; ++round) {
        for (const Replica& r : replicas_in(relay.nic().sent()))
            seen.push_back(r);
        worker.poll();
        relay.dp().flows().reclaim();
    }
    for (const Replica& r : replicas_in(relay.nic().sent()))
        seen.push_back(r);
    EXPECT_EQ(rte_rcu_qsbr_check(v, after_change, false), 1)
        << "the grace period never ended after the walk";
    std::multiset<int> to0, to1;
    bool packet1_started = false;
    for (const Replica& r : seen) {
        (r.packet == 0 ? to0 : to1).insert(r.gateway);
        if (r.packet == 1) packet1_started = true;
        if (r.packet == 0) {
            EXPECT_FALSE(packet1_started) << "packet 1 overtook packet 0";
        }
    }
    // Packet 0: the set it was looked up with, whole and once (0 and 99 included, 100 not).
    std::multiset<int> old_set, new_set;
    for (int g = 0; g < 100; ++g)
        old_set.insert(g);
    for (int g = 1; g <= 100; ++g)
        if (g != 99) new_set.insert(g);
    EXPECT_EQ(to0, old_set);
    EXPECT_EQ(to1, new_set);

    // After the grace period the removed gateways get nothing.
    relay.nic().inject(multicast_frame(source, group, base_payload + 2));
    size_t to_removed = 0, total = 0;
    for (int round = 0; round < 10; ++round) {
        for (const Replica& r : replicas_in(relay.nic().sent())) {
            if (r.packet != 2) continue;  // the last of packet 1 may still be in the TX buffer
            ++total;
            if (r.gateway == 0 || r.gateway == 99) ++to_removed;
        }
        worker.poll();
    }
    EXPECT_EQ(total, 99u) << "packet 2 goes to the new set";
    EXPECT_EQ(to_removed, 0u);
    EXPECT_EQ(dropped(relay, DataplaneDrop::tx_full), 0u);
}

TEST(Egress, FullBacklogRefusesWholePacketsAndStillAnswersRequests) {
    DataplaneConfig config;
    config.egress_buffer_packets = 64;  // the smallest backlog: 64 packets wait, then refusal
    TestRelay relay("egress_backlog", 1, TestRelay::default_engine(), false, config);
    relay.nic().limit_tx(0, 64);
    SteppedWorker worker(relay);
    relay.dp().control().publisher().apply({FlowOp::create_flow, flow});
    constexpr int gateways = 50, packets = 160;
    add_gateways(relay, 0, gateways);

    // A burst far above what the link takes meanwhile (nothing drains during intake), with a
    // gateway's Request in the middle of it.
    uint8_t req[8];
    build_request(req, {.nonce = 77, .flags = 0});
    std::vector<Frame> early;
    for (int k = 0; k < packets; ++k) {
        relay.nic().inject(multicast_frame(source, group, base_payload + k));
        if (k == 120)
            relay.nic().inject(
                udp_frame(relay.relay_mac(), router_mac, gw(200), relay.relay_v4(), ByteView(req)));
        if (k % 32 == 31) worker.poll();
    }
    for (int round = 0; round < 3; ++round)
        worker.poll();
    EXPECT_GT(dropped(relay, DataplaneDrop::egress_buffer_full), 0u);
    EXPECT_EQ(relay.dp().worker(0).counters().egress_backlog.load(), 64u);

    std::vector<Frame> frames;
    for (int round = 0; round < 400; ++round) {
        for (Frame& f : relay.nic().sent())
            frames.push_back(std::move(f));
        worker.poll();
    }
    for (Frame& f : relay.nic().sent())
        frames.push_back(std::move(f));
    bool answered = false;
    for (const Frame& f : frames) {
        const Received r = parse_frame(f);
        MembershipQuery q;
        if (r.ok && r.udp.dst == gw(200) &&
            parse_membership_query(r.udp.payload, q) == ParseError::ok)
            answered = true;
    }
    EXPECT_TRUE(answered) << "the Request went unanswered while data intake was refused";
    // Whole packets: every gateway got the same packets, and every packet all gateways or none.
    std::map<int, std::set<int>> packets_of;  // gateway → packets
    for (const Replica& r : replicas_in(frames))
        EXPECT_TRUE(packets_of[r.gateway].insert(r.packet).second) << "duplicate";
    ASSERT_EQ(packets_of.size(), size_t{gateways});
    for (const auto& [g, got] : packets_of)
        EXPECT_EQ(got, packets_of.begin()->second) << "gateway " << g << " lost other packets";
    const uint64_t refused = dropped(relay, DataplaneDrop::egress_buffer_full);
    EXPECT_EQ(packets_of.begin()->second.size() + refused, size_t{packets});
    EXPECT_EQ(dropped(relay, DataplaneDrop::tx_full), 0u);
}

TEST(Egress, PoolsTooSmallForTheQueuesNameTheKeys) {
    DataplaneConfig config;
    config.workers = 2;
    config.packet_mbufs = 2047;
    try {
        size_pools(config, 1, 3);
        FAIL() << "a packet pool smaller than the RX rings was accepted";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("dataplane.packet_mbufs = 2047"), std::string::npos) << what;
        EXPECT_NE(what.find("ports.workers = 2"), std::string::npos) << what;
        EXPECT_NE(what.find("at least"), std::string::npos) << what;
    }
    config.packet_mbufs = 0;
    config.header_mbufs = 1023;
    try {
        size_pools(config, 1, 3);
        FAIL() << "a header pool smaller than the TX rings was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("dataplane.header_mbufs = 1023"), std::string::npos)
            << e.what();
    }
    // Left out, both are sized from the queues, and the backlog gets its default.
    config.header_mbufs = 0;
    const PoolSizes p = size_pools(config, 1, 3);
    EXPECT_GE(p.packet_mbufs, 2u * 1024 + 2 * 4096);
    EXPECT_GE(p.header_mbufs, 2u * 1024);
    EXPECT_EQ(p.backlog_packets, 4096u);
}
