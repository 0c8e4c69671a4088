// RCU stress (run under ASan by scripts/test): one worker, then two (RSS: the stream arrives on
// both RX queues, each worker replicating its share from the same published sets), replicate a
// continuous stream while this thread, acting as the control thread, adds and removes tunnels of
// the same flow and publishes a new GatewaySet after every change. Old sets are freed after each
// grace period, so a worker that used one too long is a heap-use-after-free under ASan. After a
// removal, one grace period and a drain of the TX ring, no replica may reach the removed gateway.
// With steady members the flow spans several chunks, which successive sets share: a chunk freed
// while a set still held it, or written after it was published, shows here too (issue 17).
// BigFlowDeletedAndRecreated adds the path where a flow goes while its chunks are published:
// every chunk then belongs to the last set, and must outlive the workers' use of it.
// With a small TX ring (tx_descriptors) fan-outs pause all the time and resume at later polls,
// holding their sets across quiescent reports (issue 13): a grace period must then wait for the
// paused walk, and this thread, which is also the link, drains the ring while it waits. Replicas
// a walk made before the grace period ended may still sit in the worker's TX buffer, like frames
// in a NIC ring: the wait is repeated until they are through.
#include <gtest/gtest.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <map>
#include <random>

#include "harness.hpp"

using namespace amt;
using namespace amt::test;

struct StressCase {
    uint16_t workers;
    int steady;  // members that stay: 0 keeps the flow in one flat set, 120 puts the churn across a
                 // chunk boundary
    unsigned tx_descriptors = 0;  // 0: the harness's large TX ring (walks never pause)
};

class RcuStress : public ::testing::TestWithParam<StressCase> {};

// The replicas the relay sent so far, and how many went to a gateway that must not get any.
struct ReplicaCheck {
    uint64_t seen = 0;
    int violations = 0;
    template <typename MustNotReceive>
    void drain(RingPort& nic, MustNotReceive&& must_not_receive) {
        for (const Frame& f : nic.sent()) {
            const Received r = parse_frame(f);
            if (!r.ok) continue;
            ++seen;
            if (must_not_receive(r.udp.dst.port)) ++violations;
        }
    }
};

