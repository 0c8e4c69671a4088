// amtgw: an AMT gateway a person can use in one command.
//   amtgw --relay 192.0.2.1 --source 198.51.100.7 --group 232.1.1.1 --output udp://127.0.0.1:5000
// then watch with `ffplay udp://127.0.0.1:5000` or VLC. Without --relay it discovers a relay at
// the anycast address (or --discovery ADDR, or --driad through the source's AMTRELAY records).
// A status line on stderr shows state, relay, packets, bitrate and MPEG-TS continuity errors.
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/packet_headers.hpp"
#include "gateway/driad.hpp"
#include "gateway/gateway_session.hpp"

using namespace amt;

namespace {

std::atomic<bool> stop_requested{false};
void on_signal(int) {
    stop_requested = true;
}

uint32_t csprng32() {
    uint32_t v;
    while (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
    }
    return v;
}

GwTime now() {
    return std::chrono::steady_clock::now().time_since_epoch();
}

sockaddr_storage to_sockaddr(const UdpEndpoint& e, socklen_t& len) {
    sockaddr_storage ss{};
    if (e.ip.is_v4()) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(e.port);
        std::memcpy(&s->sin_addr, e.ip.wire().data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(e.port);
        std::memcpy(&s->sin6_addr, e.ip.canonical16().data(), 16);
        len = sizeof(sockaddr_in6);
    }
    return ss;
}

UdpEndpoint from_sockaddr(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
        return {IpAddress::v4_from_bytes(reinterpret_cast<const uint8_t*>(&s->sin_addr)),
                ntohs(s->sin_port)};
    }
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    return {IpAddress::v6_from_bytes(reinterpret_cast<const uint8_t*>(&s->sin6_addr)),
            ntohs(s->sin6_port)};
}

// Where the received stream goes: the inner UDP payload, as the source sent it.
class Output {
  public:
    static std::unique_ptr<Output> open(const std::string& spec);
    virtual ~Output() = default;
    virtual void write(ByteView payload) = 0;
};

class UdpOutput : public Output {
  public:
    explicit UdpOutput(const UdpEndpoint& to) : to_(to) {
        fd_ = socket(to.ip.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
        addr_ = to_sockaddr(to, len_);
    }
    ~UdpOutput() override { close(fd_); }
    void write(ByteView p) override {
        sendto(fd_, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&addr_), len_);
    }

  private:
    UdpEndpoint to_;
    int fd_;
    sockaddr_storage addr_;
    socklen_t len_ = 0;
};

class FileOutput : public Output {
  public:
    explicit FileOutput(FILE* f, bool owned) : f_(f), owned_(owned) {}
    ~FileOutput() override {
        if (owned_)
            std::fclose(f_);
        else
            std::fflush(f_);
    }
    void write(ByteView p) override { std::fwrite(p.data(), 1, p.size(), f_); }

  private:
    FILE* f_;
    bool owned_;
};

class NullOutput : public Output {
  public:
    void write(ByteView) override {}
};

std::unique_ptr<Output> Output::open(const std::string& spec) {
    if (spec.empty() || spec == "none") return std::make_unique<NullOutput>();
    if (spec == "-") return std::make_unique<FileOutput>(stdout, false);
    if (spec.rfind("udp://", 0) == 0) {
        const std::string rest = spec.substr(6);
        const size_t colon = rest.rfind(':');
        std::string host = rest.substr(0, colon);
        if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
        const auto ip = IpAddress::parse(host);
        if (colon == std::string::npos || !ip) {
            throw CLI::ValidationError(
                "--output", "udp://HOST:PORT with a numeric address, e.g. udp://127.0.0.1:5000");
        }
        return std::make_unique<UdpOutput>(
            UdpEndpoint{*ip, static_cast<uint16_t>(std::stoi(rest.substr(colon + 1)))});
    }
    FILE* f = std::fopen(spec.c_str(), "wb");
    if (f == nullptr)
        throw CLI::ValidationError("--output", "cannot open " + spec + " for writing");
    return std::make_unique<FileOutput>(f, true);
}

// MPEG-TS continuity counters per PID: a jump means lost TS packets (what a viewer would see).
class TsContinuity {
  public:
    void check(ByteView p) {
        for (size_t off = 0; off + 188 <= p.size(); off += 188) {
            if (p[off] != 0x47) return;  // not a transport stream
            const uint16_t pid = static_cast<uint16_t>(((p[off + 1] & 0x1f) << 8) | p[off + 2]);
            const bool has_payload = p[off + 3] & 0x10;
            const uint8_t cc = p[off + 3] & 0x0f;
            if (pid == 0x1fff || !has_payload) continue;
            const auto it = last_.find(pid);
            if (it != last_.end() && cc != ((it->second + 1) & 0x0f) && cc != it->second) ++errors_;
            last_[pid] = cc;
        }
    }
    uint64_t errors() const { return errors_; }

  private:
    std::map<uint16_t, uint8_t> last_;
    uint64_t errors_ = 0;
};

struct Tunnel {
    std::unique_ptr<GatewaySession> session;
    int fd = -1;
};

