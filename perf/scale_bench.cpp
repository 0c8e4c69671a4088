// The scale section: memory of N endpoints with one (S,G) each, then membership churn while a
// worker replicates a steady stream, all through the project's real code: the workers'
// HandshakeResponder answers the Requests, the ControlThread's RelayEngine accepts the Updates,
// its FlowPublisher publishes GatewaySets into the RCU FlowTable, and a Worker thread (an EAL
// lcore of its own) replicates onto a ring-backed port.
//
// This thread plays three parts in one loop, so that the benchmark needs two cores, not four:
// the control thread (engine + ControlThread::poll_once, which publishes every 1 ms), the
// traffic source (stream packets on the port's RX ring, each carrying a sequence number) and the
// network behind the port (it dequeues every replica and accounts it to its gateway).
// The network's part takes at most drain_slice (50 µs) per turn of the loop, never a whole
// ring: one packet of a 100,000-member flow is 100,000 replicas, ≈ 5.4 ms of draining, which a
// relay's control thread never does (its NIC drains the TX queues). Drained in one go, it held
// up the control step behind it and was most of that flow's accept → published p99
// (BENCHMARKS.md, chunked gateway sets). accept → published is also split per join into this
// thread's drain time, its run-queue wait (other jobs on a shared machine) and the rest.
//
// Figures:
//  - lost: every steady member of a streamed channel must receive every packet of it;
//  - after removal: a replica to a gateway whose leave was published before the packet was
//    injected (the worker read the table after the swap, so the old set cannot have been used);
//  - accept → first replica: from the engine accepting a joining Update to the first replica for
//    that gateway dequeued from the TX ring. It includes the wait for the channel's next packet
//    (the stream's gap per channel, printed with it) and this loop's own delay.
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_port.hpp"
#include "bench_result.hpp"
#include "common/packet_headers.hpp"
#include "dataplane/dataplane.hpp"