TEST_P(RcuStress, ChurnWhileReplicating) {
    const uint16_t workers = GetParam().workers;
    const int steady = GetParam().steady;
    const unsigned descriptors = GetParam().tx_descriptors;
    TestRelay relay("stress" + std::to_string(workers) + "_" + std::to_string(steady) + "_" +
                        std::to_string(descriptors),
                    workers);
    Dataplane& dp = relay.dp();
    for (uint16_t q = 0; q < workers && descriptors > 0; ++q)
        relay.nic().limit_tx(q, descriptors);
    const IpAddress source = *IpAddress::parse("198.51.100.7");
    const IpAddress group = *IpAddress::parse("232.1.1.1");
    const FlowKey key{source, group};
    FlowPublisher& publisher = dp.control().publisher();
    publisher.apply({FlowOp::create_flow, key});
    publisher.publish();

    dp.start_workers();
    constexpr int gateways = 16;
    // Two workers share two cores with this thread; a big flow costs more per packet.
    const int rounds = workers == 1 && steady == 0 ? 3000 : 1000;
    std::mt19937 rng(7);
    std::vector<bool> member(gateways, false);
    std::vector<bool> must_not_receive(gateways, false);  // removed, grace passed, ring drained
    std::map<uint16_t, int> port_to_gateway;
    auto endpoint = [](int i) {
        return UdpEndpoint{IpAddress::v4(0xcb007100u + static_cast<uint32_t>(i)),
                           static_cast<uint16_t>(40000 + i)};
    };
    for (int i = 0; i < gateways; ++i)
        port_to_gateway[endpoint(i).port] = i;
    for (int i = 0; i < steady; ++i) {
        const UdpEndpoint gw{IpAddress::v4(0xcb007200u + static_cast<uint32_t>(i)),
                             static_cast<uint16_t>(50000 + i)};
        publisher.apply(
            {FlowOp::add_tunnel, key, static_cast<EndpointId>(gateways + i), gw, relay.relay_v4()});
    }
    publisher.publish();
    const GatewaySet* loaded = dp.flows().find(make_flow_hash_key(key));
    ASSERT_NE(loaded, nullptr);
    EXPECT_EQ(loaded->shares_chunks(), steady > 0) << "a big flow's sets share their chunks";
    const Frame stream = multicast_frame(source, group, 1316);
    ReplicaCheck check;
    auto drain = [&] {
        check.drain(relay.nic(), [&](uint16_t port) {
            const auto g = port_to_gateway.find(port);
            return g != port_to_gateway.end() && must_not_receive[g->second];
        });
    };

    // A grace period, draining the ring meanwhile (a paused walk needs the link to finish).
    rte_rcu_qsbr* v = dp.rcu().get();
    auto grace_period = [&] {
        if (descriptors == 0) return rte_rcu_qsbr_synchronize(v, RTE_QSBR_THRID_INVALID);
        for (int i = 0; i < 3; ++i) {  // the walk, then its replicas out of the TX buffer
            const uint64_t token = rte_rcu_qsbr_start(v);
            while (rte_rcu_qsbr_check(v, token, false) == 0)
                drain();
        }
    };
    for (int round = 0; round < rounds; ++round) {
        const int g = static_cast<int>(rng() % gateways);
        const UdpEndpoint gw = endpoint(g);
        const bool add = !member[g];
        publisher.apply({add ? FlowOp::add_tunnel : FlowOp::remove_tunnel, key,
                         static_cast<EndpointId>(g), gw, relay.relay_v4()});
        publisher.publish();
        member[g] = add;
        if (add) must_not_receive[g] = false;
        for (int i = 0; i < 4; ++i)
            relay.nic().inject(stream, static_cast<uint16_t>(i % workers));
        dp.flows().reclaim();
        if (!add) {
            // Wait until the worker has left every loop that could hold the old set, then
            // drain what it sent before that.
            grace_period();
            drain();
            must_not_receive[g] = true;
        }
        if (round % 64 == 0 || steady > 0 || descriptors > 0) drain();  // the TX ring holds 4,096
    }
    // Let every paused walk finish before the workers stop (a stopping worker drops them).
    for (size_t w = 0; w < dp.worker_count(); ++w) {
        while (dp.worker(w).backlog_packets() > 0)
            drain();
    }
    grace_period();
    dp.stop_workers();
    dp.flows().reclaim();
    drain();
    uint64_t counted = 0;
    for (size_t w = 0; w < dp.worker_count(); ++w) {
        const uint64_t n = dp.worker(w).counters().replicas.value();
        EXPECT_GT(n, 0u) << "worker " << w << " replicated nothing";
        counted += n;
    }
    uint64_t tx_full = 0;
    for (size_t w = 0; w < dp.worker_count(); ++w)
        tx_full +=
            dp.worker(w).counters().dropped[static_cast<size_t>(DataplaneDrop::tx_full)].value();
    // Not asserted: a walk is given up (tx_full) when this thread, the link, could not drain
    // for egress.stall_us, which a loaded machine decides.
    std::printf("workers: %u, rounds: %d, replicas checked: %llu, given up (tx_full): %llu\n",
                workers, rounds, static_cast<unsigned long long>(check.seen),
                static_cast<unsigned long long>(tx_full));
    EXPECT_EQ(check.violations, 0)
        << "replicas reached gateways after their removal's grace period";
    EXPECT_GT(check.seen, 0u);
    EXPECT_EQ(counted, check.seen) << "the workers' replica counters, summed, are what was sent";
}

INSTANTIATE_TEST_SUITE_P(Workers, RcuStress,
                         ::testing::Values(StressCase{1, 0}, StressCase{2, 0}, StressCase{1, 120},
                                           StressCase{2, 120}, StressCase{1, 0, 48},
                                           StressCase{1, 120, 48}),
                         [](const auto& info) {
                             return std::to_string(info.param.workers) + "_workers_" +
                                    std::to_string(info.param.steady) + "_steady" +
                                    (info.param.tx_descriptors > 0
                                         ? "_" + std::to_string(info.param.tx_descriptors) +
                                               "_descriptors"
                                         : "");
                         });

