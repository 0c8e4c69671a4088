// Replication throughput of the real Worker (classifier, flow table, Replicator, TX queue) on
// one core, side by side with a no-op io-forward loop over the same ring-backed port in the same
// run. Both loops pay the same harness cost per input packet (an mbuf filled from a template,
// enqueued on the port's RX ring; whatever the port sent is dequeued and freed), so the ratio
// compares the relay's work per packet with the least work a forwarder can do.
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "bench_port.hpp"
#include "bench_result.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/dataplane.hpp"

namespace amt::bench {

namespace {

constexpr unsigned burst = 32;

std::vector<uint8_t> multicast_template(Family outer_inner, size_t payload) {
    const bool v4 = outer_inner == Family::ipv4;
    const IpAddress s = *IpAddress::parse(v4 ? "198.51.100.7" : "2001:db8:5::7");
    const IpAddress g = *IpAddress::parse(v4 ? "232.1.1.1" : "ff3e::8000:1");
    std::vector<uint8_t> frame(ethernet_header_size + ip_udp_header_size(outer_inner) + payload);
    build_ethernet(frame, {0x01, 0, 0x5e, 0, 0, 1}, {2, 0, 0, 0, 0, 1},
                   v4 ? ethertype_ipv4 : ethertype_ipv6);
    std::vector<uint8_t> data(payload, 0x47);
    build_udp_datagram(MutByteView(frame).subspan(ethernet_header_size), {s, 5000}, {g, 5000}, data,
                       {.ttl = 64, .dont_fragment = false});
    return frame;
}

// Fills a burst of input mbufs from the template and queues them on the port's RX ring.
void feed(rte_mempool* pool, rte_ring* rx, const std::vector<uint8_t>& frame) {
    rte_mbuf* m[burst];
    if (rte_pktmbuf_alloc_bulk(pool, m, burst) != 0) return;
    for (rte_mbuf* x : m) {
        std::memcpy(rte_pktmbuf_mtod(x, void*), frame.data(), frame.size());
        x->data_len = x->pkt_len = static_cast<uint32_t>(frame.size());
    }
    rte_ring_enqueue_bulk(rx, reinterpret_cast<void**>(m), burst, nullptr);
}

// Frees what the port sent; returns how many packets that was.
size_t drain(rte_ring* tx) {
    void* m[256];
    size_t total = 0;
    unsigned n;
    while ((n = rte_ring_dequeue_burst(tx, m, 256, nullptr)) > 0) {
        rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(m), n);
        total += n;
    }
    return total;
}

}  // namespace

