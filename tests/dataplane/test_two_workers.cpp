// Two workers (issue 13, "several workers"): the product scales by RSS over N RX queues with one
// worker each, so everything a gateway or a source does may arrive on either worker's queue.
// Handshakes and streams on both queues, counters summed over the workers as the operator reads
// them (Prometheus and amtctl status), and membership churn through the control thread while both
// workers replicate. The shared reply budget over two workers is in test_reply_budget.cpp, and
// publisher-driven churn with two workers in test_rcu_stress.cpp.
#include <gtest/gtest.h>
#include <rte_rcu_qsbr.h>

#include <chrono>
#include <map>
#include <random>

#include "dataplane/daemon/relay_control.hpp"
#include "dataplane/daemon/relay_metrics.hpp"
#include "harness.hpp"
#include "scrape.hpp"

using namespace amt;
using namespace amt::test;
using json = nlohmann::ordered_json;

namespace {

const IpAddress S1 = *IpAddress::parse("198.51.100.7");
const IpAddress G1 = *IpAddress::parse("232.1.1.1");
const IpAddress G2 = *IpAddress::parse("232.1.1.2");

constexpr size_t request_type = static_cast<size_t>(MessageType::request);
constexpr size_t query_type = static_cast<size_t>(MessageType::membership_query);
constexpr size_t update_type = static_cast<size_t>(MessageType::membership_update);

// AMT Data frames among `frames`, by gateway, each with its inner packet's length.
std::map<UdpEndpoint, std::vector<size_t>> data_by_gateway(const std::vector<Frame>& frames) {
    std::map<UdpEndpoint, std::vector<size_t>> out;
    for (const Frame& f : frames) {
        const Received r = parse_frame(f);
        MulticastData d;
        if (r.ok && parse_multicast_data(r.udp.payload, d) == ParseError::ok)
            out[r.udp.dst].push_back(d.packet.size());
    }
    return out;
}

size_t data_count(const std::vector<Frame>& frames) {
    size_t n = 0;
    for (const auto& [gateway, packets] : data_by_gateway(frames))
        n += packets.size();
    return n;
}

Frame request_frame(const TestRelay& relay, const UdpEndpoint& from) {
    uint8_t req[8];
    build_request(req, {.nonce = 0x1234u + from.port, .flags = 0});
    return udp_frame(relay.relay_mac(), router_mac, from, relay.relay_v4(), ByteView(req));
}

}  // namespace

// Six gateways, their Requests and Updates spread over both queues in every combination: each
// worker answers the Requests that reach it, passes on the Updates that reach it, and the
// control thread builds one flow from all of them. The stream then arrives on both queues (RSS
// hashes a source's packets by ports too) and every gateway gets every packet exactly once,
// whichever worker replicated it, on that worker's own TX queue.
TEST(TwoWorkers, HandshakesAndStreamsArriveOnBothQueues) {
    TestRelay relay("two_hs", 2);
    constexpr int gateways = 6;
    for (int i = 0; i < gateways; ++i) {
        const HandshakeQueues queues{.request = static_cast<uint16_t>(i % 2),
                                     .update = static_cast<uint16_t>(i / 2 % 2)};
        ASSERT_TRUE(relay.join(gw(i), relay.relay_v4(),
                               TestRelay::report(RecordType::allow_new_sources, G1, {S1}), queues))
            << "gateway " << i;
    }
    Dataplane& dp = relay.dp();
    for (size_t w = 0; w < 2; ++w) {
        const ProtocolCounters& pc = dp.worker(w).responder().counters();
        EXPECT_EQ(pc.received[request_type].value(), 3u) << "worker " << w;
        EXPECT_EQ(pc.sent[query_type].value(), 3u) << "worker " << w;
    }
    // Updates: gateways 0, 1, 4, 5 on queue 0; 2, 3 on queue 1.
    EXPECT_EQ(dp.worker(0).counters().control_to_ring.value(), 4u);
    EXPECT_EQ(dp.worker(1).counters().control_to_ring.value(), 2u);
    EXPECT_EQ(dp.control().engine().counters().received[update_type].value(), 6u);
    EXPECT_EQ(dp.control().engine().memberships().endpoint_count(), 6u);
    EXPECT_EQ(dp.flows().size(), 1u);
    relay.nic().sent();

    // Packets told apart by their length: 5 on queue 0, 7 on queue 1, interleaved.
    std::vector<size_t> lengths[2];
    for (size_t k = 0; k < 12; ++k) {
        const uint16_t queue = k < 10 ? static_cast<uint16_t>(k % 2) : 1;
        const Frame native = multicast_frame(S1, G1, 200 + k);
        relay.nic().inject(native, queue);
        lengths[queue].push_back(native.size() - ethernet_header_size);
    }
    relay.step();
    std::vector<size_t> all = lengths[0];
    all.insert(all.end(), lengths[1].begin(), lengths[1].end());
    std::sort(all.begin(), all.end());
    for (uint16_t q = 0; q < 2; ++q) {
        const auto by_gateway = data_by_gateway(relay.nic().sent_on(q));
        ASSERT_EQ(by_gateway.size(), static_cast<size_t>(gateways)) << "TX queue " << q;
        for (const auto& [gateway, got] : by_gateway) {
            std::vector<size_t> sorted = got;
            std::sort(sorted.begin(), sorted.end());
            EXPECT_EQ(sorted, lengths[q]) << "worker " << q << "'s packets on its own TX queue";
        }
        EXPECT_EQ(dp.worker(q).counters().multicast_in.value(), lengths[q].size());
        EXPECT_EQ(dp.worker(q).counters().replicas.value(), lengths[q].size() * gateways);
    }
    EXPECT_TRUE(relay.nic().sent().empty()) << "nothing on the control thread's queue";
}

