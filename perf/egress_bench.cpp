// The egress section (issue 13): the real Worker (classifier, flow table, Replicator, TX queue)
// on a NIC-like port, fed video-like bursts, at 10 / 50 / 90 / 120 % of the link on average.
//
// The port. The worker's TX queue is a bounded ring of `tx_descriptors` descriptors, as on a
// real NIC: a TX callback on the worker's queue accepts a burst only as far as free descriptors
// go, counting each mbuf segment (a chained replica, header + shared payload, takes 2). The link
// drains the ring at `link_gbps`, each frame taking (octets + 24: preamble, FCS, gap) × 8 / rate;
// a transmitted frame frees its descriptors and its mbufs (as a PMD's TX clean-up does) and is
// counted per tunnel. The control thread's TX queue is a second ring on the same link.
//
// Time. A 25 Gb/s link is 2.3 M frames of 1,364 octets per second; on a shared 2-vCPU machine a
// drain thread pacing that in real time would measure the scheduler, not the relay. So time is
// virtual and the link is simulated against it, in the same thread as the worker (one CPU):
//   - each worker poll_once() runs for real and virtual time advances by its measured duration
//     (the thread's CPU time, so that a preemption on the shared machine is not counted): a
//     slow worker lets the link drain further and input pile up, as it would in real time;
//     poll_once() is given the virtual time (its stall timer for a TX queue that stopped);
//   - when a poll does nothing (no input, or the TX ring full and the worker waiting), time
//     jumps to the next event: an input arrival, or the link freeing 32 descriptors (a NIC's
//     TX free threshold). Idle polling is skipped, not charged.
// The link and the input generator cost no virtual time (they are the NIC and the network).
// `worker busy` is the share of virtual time spent in polls that did something: above 1.0
// would mean the worker could not keep up in real time.
//
// Input. `channels` channels, each with its own `fanout` gateways, each sending bursts of
// `burst` back-to-back packets (at the link's rate) every period P, the channels' bursts evenly
// staggered (channel c starts at c·P/C); P is set so that the average egress is `load` % of the
// link. During each case gateways handshake: a Request every 1/request_rate seconds from a new
// address; each Query on the wire is answered with an Update (a join), which the control thread
// (stepped every virtual millisecond, outside the worker's time) receives.
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_result.hpp"
#include "common/checksum.hpp"
#include "common/igmp_mld.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/dataplane.hpp"