namespace amt::bench {

namespace {

using Clock = std::chrono::steady_clock;
Time now_ns() {
    return Clock::now().time_since_epoch();
}
double to_ms(Time t) {
    return std::chrono::duration<double, std::milli>(t).count();
}

// The most one turn of the churn loop spends draining replicas (see the top of the file).
constexpr Time drain_slice = std::chrono::microseconds(50);

// mmap'ed blocks (large vectors and hash bucket arrays) are in hblkhd, not uordblks.
size_t heap_bytes() {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
size_t rss_bytes() {
    std::ifstream f("/proc/self/statm");
    size_t pages = 0, rss = 0;
    f >> pages >> rss;
    return rss * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// A thread's scheduler figures (/proc/.../schedstat): time on a CPU and time runnable but waiting
// for one (run-queue wait), in ns since the thread started. Read through a file descriptor kept
// open, so that a sample costs one pread.
struct SchedSample {
    uint64_t on_cpu = 0;
    uint64_t run_queue_wait = 0;
};
class ThreadSchedStat {
  public:
    explicit ThreadSchedStat(const std::string& path)
        : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
    ~ThreadSchedStat() {
        if (fd_ >= 0) close(fd_);
    }
    ThreadSchedStat(const ThreadSchedStat&) = delete;
    ThreadSchedStat& operator=(const ThreadSchedStat&) = delete;
    bool valid() const { return fd_ >= 0; }
    SchedSample read() const {
        SchedSample s;
        char text[128];
        const ssize_t n = fd_ >= 0 ? pread(fd_, text, sizeof text - 1, 0) : -1;
        if (n <= 0) return s;
        text[n] = 0;
        std::sscanf(text, "%" SCNu64 " %" SCNu64, &s.on_cpu, &s.run_queue_wait);
        return s;
    }

  private:
    int fd_;
};

// The schedstat path of this process's first thread whose name starts with one of `prefixes`
// (the EAL names its lcore threads "lcore-worker-N" or "rte-worker-N"), or "" if there is none.
std::string thread_schedstat(const std::vector<std::string>& prefixes) {
    std::string found;
    DIR* tasks = opendir("/proc/self/task");
    if (tasks == nullptr) return found;
    while (const dirent* e = readdir(tasks)) {
        if (e->d_name[0] == '.') continue;
        const std::string dir = std::string("/proc/self/task/") + e->d_name;
        std::ifstream comm(dir + "/comm");
        std::string name;
        std::getline(comm, name);
        for (const std::string& p : prefixes)
            if (name.rfind(p, 0) == 0 && found.empty()) found = dir + "/schedstat";
    }
    closedir(tasks);
    return found;
}

constexpr uint32_t steady_base = 0x0a000000;  // 10/8: endpoints loaded before the churn
constexpr uint32_t churn_base = 0x0b000000;   // 11/8: gateways that join, then leave
constexpr size_t outer_v4 = ethernet_header_size + ipv4_header_size + udp_header_size + 2;
constexpr size_t inner_payload = ipv4_header_size + udp_header_size;  // in the replica's inner

UdpEndpoint gateway(uint32_t base, uint32_t i) {
    return {IpAddress::v4(base + i), static_cast<uint16_t>(1024 + i % 60000)};
}

// Channel c: S = 198.51.100.(1 + c % 200), G = 232.(1 + c / 65536).(c / 256).(c % 256).
FlowKey channel(size_t c) {
    const auto i = static_cast<uint32_t>(c);
    return {IpAddress::v4(0xc6336401u + i % 200),
            IpAddress::v4(0xe8000000u + ((1 + i / 65536) << 16) + i % 65536)};
}

struct Credentials {
    ResponseMac mac{};
    uint32_t nonce = 0;
};

struct QueryCapture : ReplySink {
    Credentials got;
    bool ok = false;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView p) override {
        MembershipQuery q;
        ok = parse_membership_query(p, q) == ParseError::ok;
        got = {q.mac, q.nonce};
    }
};

// Request → Query, answered by a HandshakeResponder as a worker would.
Credentials handshake(HandshakeResponder& responder, const UdpEndpoint& gw,
                      const UdpEndpoint& relay, uint32_t nonce, Time now) {
    uint8_t request[8];
    build_request(request, {.nonce = nonce});
    QueryCapture capture;
    responder.respond({gw, relay, ByteView(request)}, now, capture);
    if (!capture.ok) throw std::runtime_error("scale: no Query for a Request");
    return capture.got;
}

// One record for one (S,G): ALLOW joins the source, BLOCK leaves it.
size_t build_update(MutByteView out, const Credentials& c, RecordType type, const FlowKey& key) {
    uint8_t report[64];
    ReportBuilder b(report, Family::ipv4);
    b.add_record(type, key.group, std::span(&key.source, 1));
    return build_membership_update(out, c.mac, c.nonce, ByteView(report, b.finish()));
}

// A native multicast frame for `key` with the inner UDP checksum zero (none, as IPv4 allows),
// so that the sequence number written into the payload needs no checksum update.
std::vector<uint8_t> stream_frame(const FlowKey& key, size_t payload) {
    std::vector<uint8_t> frame(ethernet_header_size + ip_udp_header_size(Family::ipv4) + payload);
    const uint32_t g = key.group.v4_value();
    build_ethernet(frame,
                   {0x01, 0, 0x5e, static_cast<uint8_t>((g >> 16) & 0x7f),
                    static_cast<uint8_t>(g >> 8), static_cast<uint8_t>(g)},
                   {2, 0, 0, 0, 0, 1}, ethertype_ipv4);
    std::vector<uint8_t> data(payload, 0x47);
    build_udp_datagram(MutByteView(frame).subspan(ethernet_header_size), {key.source, 5000},
                       {key.group, 5000}, data, {.ttl = 64, .dont_fragment = false});
    frame[ethernet_header_size + ipv4_header_size + 6] = 0;
    frame[ethernet_header_size + ipv4_header_size + 7] = 0;
    return frame;
}

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
    return v[i];
}

struct ChurnSpec {
    std::string label;
    size_t steady;         // endpoints loaded first, one (S,G) each
    size_t cold_channels;  // channels without traffic that hold the rest of the steady endpoints
    size_t hot_channels;   // channels with the stream and the churn
    size_t witnesses;      // steady endpoints per hot channel
    double stream_pps;
    double churn_rate;  // membership changes per second (joins + leaves)
    double churn_seconds;
    Time lifetime;  // a churn gateway leaves this long after its join
    size_t payload;
    bool memory;  // report the load's memory figures
};

enum class GwState : uint8_t { fresh, joined, receiving, leaving, removed };

struct ChurnGateway {
    Credentials credentials;
    Time accepted{};
    Time drained_at_accept{};       // the harness's drain time so far, when it was accepted
    uint64_t wait_at_accept = 0;    // this thread's run-queue wait so far (last sample)
    uint64_t removed_from_seq = 0;  // first stream packet injected after the removal's publish
    GwState state = GwState::fresh;
};

void run_churn(const ChurnSpec& spec, std::vector<Result>& out) {
    static int instance = 0;
    const std::string id = std::to_string(instance++);
    BenchPort port = make_bench_port("scale" + id, 16384, 1u << 20);
    rte_mempool* input = rte_pktmbuf_pool_create(("scale_in" + id).c_str(), 16383, 256, 0,
                                                 RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (input == nullptr) throw std::runtime_error("scale: input mempool");
    const size_t pool_size = static_cast<size_t>(spec.churn_rate * spec.churn_seconds / 2) + 64;
    const size_t channels = spec.hot_channels + spec.cold_channels;
    const IpAddress relay_ip = *IpAddress::parse("192.0.2.1");
    const UdpEndpoint relay{relay_ip, amt_udp_port};

    DataplaneConfig config;
    config.port = port.name;
    config.packet_mbufs = 16383;
    // Replicas waiting in the TX ring hold one header each, and the loop drains them in slices
    // (see the top of the file): room for every replica of one packet of the biggest channel,
    // so that the worker never runs out while this thread does the control work between them.
    config.header_mbufs = static_cast<uint32_t>(std::max<size_t>(131071, spec.witnesses + 65535));
    config.flow_table_size = 1024;
    while (config.flow_table_size < 2 * channels)
        config.flow_table_size *= 2;
    config.next_hop_v4_mac = MacAddress{2, 0, 0, 0, 0, 2};
    // The stream's sources (S = 198.51.100.x / 2001:db8:5::x): on one port, native multicast is
    // taken only from upstream.source_prefixes (issue 18, item 1).
    config.upstream_source_prefixes = {*IpPrefix::parse("198.51.100.0/24"),
                                       *IpPrefix::parse("2001:db8:5::/48")};
    config.engine.relay_addresses = {relay_ip};
    config.engine.limits.max_endpoints = static_cast<uint32_t>(spec.steady + pool_size + 16);
    config.engine.limits.replies_per_second_per_source_ip = 1e12;
    config.engine.limits.reply_burst_per_source_ip = 1e12;
    config.engine.limits.replies_per_second = 1e9;
    config.engine.limits.reply_burst = 1e9;
    auto dp = std::make_unique<Dataplane>(config);
    ControlThread& control = dp->control();
    RelayEngine& engine = control.engine();
    FlowPublisher& publisher = control.publisher();
    HandshakeResponder responder(config.engine, dp->secrets(), engine.reply_guard());
    auto name = [&](const std::string& what) { return spec.label + ": " + what; };

    // Load: every steady endpoint does Request → Query → Update (ALLOW one (S,G)).
    const size_t heap0 = heap_bytes(), rss0 = rss_bytes();
    const size_t hot_members = spec.hot_channels * spec.witnesses;
    uint8_t buf[128];
    const Time load_start = now_ns();
    Time now = load_start;
    for (size_t i = 0; i < spec.steady; ++i) {
        if (i % 4096 == 0) now = now_ns();
        const UdpEndpoint gw = gateway(steady_base, static_cast<uint32_t>(i));
        const FlowKey key =
            i < hot_members ? channel(i % spec.hot_channels)
                            : channel(spec.hot_channels + (i - hot_members) % spec.cold_channels);
        const Credentials c = handshake(responder, gw, relay, static_cast<uint32_t>(i), now);
        const size_t n = build_update(buf, c, RecordType::allow_new_sources, key);
        engine.handle({gw, relay, ByteView(buf, n)}, now);
    }
    const Time load_end = now_ns();
    const size_t heap_unpublished = heap_bytes();
    control.poll_once(load_end);  // the first publish: every flow at once
    dp->flows().reclaim();
    const Time publish_end = now_ns();
    const size_t heap1 = heap_bytes(), rss1 = rss_bytes();
    const size_t loaded = engine.memberships().endpoint_count();
    out.push_back({"scale", name("endpoints loaded (one (S,G) each)"), static_cast<double>(loaded),
                   "endpoints"});
    out.push_back({"scale", name("load rate (Request→Query, Update accepted)"),
                   static_cast<double>(spec.steady) / to_ms(load_end - load_start), "k/s"});
    out.push_back(
        {"scale", name("first publish of every flow"), to_ms(publish_end - load_end), "ms"});
    if (spec.memory) {
        const double heap = static_cast<double>(heap1 - heap0);
        out.push_back({"scale", name("heap: engine + publisher + gateway sets"), heap / 1e6, "MB"});
        out.push_back({"scale", name("  of which the published gateway sets"),
                       static_cast<double>(heap1 - heap_unpublished) / 1e6, "MB"});
        out.push_back(
            {"scale", name("heap per endpoint"), heap / static_cast<double>(loaded), "B"});
        out.push_back({"scale", name("RSS growth during load"),
                       static_cast<double>(rss1 > rss0 ? rss1 - rss0 : 0) / 1e6, "MB"});
    }

    // Churn gateways: credentials ready, as if each had done its Request earlier.
    std::vector<ChurnGateway> churn(pool_size);
    for (size_t j = 0; j < pool_size; ++j) {
        churn[j].credentials = handshake(responder, gateway(churn_base, static_cast<uint32_t>(j)),
                                         relay, static_cast<uint32_t>(j), now_ns());
    }
    std::vector<std::vector<uint8_t>> frames;
    for (size_t h = 0; h < spec.hot_channels; ++h)
        frames.push_back(stream_frame(channel(h), spec.payload));
    const size_t seq_offset = ethernet_header_size + inner_payload;

    std::vector<uint64_t> injected(spec.hot_channels, 0);
    std::vector<uint64_t> witness_rx(hot_members, 0);
    std::vector<double> publish_latency, first_replica, publish_time, transit;
    // Where accept → published goes, per join: the time this thread spent draining replicas
    // (the harness playing the network, which a relay's control thread never does), the time it
    // was runnable but not on a CPU (run-queue wait: other jobs on a shared machine), and the
    // rest: the engine, the 1 ms batch and the publish, what a control thread on a core of its
    // own sees. Measured in the same run, so the split holds whatever the load. A wait inside a
    // drain counts in both parts, so the rest is a lower bound. (The thread's CPU clock would
    // tell them apart, but it is a system call of 1.3 µs on this VM, against 26 ns for
    // steady_clock: too slow to read per drain.)
    std::vector<double> latency_drain_part, latency_wait_part, latency_rest, drain_calls;
    Time drain_total{};
    ThreadSchedStat own_sched("/proc/thread-self/schedstat");
    SchedSample sched = own_sched.read();
    Time sched_read_at = now_ns();
    // Injection time of each stream packet, to tell the worker's delay from the publisher's.
    std::vector<Time> inject_time(static_cast<size_t>(spec.stream_pps * spec.churn_seconds * 1.2) +
                                  1024);
    std::deque<uint32_t> joined;
    std::vector<uint32_t> unpublished_joins, unpublished_leaves;
    uint64_t seq = 0, not_injected = 0, replicas = 0, after_removal = 0, strays = 0;
    uint64_t joins = 0, leaves = 0, refused = 0, batches = 0, turns = 0;
    size_t next_fresh = 0;
    bool join_turn = true;

    auto change = [&](bool join, Time t) {
        const uint32_t j = join ? static_cast<uint32_t>(next_fresh++) : joined.front();
        if (!join) joined.pop_front();
        const UdpEndpoint gw = gateway(churn_base, j);
        const size_t n =
            build_update(buf, churn[j].credentials,
                         join ? RecordType::allow_new_sources : RecordType::block_old_sources,
                         channel(j % spec.hot_channels));
        engine.handle({gw, relay, ByteView(buf, n)}, t);
        // Accepted: the join created the endpoint; the leave emptied it, so it is gone.
        const bool member = engine.memberships().find(gw) != MembershipDb::no_endpoint;
        if (member != join) {
            ++refused;
            return;
        }
        ChurnGateway& g = churn[j];
        if (join) {
            g.state = GwState::joined;
            g.accepted = now_ns();
            g.drained_at_accept = drain_total;
            g.wait_at_accept = sched.run_queue_wait;
            joined.push_back(j);
            unpublished_joins.push_back(j);
            ++joins;
        } else {
            g.state = GwState::leaving;
            unpublished_leaves.push_back(j);
            ++leaves;
        }
    };

    void* sent[512];
    // Drain cost per replica, by whether the ring was behind (> 4,096 queued) at the call.
    struct DrainCost {
        Time spent{};
        uint64_t replicas = 0;
    } drain_behind, drain_caught_up;
    // While the churn runs a call drains for at most drain_slice (see the top of the file); at
    // the end, everything.
    auto drain = [&](Time slice = drain_slice) {
        const unsigned backlog = rte_ring_count(port.tx);
        if (backlog == 0) return;
        const Time start = now_ns();
        Time t = start;  // when this burst was taken off the ring
        unsigned n;
        uint64_t drained = 0;
        while ((n = rte_ring_dequeue_burst(port.tx, sent, 512, nullptr)) > 0) {
            drained += n;
            for (unsigned k = 0; k < n; ++k) {
                auto* m = static_cast<rte_mbuf*>(sent[k]);
                const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
                // Replicas only: IPv4, UDP from port 2268 (not ARP, not the upstream reports).
                if (m->data_len < outer_v4 || m->pkt_len < outer_v4 + inner_payload + 8 ||
                    load_be16(f + 12) != ethertype_ipv4 || f[ethernet_header_size + 9] != 17 ||
                    load_be16(f + ethernet_header_size + ipv4_header_size) != amt_udp_port) {
                    continue;
                }
                ++replicas;
                const uint32_t dst = load_be32(f + ethernet_header_size + 16);
                // The stream packet's sequence number, read only where it is needed.
                auto sequence = [m] {
                    uint64_t v;
                    const void* p = rte_pktmbuf_read(m, outer_v4 + inner_payload, 8, &v);
                    std::memcpy(&v, p, 8);
                    return v;
                };
                if (dst - steady_base < hot_members) {
                    ++witness_rx[dst - steady_base];
                    if (dst == steady_base) {
                        const uint64_t s = sequence();
                        if (s < inject_time.size()) transit.push_back(to_ms(t - inject_time[s]));
                    }
                } else if (dst - churn_base < pool_size) {
                    ChurnGateway& g = churn[dst - churn_base];
                    if (g.state == GwState::joined) {
                        first_replica.push_back(to_ms(t - g.accepted));
                        g.state = GwState::receiving;
                    } else if (g.state == GwState::removed && sequence() >= g.removed_from_seq) {
                        ++after_removal;
                    } else if (g.state == GwState::fresh) {
                        ++strays;
                    }
                } else {
                    ++strays;
                }
            }
            rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(sent), n);
            t = now_ns();
            if (t - start >= slice) break;
        }
        const Time spent = t - start;
        drain_total += spent;
        drain_calls.push_back(to_ms(spent));
        DrainCost& cost = backlog > 4096 ? drain_behind : drain_caught_up;
        cost.spent += spent;
        cost.replicas += drained;
    };

    auto step_control = [&] {
        const bool dirty = publisher.dirty();
        const Time c0 = now_ns();
        control.poll_once(c0);
        if (!dirty || publisher.dirty()) return;
        const Time c1 = now_ns();
        sched = own_sched.read();
        sched_read_at = c1;
        ++batches;
        publish_time.push_back(to_ms(c1 - c0));
        for (uint32_t j : unpublished_joins) {
            const ChurnGateway& g = churn[j];
            const double total = to_ms(c1 - g.accepted);
            const double drained = to_ms(drain_total - g.drained_at_accept);
            const double waited =
                static_cast<double>(sched.run_queue_wait - g.wait_at_accept) / 1e6;
            publish_latency.push_back(total);
            latency_drain_part.push_back(drained);
            latency_wait_part.push_back(waited);
            latency_rest.push_back(std::max(0.0, total - drained - waited));
        }
        for (uint32_t j : unpublished_leaves) {
            churn[j].state = GwState::removed;
            churn[j].removed_from_seq = seq;  // every packet from here on sees the new set
        }
        unpublished_joins.clear();
        unpublished_leaves.clear();
    };

    const WorkerCounters& wc = dp->worker(0).counters();
    dp->start_workers();
    const ThreadSchedStat worker_sched(thread_schedstat({"lcore-worker", "rte-worker"}));
    const SchedSample worker0 = worker_sched.read();
    sched = own_sched.read();
    const SchedSample own0 = sched;
    const Time start = now_ns();
    const Time end =
        start + std::chrono::nanoseconds(static_cast<int64_t>(spec.churn_seconds * 1e9));
    // --stream-pps 0: no stream at all (the churn alone).
    const auto pkt_gap = spec.stream_pps > 0
                             ? std::chrono::nanoseconds(static_cast<int64_t>(1e9 / spec.stream_pps))
                             : std::chrono::hours(24 * 365);
    const auto op_gap = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / spec.churn_rate));
    Time next_pkt = start, next_op = start;
    // Queues the stream packets due by `t` on the port's RX ring.
    auto inject = [&](Time t) {
        rte_mbuf* burst[32];
        unsigned k = 0;
        while (next_pkt <= t && k < 32) {
            next_pkt += pkt_gap;
            rte_mbuf* m = rte_pktmbuf_alloc(input);
            if (m == nullptr) {
                ++not_injected;
                continue;
            }
            const size_t h = seq % spec.hot_channels;
            const std::vector<uint8_t>& f = frames[h];
            auto* d = rte_pktmbuf_mtod(m, uint8_t*);
            std::memcpy(d, f.data(), f.size());
            std::memcpy(d + seq_offset, &seq, 8);
            m->data_len = m->pkt_len = static_cast<uint32_t>(f.size());
            burst[k++] = m;
            if (seq < inject_time.size()) inject_time[seq] = t;
            ++injected[h];
            ++seq;
        }
        const unsigned queued =
            rte_ring_enqueue_burst(port.rx, reinterpret_cast<void**>(burst), k, nullptr);
        for (unsigned i = queued; i < k; ++i) {  // RX ring full: the worker is behind
            --injected[(seq - (k - i)) % spec.hot_channels];
            ++not_injected;
        }
        if (queued < k) rte_pktmbuf_free_bulk(burst + queued, k - queued);
    };