// What the operator reads is the sum of what each worker did: per-worker samples where the
// family has a worker label, totals equal to the sum of the workers' (and the control thread's)
// counters, and amtctl status agreeing with Prometheus. Every number is known from the input.
TEST(TwoWorkers, CountersAreSummedOverTheWorkers) {
    TestRelay relay("two_counters", 2);
    RelayMetrics metrics(relay.dp());
    RelayControl control(relay.dp(), {});
    Dataplane& dp = relay.dp();
    constexpr int gateways = 4;
    uint64_t rx[2] = {0, 0};  // frames injected per queue
    for (int i = 1; i <= gateways; ++i) {
        const auto q = static_cast<uint16_t>(i % 2);
        ASSERT_TRUE(relay.join(gw(i), relay.relay_v4(),
                               TestRelay::report(RecordType::allow_new_sources, G1, {S1}),
                               {.request = q, .update = q}));
        rx[q] += 2;
    }
    relay.nic().sent();
    const auto inject = [&](const Frame& f, uint16_t q, int times = 1) {
        for (int i = 0; i < times; ++i)
            relay.nic().inject(f, q);
        rx[q] += static_cast<uint64_t>(times);
    };
    // Replicated: 3 packets on queue 0, 4 on queue 1.
    inject(multicast_frame(S1, G1, 500), 0, 3);
    inject(multicast_frame(S1, G1, 500), 1, 4);
    // Dropped by the workers, under their reasons, on both queues.
    inject(multicast_frame(S1, G2, 100), 0, 2);  // no_flow
    inject(multicast_frame(S1, G2, 100), 1, 1);
    inject(multicast_frame(S1, G1, 100, 1), 0, 1);  // ttl_expired
    inject(multicast_frame(S1, G1, 100, 1), 1, 2);
    inject(multicast_frame(S1, *IpAddress::parse("224.0.0.5"), 100), 0);  // exception_unavailable
    inject(multicast_frame(S1, *IpAddress::parse("224.0.0.5"), 100), 1);
    Frame bad_checksum = request_frame(relay, gw(9));
    bad_checksum[ethernet_header_size + ipv4_header_size + 6] ^= 0xff;  // UDP checksum
    inject(bad_checksum, 0, 1);                                         // parse: bad_udp_checksum
    inject(bad_checksum, 1, 2);
    uint8_t adv[32];
    const size_t adv_size = build_advertisement(adv, {.nonce = 1, .relay = S1});
    const Frame advertisement =
        udp_frame(relay.relay_mac(), router_mac, gw(9), relay.relay_v4(), ByteView(adv, adv_size));
    inject(advertisement, 0);  // protocol: unexpected_message_type (worker's responder)
    inject(advertisement, 1);
    uint8_t update[256];
    const Frame report = TestRelay::report(RecordType::allow_new_sources, G1, {S1});
    const size_t update_size =
        build_membership_update(update, ResponseMac{1, 2, 3, 4, 5, 6}, 7, report);
    inject(udp_frame(relay.relay_mac(), router_mac, gw(8), relay.relay_v4(),
                     ByteView(update, update_size)),
           1);  // protocol: mac_mismatch (the control thread's engine)
    relay.step();
    dp.control().update_gauges();

    Scrape scrape(metrics);
    const auto sample = [&](const std::string& name, std::map<std::string, std::string> m = {}) {
        return static_cast<uint64_t>(scrape.sum(name, m));
    };
    const auto per_worker = [&](const std::string& name, int w) {
        return sample(name, {{"worker", std::to_string(w)}});
    };
    EXPECT_EQ(per_worker("amt_replicas_total", 0), 3u * gateways);
    EXPECT_EQ(per_worker("amt_replicas_total", 1), 4u * gateways);
    EXPECT_EQ(sample("amt_replicas_total"), 7u * gateways);
    EXPECT_EQ(per_worker("amt_multicast_packets_total", 0), 3u);
    EXPECT_EQ(per_worker("amt_multicast_packets_total", 1), 4u);
    EXPECT_EQ(per_worker("amt_worker_rx_packets_total", 0), rx[0]);
    EXPECT_EQ(per_worker("amt_worker_rx_packets_total", 1), rx[1]);
    EXPECT_GT(per_worker("amt_replica_bytes_total", 1), per_worker("amt_replica_bytes_total", 0));

    const auto dropped = [&](const char* reason) {
        return sample("amt_dropped_packets_total", {{"reason", reason}});
    };
    EXPECT_EQ(dropped("no_flow"), 3u);
    EXPECT_EQ(dropped("ttl_expired"), 3u);
    EXPECT_EQ(dropped("exception_unavailable"), 2u);
    EXPECT_EQ(dropped("bad_udp_checksum"), 3u);
    EXPECT_EQ(dropped("unexpected_message_type"), 2u);
    EXPECT_EQ(dropped("mac_mismatch"), 1u);
    constexpr uint64_t all_drops = 3 + 3 + 2 + 3 + 2 + 1;
    EXPECT_EQ(sample("amt_dropped_packets_total"), all_drops) << "nothing else dropped";
    const auto messages = [&](const char* type, const char* direction) {
        return sample("amt_messages_total", {{"type", type}, {"direction", direction}});
    };
    EXPECT_EQ(messages("request", "received"), static_cast<uint64_t>(gateways));
    EXPECT_EQ(messages("membership_query", "sent"), static_cast<uint64_t>(gateways));
    EXPECT_EQ(messages("membership_update", "received"), gateways + 1u);
    EXPECT_EQ(messages("relay_advertisement", "received"), 2u);
    EXPECT_EQ(sample("amt_control_ring_enqueued_total"), gateways + 1u);
    EXPECT_EQ(sample("amt_endpoints"), static_cast<uint64_t>(gateways));
    EXPECT_EQ(sample("amt_mac_failures_total"), 1u);

    const json status = control.handle({{"command", "status"}}, relay.now());
    EXPECT_EQ(status["workers"], 2);
    EXPECT_EQ(status["replicas"], 7u * gateways);
    EXPECT_EQ(status["multicast_packets"], 7u);
    EXPECT_EQ(status["dropped"], all_drops);
    EXPECT_EQ(status["endpoints"], gateways);
}