int open_socket(Family f, uint16_t local_port) {
    const int fd = socket(f == Family::ipv4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    if (local_port != 0) {
        socklen_t len;
        const IpAddress any = f == Family::ipv4 ? IpAddress::v4(0) : *IpAddress::parse("::");
        sockaddr_storage ss = to_sockaddr({any, local_port}, len);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

void flush_outgoing(Tunnel& t) {
    for (const Outgoing& o : t.session->take_outgoing()) {
        socklen_t len;
        sockaddr_storage ss = to_sockaddr(o.to, len);
        sendto(t.fd, o.payload.data(), o.payload.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"amtgw: receive multicast through an AMT relay (RFC 7450)"};
    std::string relay_text, discovery_text, output_spec = "udp://127.0.0.1:5000";
    std::vector<std::string> sources, groups;
    int port = 0;
    bool driad = false, quiet = false, no_teardown = false;
    uint64_t count = 0;
    double duration = 0;
    unsigned emulate = 1;
    uint16_t local_port = 0;
    app.add_option("--relay", relay_text, "relay unicast address (skips discovery)");
    app.add_option("--discovery", discovery_text,
                   "relay discovery address (default 192.52.193.1, or 2001:3::1 for IPv6 groups)");
    app.add_flag("--driad", driad,
                 "find the relay in the source's AMTRELAY DNS records (RFC 8777)");
    app.add_option("-s,--source", sources,
                   "source address S (repeat for several channels; omit for ASM)");
    app.add_option("-g,--group", groups, "group address G (repeat; pairs with --source in order)")
        ->required();
    app.add_option("-p,--port", port, "only hand on UDP datagrams to this port (default: all)");
    app.add_option("-o,--output", output_spec, "udp://HOST:PORT, a file, '-' for stdout, or 'none'")
        ->capture_default_str();
    app.add_option("--count", count, "stop after this many packets");
    app.add_option("--duration", duration, "stop after this many seconds");
    app.add_option("--emulate", emulate, "act as N gateways (N sockets), for load tests")
        ->check(CLI::Range(1u, 100000u));
    app.add_option("--local-port", local_port, "first local UDP port (default: ephemeral)");
    app.add_flag("--no-teardown", no_teardown, "never send Teardown");
    app.add_flag("-q,--quiet", quiet, "no status line");
    CLI11_PARSE(app, argc, argv);

    SessionConfig config;
    config.teardown = !no_teardown;
    if (!sources.empty() && sources.size() != groups.size()) {
        std::fprintf(stderr, "amtgw: give one --source per --group (or none for ASM)\n");
        return 2;
    }
    for (size_t i = 0; i < groups.size(); ++i) {
        const auto g = IpAddress::parse(groups[i]);
        const auto s =
            sources.empty() ? std::optional<IpAddress>(IpAddress()) : IpAddress::parse(sources[i]);
        if (!g || !g->is_multicast()) {
            std::fprintf(stderr, "amtgw: --group %s: must be a multicast address\n",
                         groups[i].c_str());
            return 2;
        }
        if (!s) {
            std::fprintf(stderr, "amtgw: --source %s: must be an IP address\n", sources[i].c_str());
            return 2;
        }
        Channel c{sources.empty() ? (g->is_v4() ? IpAddress::v4(0) : *IpAddress::parse("::")) : *s,
                  *g};
        config.channels.push_back(c);
    }
    const Family group_family = config.channels.front().group.family();
    if (!relay_text.empty()) {
        config.relay = IpAddress::parse(relay_text);
        if (!config.relay) {
            std::fprintf(stderr, "amtgw: --relay %s: must be an IP address\n", relay_text.c_str());
            return 2;
        }
    } else if (driad) {
        const IpAddress& s = config.channels.front().source;
        const auto records = lookup_amtrelay(s);
        const auto usable =
            std::find_if(records.begin(), records.end(),
                         [](const AmtRelayRecord& r) { return r.address.has_value(); });
        if (usable == records.end()) {
            std::fprintf(stderr, "amtgw: no AMTRELAY record with an address for %s\n",
                         reverse_dns_name(s).c_str());
            return 1;
        }
        // D=1: Requests may go straight to the relay; D=0: discover it first (RFC 8777 §4.2.2).
        if (usable->discovery_optional) {
            config.relay = usable->address;
        } else {
            config.discovery = *usable->address;
        }
    }
    if (!discovery_text.empty()) {
        const auto d = IpAddress::parse(discovery_text);
        if (!d) {
            std::fprintf(stderr, "amtgw: --discovery %s: must be an IP address\n",
                         discovery_text.c_str());
            return 2;
        }
        config.discovery = *d;
    } else if (!driad && group_family == Family::ipv6) {
        config.discovery = *IpAddress::parse("2001:3::1");
    }

    std::unique_ptr<Output> output;
    try {
        output = Output::open(output_spec);
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "amtgw: %s\n", e.what());
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    const Family outer = config.relay ? config.relay->family() : config.discovery.family();
    std::vector<Tunnel> tunnels(emulate);
    TsContinuity continuity;
    uint64_t delivered = 0;
    for (unsigned i = 0; i < emulate; ++i) {
        Tunnel& t = tunnels[i];
        t.fd = open_socket(outer, local_port ? static_cast<uint16_t>(local_port + i) : 0);
        if (t.fd < 0) {
            std::perror("amtgw: socket");
            return 1;
        }
        t.session = std::make_unique<GatewaySession>(config, csprng32);
        if (i == 0) {
            // The first tunnel's stream goes to the output; emulated ones are only counted.
            t.session->on_data = [&](ByteView ip) {
                const bool v4 = (ip[0] >> 4) == 4;
                const size_t ihl = v4 ? size_t{ip[0] & 0x0fu} * 4 : ipv6_header_size;
                const uint8_t proto = v4 ? ip[9] : ip[6];
                if (proto != ip_proto_udp || ip.size() < ihl + udp_header_size) return;
                if (port != 0 && load_be16(ip.data() + ihl + 2) != port) return;
                const ByteView payload = ip.subspan(ihl + udp_header_size);
                continuity.check(payload);
                output->write(payload);
                ++delivered;
            };
        }
        t.session->start(now());
        flush_outgoing(t);
    }

    const auto started = std::chrono::steady_clock::now();
    auto last_status = started;
    uint64_t last_bytes = 0;
    std::vector<pollfd> fds(tunnels.size());
    for (size_t i = 0; i < tunnels.size(); ++i)
        fds[i] = {tunnels[i].fd, POLLIN, 0};
    uint8_t buf[65536];
    while (!stop_requested) {
        poll(fds.data(), fds.size(), 100);
        for (size_t i = 0; i < tunnels.size(); ++i) {
            if (!(fds[i].revents & POLLIN)) continue;
            for (int burst = 0; burst < 64; ++burst) {
                sockaddr_storage from{};
                socklen_t from_len = sizeof(from);
                const ssize_t n = recvfrom(tunnels[i].fd, buf, sizeof(buf), MSG_DONTWAIT,
                                           reinterpret_cast<sockaddr*>(&from), &from_len);
                if (n <= 0) break;
                tunnels[i].session->on_datagram(from_sockaddr(from),
                                                ByteView(buf, static_cast<size_t>(n)), now());
            }
        }
        for (Tunnel& t : tunnels) {
            t.session->advance(now());
            flush_outgoing(t);
        }
        const auto wall = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(wall - started).count();
        if ((count != 0 && delivered >= count) || (duration > 0 && elapsed >= duration)) break;
        if (!quiet && wall - last_status >= std::chrono::seconds(1)) {
            uint64_t packets = 0, bytes = 0, joined = 0;
            for (const Tunnel& t : tunnels) {
                packets += t.session->data_packets();
                bytes += t.session->data_bytes();
                joined += t.session->state() == SessionState::joined;
            }
            const double secs = std::chrono::duration<double>(wall - last_status).count();
            const GatewaySession& s0 = *tunnels[0].session;
            std::fprintf(stderr,
                         "\ramtgw: %-11s relay %-15s %8llu pkts %7.2f Mbit/s  TS errors %llu  "
                         "tunnels %llu/%zu%s   ",
                         std::string(to_string(s0.state())).c_str(),
                         s0.relay() ? s0.relay()->to_string().c_str() : "?",
                         static_cast<unsigned long long>(packets),
                         (bytes - last_bytes) * 8 / secs / 1e6,
                         static_cast<unsigned long long>(continuity.errors()),
                         static_cast<unsigned long long>(joined), tunnels.size(),
                         s0.relay_refuses_new_endpoints() ? "  (relay is full/draining)" : "");
            last_bytes = bytes;
            last_status = wall;
        }
    }
    // Leave on exit: the relay stops the stream at once instead of waiting for the timeout.
    for (Tunnel& t : tunnels) {
        t.session->stop(now());
        flush_outgoing(t);
        close(t.fd);
    }
    uint64_t packets = 0;
    // Load tests need to know that every emulated gateway got every channel, not just a total.
    size_t complete = 0;
    uint64_t fewest = UINT64_MAX;
    for (const Tunnel& t : tunnels) {
        packets += t.session->data_packets();
        const auto& per_channel = t.session->channel_packets();
        complete +=
            std::all_of(per_channel.begin(), per_channel.end(), [](uint64_t n) { return n > 0; });
        for (const uint64_t n : per_channel)
            fewest = std::min(fewest, n);
    }
    if (!quiet) std::fprintf(stderr, "\n");
    std::fprintf(
        stderr, "amtgw: %llu packets received, %llu delivered, %llu TS continuity errors\n",
        static_cast<unsigned long long>(packets), static_cast<unsigned long long>(delivered),
        static_cast<unsigned long long>(continuity.errors()));
    std::fprintf(stderr,
                 "amtgw: %zu/%zu tunnels received on all %zu channels (fewest packets on one "
                 "tunnel's channel: %llu)\n",
                 complete, tunnels.size(), config.channels.size(),
                 static_cast<unsigned long long>(fewest));
    return 0;
}