    for (Time t = start; t < end; t = now_ns()) {
        ++turns;
        // The run-queue wait attributed to a join is counted from the sample before its accept:
        // at most 0.1 ms early.
        if (t - sched_read_at >= std::chrono::microseconds(100)) {
            sched = own_sched.read();
            sched_read_at = t;
        }
        for (int budget = 256; next_op <= t && budget > 0; --budget) {
            const bool can_leave =
                !joined.empty() && churn[joined.front()].accepted + spec.lifetime <= t;
            const bool can_join = next_fresh < pool_size;
            if (can_join && (join_turn || !can_leave)) {
                change(true, t);
            } else if (can_leave) {
                change(false, t);
            }
            join_turn = !join_turn;
            next_op += op_gap;
        }
        inject(t);
        step_control();
        drain();
    }
    const Time churn_end = now_ns();
    const SchedSample own1 = own_sched.read(), worker1 = worker_sched.read();
    // The stream goes on (without churn) until the last joins have seen a few packets of their
    // channel; then the worker finishes what is queued and everything it sent is accounted.
    const Time tail = spec.stream_pps > 0 ? std::max<Time>(std::chrono::milliseconds(5),
                                                           3 * pkt_gap * spec.hot_channels)
                                          : std::chrono::milliseconds(5);
    for (Time t = churn_end; t < churn_end + tail; t = now_ns()) {
        inject(t);
        step_control();
        drain();
    }
    const Time stream_end = now_ns();
    for (Time t = stream_end;
         t < stream_end + std::chrono::seconds(10) &&
         (rte_ring_count(port.rx) > 0 || t < stream_end + std::chrono::milliseconds(2));
         t = now_ns()) {
        step_control();
        drain();
    }
    dp->stop_workers();
    drain(Time::max());
    // A saturated worker may not have reached every packet: those were never replicated to
    // anyone, so they are not counted as lost but reported.
    uint64_t unprocessed = 0;
    for (void* obj; rte_ring_dequeue(port.rx, &obj) == 0; ++unprocessed) {
        auto* m = static_cast<rte_mbuf*>(obj);
        uint64_t s;
        std::memcpy(&s, rte_pktmbuf_mtod_offset(m, const uint8_t*, seq_offset), 8);
        --injected[s % spec.hot_channels];
        rte_pktmbuf_free(m);
    }

