// The flood section (issue 18, item 4): legitimate gateways during a spoofed Request flood,
// through the relay's real dataplane (Dataplane with its workers and control thread) on a
// ring-backed port in this process.
//
// Three threads besides the workers:
//  - the flood: Requests from `spoofed_addresses` source addresses (100.64/10), paced at `pps`,
//    spread over the port's RX queues (as RSS would);
//  - this thread: the control thread (ControlThread::poll_once) and the network behind the
//    port: it dequeues what the relay sent, and plays the legitimate gateways:
//      established: joined before the flood; each re-Requests every `refresh_ms` (a gateway
//                   refreshing its MAC/nonce), counted answered or not;
//      newcomers:   start joining when the flood starts: Request every `retry_ms` until a Query
//                   comes, then the Update; joined when the engine holds their endpoint.
// Each scenario runs the same flood against other limits: the defaults, the reserve off, and no
// global budget (what the relay did before issue 18, item 4).
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_result.hpp"
#include "common/igmp_mld.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/dataplane.hpp"

namespace amt::bench {

namespace {

using Clock = std::chrono::steady_clock;
Time now_ns() {
    return Clock::now().time_since_epoch();
}

constexpr uint32_t spoofed_base = 0x64400000;  // 100.64.0.0/10
constexpr uint32_t legit_base = 0xc6336400;    // 198.51.100.0/24 (and on, one per gateway)
const MacAddress router{2, 0, 0, 0, 0, 1};

// A ring-backed port with one RX ring per worker and one TX ring for every TX queue.
struct FloodPort {
    std::vector<rte_ring*> rx;
    rte_ring* tx = nullptr;
    std::string name;
};

FloodPort make_port(const std::string& name, uint16_t queues) {
    FloodPort p;
    for (uint16_t q = 0; q < queues; ++q) {
        p.rx.push_back(
            rte_ring_create((name + "_rx" + std::to_string(q)).c_str(), 16384, 0, RING_F_SC_DEQ));
        if (p.rx.back() == nullptr) throw std::runtime_error("flood: rx ring");
    }
    p.tx = rte_ring_create((name + "_tx").c_str(), 1u << 17, 0, RING_F_SC_DEQ);
    if (p.tx == nullptr) throw std::runtime_error("flood: tx ring");
    std::vector<rte_ring*> tx(queues + 1u, p.tx);  // the workers' queues + the control thread's
    const int id = rte_eth_from_rings(name.c_str(), p.rx.data(), queues, tx.data(),
                                      static_cast<unsigned>(tx.size()), 0);
    if (id < 0) throw std::runtime_error("flood: port");
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev);
    p.name = dev;
    return p;
}

std::vector<uint8_t> amt_frame(const MacAddress& relay_mac, const UdpEndpoint& from,
                               const UdpEndpoint& to, ByteView payload) {
    std::vector<uint8_t> f(ethernet_header_size + ip_udp_header_size(Family::ipv4) +
                           payload.size());
    build_ethernet(f, relay_mac, router, ethertype_ipv4);
    build_udp_datagram(MutByteView(f).subspan(ethernet_header_size), from, to, payload);
    return f;
}

bool inject(rte_mempool* pool, rte_ring* rx, const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) return false;
    auto* p = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    std::memcpy(p, frame.data(), frame.size());
    if (rte_ring_enqueue(rx, m) == 0) return true;
    rte_pktmbuf_free(m);
    return false;
}

struct Gateway {
    UdpEndpoint address;
    uint32_t nonce = 0;
    Time first_request{};
    Time next_request{};
    bool has_query = false;  // newcomers: Query received, Update sent
    Time joined_after{};
    uint64_t requests = 0;      // measured: into the relay's RX ring
    uint64_t answered = 0;      // ... and answered with a Query for that nonce
    uint64_t ring_lost = 0;     // measured: the RX ring was full (a NIC would count it missed)
    std::vector<bool> counted;  // by nonce: a measured Request, not yet answered
};