// A flow of several chunks loses members (copies of a chunk or two, the rest shared), is deleted
// outright (every chunk handed to its last published set) and is created again, over and over,
// while two workers replicate it. Under ASan a chunk freed before the grace period of the last
// set that holds it is a heap-use-after-free; after a removal's (or the deletion's) grace period
// and a drain, no replica may reach the gateways that went.
TEST(RcuStressChunks, BigFlowDeletedAndRecreated) {
    constexpr uint16_t workers = 2;
    TestRelay relay("stress_recreate", workers);
    Dataplane& dp = relay.dp();
    const IpAddress source = *IpAddress::parse("198.51.100.8");
    const IpAddress group = *IpAddress::parse("232.1.1.2");
    const FlowKey key{source, group};
    FlowPublisher& publisher = dp.control().publisher();
    constexpr int members = 3 * static_cast<int>(GatewayChunk::capacity_max) + 10;  // 4 chunks
    auto endpoint = [](int i) {
        return UdpEndpoint{IpAddress::v4(0xcb007300u + static_cast<uint32_t>(i)),
                           static_cast<uint16_t>(40000 + i)};
    };
    std::vector<bool> member(members, false), must_not_receive(members, false);
    auto add = [&](int i) {
        publisher.apply(
            {FlowOp::add_tunnel, key, static_cast<EndpointId>(i), endpoint(i), relay.relay_v4()});
        member[i] = true;
        must_not_receive[i] = false;
    };
    auto create = [&] {
        publisher.apply({FlowOp::create_flow, key});
        for (int i = 0; i < members; ++i)
            add(i);
        publisher.publish();
    };
    create();
    const GatewaySet* loaded = dp.flows().find(make_flow_hash_key(key));
    ASSERT_NE(loaded, nullptr);
    ASSERT_TRUE(loaded->shares_chunks());
    ASSERT_EQ(loaded->chunk_count(), 4u);

    const Frame stream = multicast_frame(source, group, 1316);
    ReplicaCheck check;
    auto drain = [&] {
        check.drain(relay.nic(), [&](uint16_t port) {
            const int g = port - 40000;
            return g >= 0 && g < members && must_not_receive[g];
        });
    };
    // Workers done with every set published so far; then what they sent before is drained.
    auto grace_and_drain = [&] {
        rte_rcu_qsbr_synchronize(dp.rcu().get(), RTE_QSBR_THRID_INVALID);
        dp.flows().reclaim();
        drain();
    };
    auto stream_some = [&](int packets = 4) {
        for (int i = 0; i < packets; ++i)
            relay.nic().inject(stream, static_cast<uint16_t>(i % workers));
    };

    dp.start_workers();
    std::mt19937 rng(11);
    int deletions = 0;
    for (int round = 0; round < 300; ++round) {
        if (round % 10 == 9) {
            // The workers are still walking the set (16 × 202 replicas) when it goes: a chunk
            // freed with the deletion instead of with the set is read after its free.
            stream_some(16);
            publisher.apply({FlowOp::delete_flow, key});
            publisher.publish();
            stream_some();
            grace_and_drain();
            std::fill(member.begin(), member.end(), false);
            std::fill(must_not_receive.begin(), must_not_receive.end(), true);
            stream_some();  // no flow: no replica
            grace_and_drain();
            create();
            ++deletions;
            continue;
        }
        // Two leaves at random places (each copies its chunk and the last one) and a join back.
        std::vector<int> left;
        for (int k = 0; k < 2; ++k) {
            const int g = static_cast<int>(rng() % members);
            if (!member[g]) continue;
            publisher.apply({FlowOp::remove_tunnel, key, static_cast<EndpointId>(g), endpoint(g),
                             relay.relay_v4()});
            member[g] = false;
            left.push_back(g);
        }
        const int back = static_cast<int>(rng() % members);
        if (!member[back]) add(back);
        publisher.publish();
        stream_some();
        grace_and_drain();
        for (int g : left)
            must_not_receive[g] = !member[g];
    }
    dp.stop_workers();
    dp.flows().reclaim();
    drain();
    std::printf("deletions: %d, replicas checked: %llu\n", deletions,
                static_cast<unsigned long long>(check.seen));
    EXPECT_EQ(deletions, 30);
    EXPECT_EQ(check.violations, 0)
        << "replicas reached gateways after their removal's grace period";
    EXPECT_GT(check.seen, 0u);
}