    uint64_t lost = 0, duplicated = 0;
    for (size_t w = 0; w < hot_members; ++w) {
        const uint64_t expected = injected[w % spec.hot_channels];
        lost += expected > witness_rx[w] ? expected - witness_rx[w] : 0;
        duplicated += witness_rx[w] > expected ? witness_rx[w] - expected : 0;
    }
    size_t never_received = 0;
    for (const ChurnGateway& g : churn)
        never_received += g.state == GwState::joined;
    const double secs = std::chrono::duration<double>(churn_end - start).count();

    out.push_back({"scale", name("membership changes accepted (joins + leaves)"),
                   static_cast<double>(joins + leaves) / secs / 1e3, "k/s"});
    out.push_back({"scale", name("Updates refused"), static_cast<double>(refused), "count"});
    out.push_back(
        {"scale", name("stream into the worker"), static_cast<double>(seq) / secs / 1e3, "kpps"});
    out.push_back({"scale", name("stream packets the harness could not inject"),
                   static_cast<double>(not_injected), "count"});
    out.push_back({"scale", name("stream packets the worker never reached (not counted as lost)"),
                   static_cast<double>(unprocessed), "count"});
    out.push_back(
        {"scale", name("replicas out"), static_cast<double>(replicas) / secs / 1e6, "Mpps"});
    out.push_back({"scale", name("packets lost (steady members of streamed channels)"),
                   static_cast<double>(lost), "count"});
    out.push_back({"scale", name("duplicate replicas (steady members)"),
                   static_cast<double>(duplicated), "count"});
    out.push_back({"scale", name("replicas to a gateway after its removal was published"),
                   static_cast<double>(after_removal), "count"});
    out.push_back(
        {"scale", name("replicas to gateways never joined"), static_cast<double>(strays), "count"});
    out.push_back({"scale",
                   name("worker drops (tx_full + mbuf_exhausted; a steady member's is also lost)"),
                   static_cast<double>(
                       wc.dropped[static_cast<size_t>(DataplaneDrop::tx_full)].value() +
                       wc.dropped[static_cast<size_t>(DataplaneDrop::mbuf_exhausted)].value()),
                   "count"});
    const double busy = static_cast<double>(wc.busy_cycles.value());
    const double idle = static_cast<double>(wc.idle_cycles.value());
    out.push_back({"scale", name("worker busy (loops that received packets)"),
                   busy + idle > 0 ? busy / (busy + idle) : 0, "ratio"});
    out.push_back({"scale", name("publish batches"), static_cast<double>(batches) / secs, "/s"});
    out.push_back({"scale", name("publish time p50"), quantile(publish_time, 0.5), "ms"});
    out.push_back({"scale", name("publish time p99"), quantile(publish_time, 0.99), "ms"});
    out.push_back(
        {"scale", name("Update accepted → published p50"), quantile(publish_latency, 0.5), "ms"});
    out.push_back(
        {"scale", name("Update accepted → published p99"), quantile(publish_latency, 0.99), "ms"});
    out.push_back({"scale", name("  part the harness spent draining replicas p99"),
                   quantile(latency_drain_part, 0.99), "ms"});
    out.push_back({"scale", name("  part waiting for a CPU (run-queue, ≤ 0.1 ms early) p99"),
                   quantile(latency_wait_part, 0.99), "ms"});
    out.push_back({"scale", name("  the rest: engine, batch, publish (own core) p50"),
                   quantile(latency_rest, 0.5), "ms"});
    out.push_back({"scale", name("  the rest: engine, batch, publish (own core) p99"),
                   quantile(latency_rest, 0.99), "ms"});
    // The slow joins (over the 2 ms target) and what most of their time went to.
    size_t slow = 0, slow_drain = 0, slow_wait = 0;
    for (size_t i = 0; i < publish_latency.size(); ++i) {
        if (publish_latency[i] <= 2) continue;
        ++slow;
        slow_drain += latency_drain_part[i] >= publish_latency[i] / 2;
        slow_wait += latency_wait_part[i] >= publish_latency[i] / 2;
    }
    out.push_back({"scale", name("joins published after more than 2 ms"), static_cast<double>(slow),
                   "count"});
    out.push_back({"scale", name("  of which half or more in the harness's drain"),
                   static_cast<double>(slow_drain), "count"});
    out.push_back({"scale", name("  of which half or more waiting for a CPU"),
                   static_cast<double>(slow_wait), "count"});
    out.push_back({"scale", name("harness loop turns (one control step each)"),
                   static_cast<double>(turns) / secs, "/s"});
    out.push_back({"scale", name("harness drain calls"),
                   static_cast<double>(drain_calls.size()) / secs, "/s"});
    out.push_back(
        {"scale", name("harness drain calls: time in them"), to_ms(drain_total) / secs, "ms/s"});
    out.push_back(
        {"scale", name("harness drain calls: duration p50"), quantile(drain_calls, 0.5), "ms"});
    out.push_back(
        {"scale", name("harness drain calls: duration p99"), quantile(drain_calls, 0.99), "ms"});
    if (!drain_calls.empty()) {
        out.push_back(
            {"scale", name("harness drain calls: longest"), quantile(drain_calls, 1.0), "ms"});
    }
    // Figures that would be NaN (nothing drained, no stream) are left out: only quantiles may be.
    auto ns_per_replica = [&](const std::string& what, const DrainCost& c) {
        if (c.replicas == 0) return;
        out.push_back({"scale", name(what),
                       static_cast<double>(c.spent.count()) / static_cast<double>(c.replicas),
                       "ns"});
    };
    ns_per_replica("harness drain time per replica, ring behind (> 4,096 queued)", drain_behind);
    ns_per_replica("harness drain time per replica, ring caught up", drain_caught_up);
    out.push_back({"scale", name("  share of replicas drained while behind"),
                   static_cast<double>(drain_behind.replicas) /
                       static_cast<double>(
                           std::max<uint64_t>(1, drain_behind.replicas + drain_caught_up.replicas)),
                   "ratio"});
    auto per_second = [secs](uint64_t a, uint64_t b) {
        return static_cast<double>(b - a) / 1e6 / secs;
    };
    out.push_back({"scale", name("control loop thread: on a CPU"),
                   per_second(own0.on_cpu, own1.on_cpu), "ms/s"});
    out.push_back({"scale", name("control loop thread: run-queue wait"),
                   per_second(own0.run_queue_wait, own1.run_queue_wait), "ms/s"});
    if (worker_sched.valid()) {
        out.push_back({"scale", name("worker thread: on a CPU"),
                       per_second(worker0.on_cpu, worker1.on_cpu), "ms/s"});
        out.push_back({"scale", name("worker thread: run-queue wait"),
                       per_second(worker0.run_queue_wait, worker1.run_queue_wait), "ms/s"});
    }
    out.push_back(
        {"scale", name("Update accepted → first replica p50"), quantile(first_replica, 0.5), "ms"});
    out.push_back({"scale", name("Update accepted → first replica p99"),
                   quantile(first_replica, 0.99), "ms"});
    if (spec.stream_pps > 0) {
        out.push_back({"scale", name("  part waiting for the channel's next packet (at most)"),
                       1e3 * static_cast<double>(spec.hot_channels) / spec.stream_pps, "ms"});
    }
    out.push_back({"scale", name("  part in the worker: stream packet in → replica out p50"),
                   quantile(transit, 0.5), "ms"});
    out.push_back({"scale", name("  part in the worker: stream packet in → replica out p99"),
                   quantile(transit, 0.99), "ms"});
    out.push_back({"scale", name("joins with no replica by the end"),
                   static_cast<double>(never_received), "count"});
    dp.reset();
    rte_mempool_free(input);
}

}  // namespace