void bench_replication(double seconds, const std::vector<size_t>& fanouts,
                       const std::vector<size_t>& payloads,
                       const std::vector<std::string>& families, std::vector<Result>& out,
                       bool count_flows) {
    static int instance = 0;
    BenchPort port = make_bench_port("bench" + std::to_string(instance++));
    rte_mempool* input =
        rte_pktmbuf_pool_create("bench_input", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    DataplaneConfig config;
    config.port = port.name;
    // The stream's sources (S = 198.51.100.x / 2001:db8:5::x): on one port, native multicast is
    // taken only from upstream.source_prefixes (issue 18, item 1).
    config.upstream_source_prefixes = {*IpPrefix::parse("198.51.100.0/24"),
                                       *IpPrefix::parse("2001:db8:5::/48")};
    config.packet_mbufs = 65535;
    config.header_mbufs = 65535;
    config.flow_table_size = 1024;
    config.count_flows = count_flows;
    config.next_hop_v4_mac = MacAddress{2, 0, 0, 0, 0, 2};
    config.next_hop_v6_mac = MacAddress{2, 0, 0, 0, 0, 2};
    config.engine.relay_addresses = {*IpAddress::parse("192.0.2.1"),
                                     *IpAddress::parse("2001:db8::1")};

    for (const std::string& combination : families) {
        // "4in6": IPv4 multicast to gateways reached over IPv6 (the outer family is the gateway's).
        const Family family = combination[0] == '4' ? Family::ipv4 : Family::ipv6;
        const Family outer = combination[3] == '4' ? Family::ipv4 : Family::ipv6;
        const std::string fam = std::string(family == Family::ipv4 ? "IPv4" : "IPv6") + "-in-" +
                                (outer == Family::ipv4 ? "IPv4" : "IPv6");
        for (size_t payload : payloads) {
            const std::vector<uint8_t> frame = multicast_template(family, payload);
            // Baseline: rx_burst → tx_burst on the same port, nothing else. Measured before
            // and after the relay's figures; the higher (less disturbed) of the two is the
            // reference, so that a neighbour's burst of load does not inflate every ratio.
            auto io_forward = [&] {
                std::optional<Port> started;
                started.emplace(port.id, PortSetup{.rx_queues = 1, .tx_queues = 2}, input);
                const double r = rate(seconds, 1, [&] {
                    feed(input, port.rx, frame);
                    rte_mbuf* m[burst];
                    const uint16_t n = rte_eth_rx_burst(port.id, 0, m, burst);
                    const uint16_t sent = rte_eth_tx_burst(port.id, 0, m, n);
                    if (sent < n) rte_pktmbuf_free_bulk(m + sent, n - sent);
                    return drain(port.tx);
                });
                started.reset();  // each Dataplane below configures the port itself
                return r;
            };
            const double io_before = io_forward();
            std::vector<std::pair<std::string, double>> figures;  // name, replicas per second
            std::vector<Result> per_replica;
            for (const char* mode : {"auto", "chain", "copy"}) {
                config.replication.copy_threshold = std::string(mode) == "auto"
                                                        ? ReplicationPolicy{}.copy_threshold
                                                    : std::string(mode) == "chain" ? 0
                                                                                   : 65535;
                for (size_t fanout : fanouts) {
                    if (std::string(mode) != "auto" && fanout != 16) continue;
                    Dataplane dp(config);
                    const IpAddress s = *IpAddress::parse(family == Family::ipv4 ? "198.51.100.7"
                                                                                 : "2001:db8:5::7");
                    const IpAddress g =
                        *IpAddress::parse(family == Family::ipv4 ? "232.1.1.1" : "ff3e::8000:1");
                    FlowPublisher& pub = dp.control().publisher();
                    pub.apply({FlowOp::create_flow, {s, g}});
                    const IpAddress relay =
                        config.engine.relay_addresses[outer == Family::ipv4 ? 0 : 1];
                    for (size_t i = 0; i < fanout; ++i) {
                        uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 9};
                        store_be32(v6 + 12, static_cast<uint32_t>(i));
                        const IpAddress ip =
                            outer == Family::ipv4
                                ? IpAddress::v4(0x0a000000u + static_cast<uint32_t>(i))
                                : IpAddress::v6_from_bytes(v6);
                        pub.apply({FlowOp::add_tunnel,
                                   {s, g},
                                   static_cast<EndpointId>(i),
                                   {ip, static_cast<uint16_t>(1024 + i)},
                                   {relay, amt_udp_port}});
                    }
                    pub.publish();
                    Worker& w = dp.worker(0);
                    const Time now = std::chrono::steady_clock::now().time_since_epoch();
                    const WorkerCounters& c = w.counters();
                    const uint64_t busy0 = c.busy_cycles.value(), sent0 = c.replicas.value();
                    const double replicas = rate(seconds, 1, [&] {
                        feed(input, port.rx, frame);
                        w.poll_once(now);
                        return drain(port.tx);
                    });
                    // The worker's own TSC count: its cost per replica without the harness's.
                    const double cycles = static_cast<double>(c.busy_cycles.value() - busy0) /
                                          static_cast<double>(c.replicas.value() - sent0);
                    const std::string name =
                        fam + ", " + std::to_string(payload) + " B, fan-out " +
                        std::to_string(fanout) +
                        (std::string(mode) == "auto" ? "" : std::string(", ") + mode);
                    figures.emplace_back(name, replicas);
                    per_replica.push_back(
                        {"replication", name + ": worker cycles per replica", cycles, "cycles"});
                }
            }
            const double io_fwd = std::max(io_before, io_forward());
            for (size_t i = 0; i < figures.size(); ++i) {
                const auto& [name, replicas] = figures[i];
                out.push_back({"replication", name + ": replicas", replicas / 1e6, "Mpps"});
                out.push_back(
                    {"replication", name + ": vs io-forward", replicas / io_fwd, "ratio"});
                out.push_back(per_replica[i]);
            }
            out.push_back({"replication",
                           fam + ", " + std::to_string(payload) + " B: io-forward baseline",
                           io_fwd / 1e6, "Mpps"});
        }
    }
    rte_mempool_free(input);
}

}  // namespace amt::bench