namespace amt::bench {

namespace {

constexpr uint32_t gateway_base = 0x0a000000;    // 10.0.0.0: stream gateway k is 10.0.0.0 + k
constexpr uint32_t handshake_base = 0xc6120000;  // 198.18.0.0/15: the handshaking gateways
constexpr double wire_overhead = 24;             // preamble 8, FCS 4, inter-frame gap 12
const MacAddress router{2, 0, 0, 0, 0, 1};
const UdpEndpoint relay{IpAddress::v4(0xc0000201), amt_udp_port};  // 192.0.2.1

double thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// The NIC: descriptors of the worker's TX queue, and the link that drains both TX queues.
class VirtualNic {
  public:
    VirtualNic(const std::string& name, const EgressOptions& o) : descriptors_(o.tx_descriptors) {
        rx_ = rte_ring_create((name + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        for (int q = 0; q < 2; ++q)
            tx_[q] = rte_ring_create((name + "_tx" + std::to_string(q)).c_str(), 65536, 0,
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (rx_ == nullptr || tx_[0] == nullptr || tx_[1] == nullptr)
            throw std::runtime_error("egress: rings");
        const int id = rte_eth_from_rings(name.c_str(), &rx_, 1, tx_, 2, 0);
        if (id < 0) throw std::runtime_error("egress: port");
        id_ = static_cast<uint16_t>(id);
        char dev[RTE_ETH_NAME_MAX_LEN];
        rte_eth_dev_get_name_by_port(id_, dev);
        name_ = dev;
        ns_per_octet_ = 8.0 / o.link_gbps;
    }
    ~VirtualNic() {
        if (callback_ != nullptr) rte_eth_remove_tx_callback(id_, 0, callback_);
        for (rte_ring* r : {rx_, tx_[0], tx_[1]}) {
            void* m;
            while (rte_ring_dequeue(r, &m) == 0)
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
        if (on_wire_ != nullptr) rte_pktmbuf_free(on_wire_);
        // The rings stay: the closed ethdev may still point at them until the process ends.
    }
    // After the relay configured the port: from now on the worker's queue has descriptors.
    void attach() {
        callback_ = rte_eth_add_tx_callback(id_, 0, &VirtualNic::take, this);
        if (callback_ == nullptr) throw std::runtime_error("egress: tx callback");
    }
    const std::string& name() const { return name_; }
    rte_ring* rx() const { return rx_; }
    uint32_t descriptors_in_use() const { return in_use_; }
    bool idle() const {
        return on_wire_ == nullptr && rte_ring_empty(tx_[0]) && rte_ring_empty(tx_[1]);
    }
    double ns_per_octet() const { return ns_per_octet_; }

    // Transmits every frame that is finished by time t; `sent(m, start, finish)` sees each.
    template <typename Sent>
    void drain_to(double t, Sent&& sent) {
        for (;;) {
            if (on_wire_ == nullptr) {
                void* m;
                // The control thread's queue first: it is rare and small.
                if (rte_ring_dequeue(tx_[1], &m) == 0) {
                    on_wire_segments_ = 0;
                } else if (rte_ring_dequeue(tx_[0], &m) == 0) {
                    on_wire_segments_ = static_cast<rte_mbuf*>(m)->nb_segs;
                } else {
                    idle_from_ = std::max(idle_from_, t);  // later frames start no earlier
                    return;
                }
                on_wire_ = static_cast<rte_mbuf*>(m);
                start_ = std::max(link_free_at_, idle_from_);
                finish_ = start_ + (on_wire_->pkt_len + wire_overhead) * ns_per_octet_;
            }
            if (finish_ > t) return;
            sent(on_wire_, start_, finish_);
            last_wire_ns_ = finish_ - start_;
            link_free_at_ = finish_;
            in_use_ -= on_wire_segments_;
            rte_pktmbuf_free(on_wire_);
            on_wire_ = nullptr;
        }
    }
    // When the worker, waiting for descriptors, can go on: 32 of them freed (a NIC's TX free
    // threshold), i.e. about 16 chained frames after the one on the wire.
    double next_free_batch() const {
        if (on_wire_ == nullptr) return INFINITY;
        return finish_ + 15 * last_wire_ns_;
    }

  private:
    static uint16_t take(uint16_t, uint16_t, rte_mbuf** pkts, uint16_t n, void* self) {
        auto* nic = static_cast<VirtualNic*>(self);
        uint16_t k = 0;
        while (k < n && nic->in_use_ + pkts[k]->nb_segs <= nic->descriptors_) {
            nic->in_use_ += pkts[k]->nb_segs;
            ++k;
        }
        return k;  // the rest is the caller's again: "ring full"
    }

    rte_ring* rx_ = nullptr;
    rte_ring* tx_[2] = {};
    uint16_t id_ = 0;
    std::string name_;
    const rte_eth_rxtx_callback* callback_ = nullptr;
    uint32_t descriptors_;
    uint32_t in_use_ = 0;
    double ns_per_octet_;
    rte_mbuf* on_wire_ = nullptr;
    uint32_t on_wire_segments_ = 0;
    double start_ = 0, finish_ = 0, link_free_at_ = 0, idle_from_ = 0, last_wire_ns_ = 0;
};

std::vector<uint8_t> udp_frame(const MacAddress& dst, const UdpEndpoint& from,
                               const UdpEndpoint& to, ByteView payload) {
    std::vector<uint8_t> f(ethernet_header_size + ip_udp_header_size(Family::ipv4) +
                           payload.size());
    build_ethernet(f, dst, router, ethertype_ipv4);
    build_udp_datagram(MutByteView(f).subspan(ethernet_header_size), from, to, payload,
                       {.ttl = 64, .dont_fragment = false});
    return f;
}

bool inject(rte_mempool* pool, rte_ring* rx, const std::vector<uint8_t>& frame,
            uint32_t packet_id = UINT32_MAX) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) return false;
    auto* p =
        reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())));
    std::memcpy(p, frame.data(), frame.size());
    if (packet_id != UINT32_MAX) {
        // The packet's number, first in its payload (the UDP checksum follows it).
        uint8_t* udp = p + ethernet_header_size + ipv4_header_size;
        store_be32(udp + udp_header_size, packet_id);
        store_be16(udp + 6, checksum_update32(load_be16(udp + 6), 0, packet_id));
    }
    if (rte_ring_enqueue(rx, m) == 0) return true;
    rte_pktmbuf_free(m);
    return false;
}

uint64_t total_drops(const WorkerCounters& c) {
    uint64_t n = 0;
    for (const Counter& d : c.dropped)
        n += d.value();
    return n;
}

// What the relay is told about the port: its rate (a ring device reports none).
void configure_egress(DataplaneConfig& config, const EgressOptions& o) {
    config.egress_link_gbps = o.link_gbps;
    if (o.egress_buffer_us > 0) config.egress_buffer_us = o.egress_buffer_us;
}

void run_case(const EgressOptions& o, double load, std::vector<Result>& out) {
    static int instance = 0;
    const std::string id = std::to_string(instance++);
    VirtualNic nic("egress" + id, o);
    rte_mempool* input = rte_pktmbuf_pool_create(("egress_in" + id).c_str(), 32767, 256, 0,
                                                 RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (input == nullptr) throw std::runtime_error("egress: input mempool");

    DataplaneConfig
        config;  // the relay's defaults (pools, buffers) but for what the test bed needs
    config.port = nic.name();
    config.upstream_source_prefixes = {*IpPrefix::parse("198.51.100.0/24")};
    config.flow_table_size = 1024;
    config.next_hop_v4_mac = MacAddress{2, 0, 0, 0, 0, 2};
    config.engine.relay_addresses = {relay.ip};
    config.engine.limits.replies_per_second = 1e9;  // the handshakes measure starvation only
    config.engine.limits.reply_burst = 1e9;
    configure_egress(config, o);
    Dataplane dp(config);
    nic.attach();
    Worker& worker = dp.worker(0);
    ControlThread& control = dp.control();
    const MacAddress relay_mac = dp.port().mac();

    // Channels: group 232.1.0.c from 198.51.100.7, each with its own `fanout` gateways.
    const IpAddress source = *IpAddress::parse("198.51.100.7");
    FlowPublisher& pub = control.publisher();
    std::vector<std::vector<uint8_t>> templates;
    const size_t tunnels = o.channels * o.fanout;
    for (size_t c = 0; c < o.channels; ++c) {
        const IpAddress group = IpAddress::v4(0xe8010000u + static_cast<uint32_t>(c));
        pub.apply({FlowOp::create_flow, {source, group}});
        for (size_t i = 0; i < o.fanout; ++i) {
            const uint32_t k = static_cast<uint32_t>(c * o.fanout + i);
            pub.apply({FlowOp::add_tunnel,
                       {source, group},
                       static_cast<EndpointId>(k),
                       {IpAddress::v4(gateway_base + k), static_cast<uint16_t>(1024 + i)},
                       relay});
        }
        std::vector<uint8_t> payload(o.payload, 0x47);
        std::fill_n(payload.begin(), std::min<size_t>(4, payload.size()), 0);
        const MacAddress mcast{0x01, 0, 0x5e, 1, 0, static_cast<uint8_t>(c)};
        templates.push_back(udp_frame(mcast, {source, 5000}, {group, 5000}, payload));
    }
    pub.publish();

    // The input's timing (ns of virtual time).
    const double frame_octets = static_cast<double>(templates[0].size());
    const double replica_octets = frame_octets - ethernet_header_size + 44;  // outer IPv4 + AMT
    const double replica_ns = (replica_octets + wire_overhead) * nic.ns_per_octet();
    const double burst_egress_ns = static_cast<double>(o.burst * o.fanout) * replica_ns;
    const double period = burst_egress_ns * static_cast<double>(o.channels) / (load / 100.0);
    const double ingress_gap = (frame_octets + wire_overhead) * nic.ns_per_octet();
    const double window = o.seconds * 1e9;
    const double request_gap = o.request_rate > 0 ? 1e9 / o.request_rate : INFINITY;
    std::vector<double> next_burst(o.channels);
    std::vector<size_t> in_burst(o.channels, 0);
    for (size_t c = 0; c < o.channels; ++c)
        next_burst[c] = period * static_cast<double>(c) / static_cast<double>(o.channels);

    // What happened to each input packet and each tunnel.
    std::vector<double> arrival;
    std::vector<uint32_t> channel_of, delivered_of;
    std::vector<double> last_wire;
    std::vector<uint64_t> offered_per_channel(o.channels, 0), delivered_per_tunnel(tunnels, 0);
    uint64_t rx_missed = 0, requests = 0, requests_missed = 0, queries = 0, updates = 0;
    uint64_t replicas_on_wire = 0, other_frames = 0;
    double busy_ns = 0, wire_busy_ns = 0;
    uint32_t next_gateway = 0;
    const uint64_t updates0 = control.engine()
                                  .counters()
                                  .received[static_cast<size_t>(MessageType::membership_update)]
                                  .value();

    auto sent = [&](rte_mbuf* m, double start, double finish) {
        if (start < window) wire_busy_ns += std::min(finish, window) - start;
        const auto* f = rte_pktmbuf_mtod(m, const uint8_t*);
        if (m->data_len < ethernet_header_size + ipv4_header_size + udp_header_size + 2 ||
            load_be16(f + 12) != ethertype_ipv4) {
            ++other_frames;
            return;
        }
        const uint8_t* ip = f + ethernet_header_size;
        const uint32_t dst = load_be32(ip + 16);
        const uint8_t* amt = ip + ipv4_header_size + udp_header_size;
        if (ip[9] == ip_proto_udp && amt[0] == 6 && dst - gateway_base < tunnels) {
            // A replica: its tunnel, and the input packet it carries (number first in payload).
            ++replicas_on_wire;
            ++delivered_per_tunnel[dst - gateway_base];
            uint8_t buf[4];
            const size_t at = ethernet_header_size + ipv4_header_size + udp_header_size + 2 +
                              ipv4_header_size + udp_header_size;
            const auto* p = static_cast<const uint8_t*>(rte_pktmbuf_read(m, at, 4, buf));
            const uint32_t pid = p != nullptr ? load_be32(p) : UINT32_MAX;
            if (pid < delivered_of.size()) {
                ++delivered_of[pid];
                last_wire[pid] = std::max(last_wire[pid], finish);
            }
            return;
        }
        MembershipQuery q;
        if (ip[9] == ip_proto_udp && (dst & 0xfffe0000u) == handshake_base &&
            parse_membership_query(ByteView(amt, m->data_len - (amt - f)), q) == ParseError::ok) {
            // A Query to a handshaking gateway: it joins with an Update (a real handshake).
            if (finish < window) ++queries;
            uint8_t report[64], msg[128];
            ReportBuilder b(report, Family::ipv4);
            const IpAddress group = IpAddress::v4(0xe8090909u);
            b.add_record(RecordType::allow_new_sources, group, std::span(&source, 1));
            const size_t n =
                build_membership_update(msg, q.mac, q.nonce, ByteView(report, b.finish()));
            const UdpEndpoint gw{IpAddress::v4(dst), load_be16(ip + ipv4_header_size + 2)};
            if (finish < window &&
                inject(input, nic.rx(), udp_frame(relay_mac, gw, relay, ByteView(msg, n))))
                ++updates;
            return;
        }
        ++other_frames;
    };

    const WorkerCounters& wc = worker.counters();
    const std::array<uint64_t, dataplane_drop_count> drops0 = [&] {
        std::array<uint64_t, dataplane_drop_count> d{};
        for (size_t i = 0; i < dataplane_drop_count; ++i)
            d[i] = wc.dropped[i].value();
        return d;
    }();
    const Time base = std::chrono::steady_clock::now().time_since_epoch();
    double t = 0, next_request = request_gap / 2, next_control = 0;
    const double give_up = window + 2e9;  // after the input: time for the backlog to go out
    for (;;) {
        // The network: input arriving by now.
        for (size_t c = 0; c < o.channels; ++c) {
            while (next_burst[c] <= t && next_burst[c] < window) {
                const auto pid = static_cast<uint32_t>(arrival.size());
                arrival.push_back(next_burst[c]);
                channel_of.push_back(static_cast<uint32_t>(c));
                delivered_of.push_back(0);
                last_wire.push_back(0);
                ++offered_per_channel[c];
                if (!inject(input, nic.rx(), templates[c], pid)) ++rx_missed;
                if (++in_burst[c] == o.burst) {
                    in_burst[c] = 0;
                    next_burst[c] += period - static_cast<double>(o.burst - 1) * ingress_gap;
                } else {
                    next_burst[c] += ingress_gap;
                }
            }
        }
        while (next_request <= t && next_request < window) {
            uint8_t req[8];
            build_request(req, {.nonce = next_gateway});
            const UdpEndpoint gw{IpAddress::v4(handshake_base + next_gateway++), 40000};
            ++requests;
            if (!inject(input, nic.rx(), udp_frame(relay_mac, gw, relay, ByteView(req))))
                ++requests_missed;
            next_request += request_gap;
        }
        nic.drain_to(t, sent);
        if (next_control <= t) {
            control.poll_once(base + std::chrono::nanoseconds(static_cast<int64_t>(t)));
            next_control = t + 1e6;
        }
        // The worker, for real.
        const uint64_t before =
            wc.rx_packets.value() + wc.replicas.value() + wc.tx_packets.value() + total_drops(wc);
        // The worker's CPU time: a preemption of this process on the shared machine is not
        // the worker's (the link would have drained meanwhile in real time).
        const double start = thread_cpu_ns();
        worker.poll_once(base + std::chrono::nanoseconds(static_cast<int64_t>(t)));
        const double spent = thread_cpu_ns() - start;
        const uint64_t after =
            wc.rx_packets.value() + wc.replicas.value() + wc.tx_packets.value() + total_drops(wc);
        if (after != before) {
            t += spent;
            if (t < window) busy_ns += spent;
            continue;
        }
        // Nothing to do until the next event.
        double next = std::min({nic.next_free_batch(), next_request, next_control});
        for (size_t c = 0; c < o.channels; ++c)
            next = std::min(next, next_burst[c]);
        if (t >= window && nic.idle() && rte_ring_empty(nic.rx())) break;
        if (t >= give_up) break;
        t = std::max(t + spent, std::min(next, give_up));
    }

    // Figures.
    const std::string label = std::to_string(static_cast<int>(load)) + " %";
    auto put = [&](const std::string& what, double v, const std::string& unit) {
        out.push_back({"egress", label + ": " + what, v, unit});
    };
    uint64_t offered = 0;
    for (uint64_t n : offered_per_channel)
        offered += n * o.fanout;
    double min_ratio = INFINITY, max_ratio = 0;
    for (size_t k = 0; k < tunnels; ++k) {
        const double r = static_cast<double>(delivered_per_tunnel[k]) /
                         static_cast<double>(offered_per_channel[k / o.fanout]);
        min_ratio = std::min(min_ratio, r);
        max_ratio = std::max(max_ratio, r);
    }
    std::vector<double> latency_us;
    for (size_t p = 0; p < arrival.size(); ++p) {
        if (delivered_of[p] == o.fanout) latency_us.push_back((last_wire[p] - arrival[p]) / 1e3);
    }
    put("offered_replicas", static_cast<double>(offered), "count");
    put("sent_replicas", static_cast<double>(replicas_on_wire), "count");
    uint64_t dropped = 0;
    for (size_t i = 0; i < dataplane_drop_count; ++i) {
        uint64_t n = wc.dropped[i].value() - drops0[i];
        if (n == 0) continue;
        // Whole input packets refused at intake count all their replicas.
        if (dataplane_drop_names[i] == "egress_buffer_full") n *= o.fanout;
        dropped += n;
        put("dropped_replicas " + std::string(dataplane_drop_names[i]), static_cast<double>(n),
            "count");
    }
    put("dropped_replicas rx_missed", static_cast<double>(rx_missed * o.fanout), "count");
    dropped += rx_missed * o.fanout;
    put("dropped_replicas total", static_cast<double>(dropped), "count");
    put("unaccounted replicas",
        static_cast<double>(offered) - static_cast<double>(replicas_on_wire + dropped), "count");
    put("link_utilisation", wire_busy_ns / window, "ratio");
    put("tunnel delivered min", min_ratio, "ratio");
    put("tunnel delivered max", max_ratio, "ratio");
    put("tunnel delivered min/max", max_ratio > 0 ? min_ratio / max_ratio : 0, "ratio");
    put("added latency p50", quantile(latency_us, 0.5), "us");
    put("added latency p99", quantile(latency_us, 0.99), "us");
    put("worker busy", busy_ns / window, "ratio");
    put("requests sent", static_cast<double>(requests), "count");
    put("requests lost in RX", static_cast<double>(requests_missed), "count");
    put("handshakes answered (Query on the wire)", static_cast<double>(queries) / o.seconds,
        "per s");
    put("updates received by the control thread",
        static_cast<double>(control.engine()
                                .counters()
                                .received[static_cast<size_t>(MessageType::membership_update)]
                                .value() -
                            updates0) /
            o.seconds,
        "per s");
    put("virtual time after the input", (t - window) / 1e6, "ms");
    (void)updates;
    (void)other_frames;
    dp.stop_workers();
    rte_mempool_free(input);
}

}  // namespace

void bench_egress(const EgressOptions& o, std::vector<Result>& out) {
    out.push_back({"egress",
                   "setup: " + std::to_string(o.tx_descriptors) + " descriptors, " +
                       std::to_string(o.link_gbps) + " Gb/s, " + std::to_string(o.payload) +
                       " B, fan-out " + std::to_string(o.fanout) + ", bursts of " +
                       std::to_string(o.burst) + ", " + std::to_string(o.channels) + " channels",
                   o.seconds, "virtual s"});
    for (double load : o.loads)
        run_case(o, load, out);
}

}  // namespace amt::bench