void bench_scale(const ScaleOptions& o, std::vector<Result>& out) {
    const Time lifetime = std::chrono::microseconds(static_cast<int64_t>(o.lifetime_ms * 1e3));
    const size_t hot = std::min<size_t>(o.hot_channels, std::max<size_t>(1, o.endpoints / 2));
    const size_t witnesses = std::min<size_t>(8, o.endpoints / hot);
    run_churn({.label = std::to_string(o.endpoints) + " endpoints",
               .steady = o.endpoints,
               .cold_channels = std::max<size_t>(1, o.channels),
               .hot_channels = hot,
               .witnesses = witnesses,
               .stream_pps = o.stream_pps,
               .churn_rate = o.churn_rate,
               .churn_seconds = o.churn_seconds,
               .lifetime = lifetime,
               .payload = o.payload,
               .memory = true},
              out);
    if (o.big_flow == 0) return;
    // One (S,G) with big_flow steady members and the churn on it: each batch copies only the
    // chunks of the set it changes (issue 17). Its memory figures are the big set's. The stream
    // is slowed so that the worker's output stays near 2 Mpps.
    run_churn({.label = "one flow of " + std::to_string(o.big_flow),
               .steady = o.big_flow,
               .cold_channels = 1,
               .hot_channels = 1,
               .witnesses = o.big_flow,
               .stream_pps = std::min(o.stream_pps, 2e6 / static_cast<double>(o.big_flow)),
               .churn_rate = o.churn_rate,
               .churn_seconds = o.churn_seconds,
               .lifetime = lifetime,
               .payload = o.payload,
               .memory = true},
              out);
}

}  // namespace amt::bench