// Membership churn the way it happens in production, with both workers running on their own
// threads: gateways' Requests and Updates arrive on both queues, the workers answer the Requests
// and pass the Updates to the control ring, and this thread, as the control thread, runs the
// engine and publishes each change while the stream keeps arriving on both queues. After a
// gateway's leave is published and one RCU grace period has passed, neither worker may send it a
// replica (a worker still holding the old set would; under ASan so would a set freed too early). At
// the end, with the workers stopped, every member gets the stream from both workers and nobody else
// does, and the workers' replica counters add up to what left the relay.
TEST(TwoWorkers, ChurnThroughTheControlThreadWhileBothWorkersReplicate) {
    TestRelay relay("two_churn", 2);
    Dataplane& dp = relay.dp();
    ControlThread& control = dp.control();
    constexpr int churners = 12, steady = 4, gateways = churners + steady;
    constexpr int rounds = 200;
    const auto endpoint = [](int i) { return gw(i + 1); };
    std::map<UdpEndpoint, int> index;
    for (int i = 0; i < gateways; ++i)
        index[endpoint(i)] = i;
    std::vector<std::optional<MembershipQuery>> query(gateways);
    std::vector<bool> member(gateways, false), must_not_receive(gateways, false);
    uint64_t replicas_seen = 0;
    int violations = 0;
    // Reads what the workers sent: Queries for the handshakes, replicas checked and counted.
    const auto drain = [&] {
        for (const Frame& f : relay.nic().sent()) {
            const Received r = parse_frame(f);
            MessageType type;
            if (!r.ok || peek_message_type(r.udp.payload, type) != ParseError::ok) continue;
            const auto g = index.find(r.udp.dst);
            if (type == MessageType::membership_query && g != index.end()) {
                MembershipQuery q;
                if (parse_membership_query(r.udp.payload, q) != ParseError::ok) continue;
                q.encapsulated = {};
                query[g->second] = q;
            } else if (type == MessageType::multicast_data) {
                ++replicas_seen;
                if (g != index.end() && must_not_receive[g->second]) ++violations;
            }
        }
    };
    // The stream, alternating between the queues, kept flowing while the control thread works:
    // up to `backlog` packets the workers have not replicated yet.
    const Frame stream = multicast_frame(S1, G1, 1316);
    uint64_t injected = 0;
    bool streaming = false;
    const auto matched = [&] {
        return dp.worker(0).counters().multicast_in.value() +
               dp.worker(1).counters().multicast_in.value();
    };
    const auto feed = [&] {
        constexpr uint64_t backlog = 32;
        for (; streaming && injected < matched() + backlog; ++injected)
            relay.nic().inject(stream, static_cast<uint16_t>(injected % 2));
    };
    // Polls the control thread on the real clock, as ControlThread::run does (the workers answer
    // Requests on it too), until `done`; false after 30 s, which only a relay that stopped
    // working takes.
    const auto poll_until = [&](auto&& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!done()) {
            const auto now = std::chrono::steady_clock::now();
            if (now > deadline) return false;
            if (now.time_since_epoch() > relay.now())
                relay.advance(now.time_since_epoch() - relay.now());
            feed();
            control.poll_once(relay.now());
            drain();
        }
        return true;
    };
    uint64_t updates = 0;
    const auto change = [&](int g, bool join, uint16_t queue) {
        const RecordType type =
            join ? RecordType::allow_new_sources : RecordType::block_old_sources;
        relay.nic().inject(relay.update_frame(endpoint(g), relay.relay_v4(), *query[g],
                                              TestRelay::report(type, G1, {S1})),
                           queue);
        ++updates;
        return poll_until([&] {
            return control.engine().counters().received[update_type].value() == updates &&
                   !control.publisher().dirty();
        });
    };

    dp.start_workers();
    // Handshakes answered by the running workers, each gateway on its queue.
    for (int i = 0; i < gateways; ++i)
        relay.nic().inject(request_frame(relay, endpoint(i)), static_cast<uint16_t>(i % 2));
    ASSERT_TRUE(poll_until([&] {
        return std::all_of(query.begin(), query.end(), [](const auto& q) { return q.has_value(); });
    })) << "a Request was not answered";
    for (int i = churners; i < gateways; ++i) {
        ASSERT_TRUE(change(i, true, static_cast<uint16_t>(i % 2)));
        member[i] = true;
    }
    streaming = true;

    std::mt19937 rng(13);
    for (int round = 0; round < rounds; ++round) {
        const int g = static_cast<int>(rng() % churners);
        const bool join = !member[g];
        // Replicas may reach a joining gateway as soon as its Update is in.
        if (join) must_not_receive[g] = false;
        // The Update on either queue: RSS may put a gateway's Updates on another worker than
        // its Request (a NAT rebinding its port).
        ASSERT_TRUE(change(g, join, static_cast<uint16_t>(rng() % 2))) << "round " << round;
        member[g] = join;
        if (!join) {
            // Both workers have passed a quiescent state since the leave was published: what
            // they sent from the old set is in the TX rings now.
            rte_rcu_qsbr_synchronize(dp.rcu().get(), RTE_QSBR_THRID_INVALID);
            drain();
            must_not_receive[g] = true;
        }
    }
    streaming = false;
    EXPECT_TRUE(poll_until([&] { return matched() == injected; }))
        << "the steady members keep the flow: every packet matched it";
    dp.stop_workers();
    control.poll_once(relay.now());
    drain();
    EXPECT_EQ(violations, 0) << "replicas reached gateways after their leave's grace period";

    // Stepped now: one packet on each queue reaches every member twice and nobody else.
    relay.nic().inject(stream, 0);
    relay.nic().inject(stream, 1);
    relay.step();
    const std::vector<Frame> last = relay.nic().sent();
    const auto by_gateway = data_by_gateway(last);
    for (int i = 0; i < gateways; ++i) {
        const auto it = by_gateway.find(endpoint(i));
        EXPECT_EQ(it == by_gateway.end() ? 0u : it->second.size(), member[i] ? 2u : 0u)
            << "gateway " << i << (member[i] ? " (member)" : " (left)");
    }
    replicas_seen += data_count(last);

    uint64_t counted = 0;
    for (size_t w = 0; w < 2; ++w) {
        const WorkerCounters& c = dp.worker(w).counters();
        EXPECT_GT(c.replicas.value(), 0u) << "worker " << w << " replicated nothing";
        EXPECT_GT(c.control_to_ring.value(), 0u) << "worker " << w << " passed no Update";
        EXPECT_GT(dp.worker(w).responder().counters().sent[query_type].value(), 0u)
            << "worker " << w << " answered no Request";
        counted += c.replicas.value();
    }
    std::printf("rounds: %d, updates: %llu, packets: %llu, replicas checked: %llu\n", rounds,
                static_cast<unsigned long long>(updates), static_cast<unsigned long long>(injected),
                static_cast<unsigned long long>(replicas_seen));
    EXPECT_EQ(counted, replicas_seen) << "the workers' replica counters, summed, are what was sent";
    EXPECT_EQ(matched(), injected + 2);
    EXPECT_EQ(control.engine().counters().received[update_type].value(), updates);
}