uint64_t responder_total(Dataplane& dp, bool sent, DropReason reason = {}) {
    uint64_t n = 0;
    for (size_t i = 0; i < dp.worker_count(); ++i) {
        const ProtocolCounters& c = dp.worker(i).responder().counters();
        n += sent ? c.sent[static_cast<size_t>(MessageType::membership_query)].value()
                  : c.dropped[static_cast<size_t>(reason)].value();
    }
    return n;
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Scenario {
    std::string label;
    RelayLimits limits;
};

void run_flood(const FloodOptions& o, const Scenario& s, std::vector<Result>& out) {
    static int instance = 0;
    const std::string id = std::to_string(instance++);
    FloodPort port = make_port("flood" + id, o.workers);
    rte_mempool* input = rte_pktmbuf_pool_create(("flood_in" + id).c_str(), 65535, 256, 0,
                                                 RTE_PKTMBUF_HEADROOM + 128, 0);
    if (input == nullptr) throw std::runtime_error("flood: input mempool");
    const UdpEndpoint relay{*IpAddress::parse("192.0.2.1"), amt_udp_port};

    DataplaneConfig config;
    config.port = port.name;
    config.workers = o.workers;
    config.packet_mbufs = 65535;  // replies waiting in the TX ring hold one each
    config.header_mbufs = 0;      // sized from the TX rings
    config.flow_table_size = 1024;
    config.next_hop_v4_mac = MacAddress{2, 0, 0, 0, 0, 2};
    config.engine.relay_addresses = {relay.ip};
    config.engine.limits = s.limits;
    auto dp = std::make_unique<Dataplane>(config);
    ControlThread& control = dp->control();
    const MacAddress relay_mac = dp->port().mac();
    auto name = [&](const std::string& what) { return s.label + ": " + what; };

    std::vector<Gateway> gateways(o.established + o.newcomers);
    for (size_t i = 0; i < gateways.size(); ++i)
        gateways[i].address = {IpAddress::v4(legit_base + static_cast<uint32_t>(i) + 1),
                               static_cast<uint16_t>(40000 + i)};
    bool measuring = false;  // after the flood has spent the burst: the budget's steady state
    auto request = [&](Gateway& g, Time now) {
        uint8_t req[8];
        build_request(req, {.nonce = ++g.nonce});
        const size_t q = static_cast<size_t>(&g - gateways.data()) % o.workers;
        const bool in =
            inject(input, port.rx[q], amt_frame(relay_mac, g.address, relay, ByteView(req)));
        if (measuring) {
            if (in) {
                ++g.requests;
                g.counted.resize(g.nonce + 1);
                g.counted[g.nonce] = true;
            } else {
                ++g.ring_lost;
            }
        }
        if (g.first_request == Time{}) g.first_request = now;
    };
    auto update = [&](Gateway& g, const MembershipQuery& q) {
        uint8_t report[64], msg[128];
        ReportBuilder b(report, Family::ipv4);
        const IpAddress source = IpAddress::v4(0xc6336301u), group = IpAddress::v4(0xe8010101u);
        b.add_record(RecordType::allow_new_sources, group, std::span(&source, 1));
        const size_t n = build_membership_update(msg, q.mac, q.nonce, ByteView(report, b.finish()));
        const size_t queue = static_cast<size_t>(&g - gateways.data()) % o.workers;
        inject(input, port.rx[queue], amt_frame(relay_mac, g.address, relay, ByteView(msg, n)));
    };
    // The network behind the port: every frame the relay sent; Queries to our gateways handled.
    auto drain = [&](Time now) {
        std::array<rte_mbuf*, 512> burst;
        const unsigned n = rte_ring_dequeue_burst(port.tx, reinterpret_cast<void**>(burst.data()),
                                                  burst.size(), nullptr);
        for (unsigned k = 0; k < n; ++k) {
            rte_mbuf* m = burst[k];
            const auto* f = rte_pktmbuf_mtod(m, const uint8_t*);
            UdpDatagram udp;
            MembershipQuery q;
            const ByteView ip(f + ethernet_header_size, m->data_len - ethernet_header_size);
            if (parse_udp_datagram(ip, udp, false) == ParseError::ok && udp.dst.ip.is_v4() &&
                (udp.dst.ip.v4_value() & 0xffffff00u) == legit_base &&
                parse_membership_query(udp.payload, q) == ParseError::ok) {
                const size_t i = (udp.dst.ip.v4_value() & 0xffu) - 1;
                if (i < gateways.size()) {
                    Gateway& g = gateways[i];
                    if (q.nonce < g.counted.size() && g.counted[q.nonce]) {  // late is fine
                        ++g.answered;
                        g.counted[q.nonce] = false;
                    }
                    if (!g.has_query) {
                        g.has_query = true;
                        g.joined_after = now - g.first_request;
                        update(g, q);
                    }
                }
            }
        }
        rte_pktmbuf_free_bulk(burst.data(), n);
    };
    auto step = [&] {
        const Time now = now_ns();
        control.poll_once(now);
        drain(now);
        return now;
    };

    dp->start_workers();
    // Before the flood: the established gateways join.
    for (size_t i = 0; i < o.established; ++i)
        request(gateways[i], now_ns());
    const Time setup_end = now_ns() + std::chrono::seconds(2);
    while (now_ns() < setup_end && control.engine().memberships().endpoint_count() < o.established)
        step();
    const size_t established_joined = control.engine().memberships().endpoint_count();

    // The flood: its own thread, paced; frames built once for all spoofed addresses.
    std::vector<std::vector<uint8_t>> spoofed(o.spoofed_addresses);
    for (size_t i = 0; i < spoofed.size(); ++i) {
        uint8_t req[8];
        build_request(req, {.nonce = static_cast<uint32_t>(i)});
        spoofed[i] = amt_frame(relay_mac,
                               {IpAddress::v4(spoofed_base + static_cast<uint32_t>(i)),
                                static_cast<uint16_t>(1024 + i % 60000)},
                               relay, ByteView(req));
    }
    std::atomic<bool> flooding{true};
    std::atomic<uint64_t> offered{0}, enqueued{0};
    auto refused_total = [&] {
        return responder_total(*dp, false, DropReason::reply_budget_exhausted) +
               responder_total(*dp, false, DropReason::reply_reserve_exhausted);
    };
    uint64_t sent0 = 0, refused0 = 0;
    const Time start = now_ns();
    std::thread flood([&] {
        size_t next = 0;
        uint64_t done = 0, ok = 0;
        std::array<rte_mbuf*, 64> mbufs;
        while (flooding.load(std::memory_order_relaxed)) {
            const double elapsed = std::chrono::duration<double>(now_ns() - start).count();
            const auto due = static_cast<uint64_t>(elapsed * o.pps);
            if (done >= due) {
                std::this_thread::yield();
                continue;
            }
            const auto n = static_cast<unsigned>(std::min<uint64_t>(due - done, mbufs.size()));
            const size_t q = (done / mbufs.size()) % o.workers;
            if (rte_pktmbuf_alloc_bulk(input, mbufs.data(), n) != 0) {
                done += n;  // offered, lost for want of buffers: like a full NIC ring
                continue;
            }
            for (unsigned k = 0; k < n; ++k, next = (next + 1) % spoofed.size()) {
                auto* p = rte_pktmbuf_append(mbufs[k], static_cast<uint16_t>(spoofed[next].size()));
                std::memcpy(p, spoofed[next].data(), spoofed[next].size());
            }
            const unsigned in = rte_ring_enqueue_burst(
                port.rx[q], reinterpret_cast<void**>(mbufs.data()), n, nullptr);
            rte_pktmbuf_free_bulk(mbufs.data() + in, n - in);
            done += n;
            ok += in;
        }
        offered = done;
        enqueued = ok;
    });

    const Time end =
        start + std::chrono::duration_cast<Time>(std::chrono::duration<double>(o.seconds));
    const Time refresh =
        std::chrono::duration_cast<Time>(std::chrono::duration<double, std::milli>(o.refresh_ms));
    const Time retry =
        std::chrono::duration_cast<Time>(std::chrono::duration<double, std::milli>(o.retry_ms));
    // The burst (reply_burst) lasts burst / (flood − rate): 0.4 s at the defaults and 300 kpps.
    // Measured from then on; the newcomers start then.
    const Time measure_from = start + std::min<Time>(std::chrono::seconds(1), (end - start) / 2);
    for (size_t i = 0; i < gateways.size(); ++i) {  // spread over the first interval
        const bool newcomer = i >= o.established;
        gateways[i].next_request =
            (newcomer ? measure_from : start) +
            refresh * static_cast<int64_t>(i) / static_cast<int64_t>(gateways.size());
    }
    Time now = start;
    while (now < end) {
        now = step();
        if (!measuring && now >= measure_from) {
            measuring = true;
            sent0 = responder_total(*dp, true);
            refused0 = refused_total();
        }
        for (size_t i = 0; i < gateways.size(); ++i) {
            Gateway& g = gateways[i];
            const bool newcomer = i >= o.established;
            if (newcomer && g.has_query) continue;
            if (now < g.next_request) continue;
            request(g, now);
            g.next_request = now + (newcomer ? retry : refresh);
        }
    }
    const uint64_t sent = responder_total(*dp, true) - sent0;
    const uint64_t refused = refused_total() - refused0;
    const double measured = std::chrono::duration<double>(now_ns() - measure_from).count();
    const double elapsed = std::chrono::duration<double>(now_ns() - start).count();
    flooding = false;
    flood.join();
    // Let the last Updates through, then count the newcomers the engine holds.
    const Time settle = now_ns() + std::chrono::milliseconds(200);
    while (now_ns() < settle)
        step();
    dp->stop_workers();
    while (rte_ring_count(port.tx) > 0)
        step();

    uint64_t est_requests = 0, est_answered = 0, est_lost = 0;
    for (size_t i = 0; i < o.established; ++i) {
        est_requests += gateways[i].requests;
        est_answered += gateways[i].answered;
        est_lost += gateways[i].ring_lost;
    }
    size_t newcomers_joined = 0;
    std::vector<double> join_ms;
    for (size_t i = o.established; i < gateways.size(); ++i) {
        if (control.engine().memberships().find(gateways[i].address) == MembershipDb::no_endpoint)
            continue;
        ++newcomers_joined;
        join_ms.push_back(
            std::chrono::duration<double, std::milli>(gateways[i].joined_after).count());
    }
    auto figure = [&](const std::string& what, double value, const char* unit) {
        out.push_back({"flood", name(what), value, unit});
    };
    auto share = [](uint64_t part, uint64_t whole) {
        return whole != 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : NAN;
    };
    figure("flood offered", static_cast<double>(offered.load()) / elapsed, "pps");
    figure("flood into the relay (RX rings not full)",
           static_cast<double>(enqueued.load()) / elapsed, "pps");
    // From the end of the burst on: the budget's steady state.
    figure("Queries sent after the burst", static_cast<double>(sent) / measured, "/s");
    figure("replies refused after the burst", static_cast<double>(refused) / measured, "/s");
    figure("established gateways joined before the flood", static_cast<double>(established_joined),
           "count");
    figure("established gateways' Requests answered", share(est_answered, est_requests), "%");
    figure("established gateways' Requests lost in full RX rings",
           share(est_lost, est_lost + est_requests), "%");
    figure("newcomers joined (of " + std::to_string(o.newcomers) + ")",
           static_cast<double>(newcomers_joined), "count");
    figure("newcomer join time p50", quantile(join_ms, 0.5), "ms");
    figure("newcomer join time p99", quantile(join_ms, 0.99), "ms");
    dp.reset();
    for (rte_ring* r : port.rx) {  // flood frames the workers had not polled when they stopped
        void* m;
        while (rte_ring_dequeue(r, &m) == 0)
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    rte_mempool_free(input);
}

}  // namespace

void bench_flood(const FloodOptions& o, std::vector<Result>& out) {
    std::vector<Scenario> scenarios;
    const RelayLimits defaults;
    scenarios.push_back(
        {"budget " + std::to_string(static_cast<long>(defaults.replies_per_second)) +
             "/s, reserve " + std::to_string(static_cast<long>(defaults.reply_reserve_percent)) +
             "%",
         defaults});
    RelayLimits no_reserve = defaults;
    no_reserve.reply_reserve_percent = 0;
    scenarios.push_back({"budget, no reserve", no_reserve});
    RelayLimits none = defaults;
    none.replies_per_second = 1e9;
    none.reply_burst = 1e9;
    scenarios.push_back({"no global budget (before)", none});
    for (const Scenario& s : scenarios)
        run_flood(o, s, out);
}

}  // namespace amt::bench
