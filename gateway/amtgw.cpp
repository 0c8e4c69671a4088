// amtgw: an AMT gateway a person can use in one command.
//   amtgw amt://198.51.100.7@232.1.1.1:5000              (UDP to 127.0.0.1:5000: ffplay, VLC)
//   amtgw --http 8080 amt://198.51.100.7@232.1.1.1:5000  (a page and /S/G/PORT.ts streams)
// Without --relay it discovers a relay at the anycast address (or --discovery ADDR, or --driad
// through the source's AMTRELAY records). A status line on stderr shows state, relay, packets,
// bitrate and MPEG-TS continuity errors; --help is the manual.
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
#include "gateway/channel_hub.hpp"
#include "gateway/channel_url.hpp"
#include "gateway/driad.hpp"
#include "gateway/gateway_session.hpp"
#include "gateway/http_server.hpp"

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

// Wall-clock time as Unix seconds with milliseconds: comparable with tcpdump's and other logs.
std::string epoch_seconds() {
    const auto t = std::chrono::system_clock::now().time_since_epoch();
    char text[32];
    std::snprintf(text, sizeof(text), "%.3f", std::chrono::duration<double>(t).count());
    return text;
}

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

// Hands everything waiting on the tunnel's socket to its session (at most 64 datagrams a turn).
void receive_burst(Tunnel& t, uint8_t* buf, size_t size) {
    for (int burst = 0; burst < 64; ++burst) {
        sockaddr_storage from{};
        socklen_t from_len = sizeof(from);
        const ssize_t n =
            recvfrom(t.fd, buf, size, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n <= 0) return;
        t.session->on_datagram(from_sockaddr(from), ByteView(buf, static_cast<size_t>(n)), now());
    }
}

// Leaves every channel of the tunnel (the relay stops the stream at once) and closes it.
void leave(Tunnel& t) {
    t.session->stop(now());
    flush_outgoing(t);
    close(t.fd);
}

}  // namespace

namespace {

constexpr const char* help_footer = R"(
CHANNELS
  A channel is VLC's amt:// URL: amt://SOURCE@GROUP:PORT for SSM (S,G), amt://GROUP:PORT for
  ASM (*,G); IPv6 addresses in brackets: amt://[2001:db8::7]@[ff3e::8000:1]:5000. Without :PORT
  every UDP port of the group is handed on. --source/--group/--port say the same in flags.

RELAY
  Without --relay, amtgw discovers a relay at the AMT anycast address 192.52.193.1 (2001:3::1 for
  IPv6 groups), at --discovery ADDR, or through the source's AMTRELAY DNS records (--driad).
  A discovered relay that dies is left for another one: when a flowing stream stops for
  --data-timeout seconds amtgw asks the relay at once, and if 3-5 s of Requests go unanswered it
  discovers again (anycast then finds the next relay). Without it only the refresh (up to the
  relay's query interval, 125 s by default) would notice.

WATCHING
  Without --http the stream goes to --output (UDP to 127.0.0.1:5000 by default): open it with
  `ffplay udp://127.0.0.1:5000` or `vlc udp://@127.0.0.1:5000`.
  With --http [ADDR:]PORT amtgw serves (on 127.0.0.1 unless ADDR says otherwise):
    /                   a page: the joined channels, their state, bitrate and continuity
                        errors, a player for each, and a form to join another channel
    /S/G/PORT.ts        the channel as a continuous MPEG-TS stream ('any' for an ASM source or
                        for every port); VLC, mpv, ffplay and ffprobe open it directly. Viewers
                        of one channel share one tunnel; the tunnel leaves when the last viewer
                        has gone and the command line did not join the channel itself
    /status.json        the same state for scripts

EXAMPLES
  Watch in a browser (open http://127.0.0.1:8080/):
      amtgw --http 8080 amt://198.51.100.7@232.1.1.1:5000
  Serve nothing until someone joins from the page or opens a .ts URL:
      amtgw --http 8080
      mpv http://127.0.0.1:8080/198.51.100.7/232.1.1.1/5000.ts
  Through a known relay, to a player on UDP:
      amtgw --relay 192.0.2.1 amt://198.51.100.7@232.1.1.1:5000 &  ffplay udp://127.0.0.1:5000
  Record ten minutes to a file:
      amtgw --duration 600 --output capture.ts amt://198.51.100.7@232.1.1.1:5000

WHEN SOMETHING IS WRONG
  amtgw says so on its status line and on the page: no relay answered discovery (try --relay or
  --driad), the relay is draining or full (L flag: try another relay), no data after
  --no-data-warning seconds (the source may be down), the stream is not MPEG-TS (the page cannot
  play it; the .ts URL still works).

EXIT STATUS
  0 after a stop (Ctrl-C, --count, --duration); 1 when the relay or the network fails it;
  2 for a mistake on the command line, with a message that says which.
)";

struct RelayOptions {
    std::string relay_text, discovery_text;
    bool driad = false;
    bool teardown = true;
    double data_timeout = 4;
};

// The relay part of a session's configuration for these channels (they share one family).
std::optional<SessionConfig> relay_config(const RelayOptions& o,
                                          const std::vector<Channel>& channels,
                                          std::string& error) {
    SessionConfig config;
    config.teardown = o.teardown;
    config.data_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.data_timeout * 1000));
    config.channels = channels;
    const Family group_family = channels.front().group.family();
    if (!o.relay_text.empty()) {
        config.relay = IpAddress::parse(o.relay_text);
        if (!config.relay) {
            error = "--relay " + o.relay_text + ": must be an IP address";
            return std::nullopt;
        }
    } else if (o.driad) {
        const IpAddress& s = channels.front().source;
        const auto records = lookup_amtrelay(s);
        const auto usable =
            std::find_if(records.begin(), records.end(),
                         [](const AmtRelayRecord& r) { return r.address.has_value(); });
        if (usable == records.end()) {
            error = "no AMTRELAY record with an address for " + reverse_dns_name(s) +
                    ": name a relay with --relay ADDR";
            return std::nullopt;
        }
        // D=1: Requests may go straight to the relay; D=0: discover it first (RFC 8777 §4.2.2).
        if (usable->discovery_optional) {
            config.relay = usable->address;
        } else {
            config.discovery = *usable->address;
        }
    }
    if (!o.discovery_text.empty()) {
        const auto d = IpAddress::parse(o.discovery_text);
        if (!d) {
            error = "--discovery " + o.discovery_text + ": must be an IP address";
            return std::nullopt;
        }
        config.discovery = *d;
    } else if (!o.driad && group_family == Family::ipv6) {
        config.discovery = *IpAddress::parse("2001:3::1");
    }
    return config;
}

// The UDP payload of an inner IP packet when it goes to `port` (0: any), else an empty view.
ByteView udp_payload(ByteView ip, uint16_t port) {
    const bool v4 = (ip[0] >> 4) == 4;
    const size_t ihl = v4 ? size_t{ip[0] & 0x0fu} * 4 : ipv6_header_size;
    const uint8_t proto = v4 ? ip[9] : ip[6];
    if (proto != ip_proto_udp || ip.size() < ihl + udp_header_size) return {};
    if (port != 0 && load_be16(ip.data() + ihl + 2) != port) return {};
    return ip.subspan(ihl + udp_header_size);
}

bool whole_ts_packets(ByteView p) {
    if (p.empty() || p.size() % 188 != 0) return false;
    for (size_t off = 0; off < p.size(); off += 188) {
        if (p[off] != 0x47) return false;
    }
    return true;
}

// The page's files: --web, else beside the binary, else the source tree, else the installed copy.
std::string find_web_dir(const std::string& given) {
    if (!given.empty()) return given;
    std::vector<std::string> candidates;
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        std::string dir(exe, static_cast<size_t>(n));
        dir = dir.substr(0, dir.rfind('/'));
        candidates.push_back(dir + "/web");
    }
    candidates.push_back(AMTGW_SOURCE_WEB_DIR);
    candidates.push_back(AMTGW_INSTALLED_WEB_DIR);
    for (const std::string& c : candidates) {
        if (access((c + "/index.html").c_str(), R_OK) == 0) return c;
    }
    return candidates.back();
}

// What a person is told about one tunnel: its numbers once a second, and each problem once, in
// words (describe_problem), on stderr and (--http) on the page.
struct ChannelWatch {
    ChannelStatus status;
    TsContinuity continuity;
    std::string label;         // the channel's amt:// URL
    std::string discovery;     // where discovery goes
    bool relay_given = false;  // --relay named it
    std::string problem_said;  // the kind of problem last said, so each is said once
    std::string last_state;
    std::chrono::steady_clock::time_point state_since, last_data, last_rate;
    uint64_t rate_bytes = 0;

    ChannelWatch(std::string url, const SessionConfig& config, bool relay_named)
        : label(std::move(url)),
          discovery(config.discovery.to_string()),
          relay_given(relay_named),
          state_since(std::chrono::steady_clock::now()),
          last_data(state_since),
          last_rate(state_since) {}

    void saw(ByteView payload) {
        continuity.check(payload);
        if (!whole_ts_packets(payload)) status.mpeg_ts = false;
        status.data_seen = true;
        last_data = std::chrono::steady_clock::now();
    }

    void tick(const GatewaySession& s, std::chrono::steady_clock::time_point at,
              double no_data_after) {
        const std::string state(to_string(s.state()));
        if (state != last_state) {
            last_state = state;
            state_since = at;
            if (state == "joined") last_data = std::max(last_data, at);
        }
        ChannelStatus& st = status;
        st.state = state;
        st.relay = s.relay() ? s.relay()->to_string() : "";
        st.packets = s.data_packets();
        st.bytes = s.data_bytes();
        st.mbit_per_s = static_cast<double>(s.data_bytes() - rate_bytes) * 8 /
                        std::chrono::duration<double>(at - last_rate).count() / 1e6;
        rate_bytes = s.data_bytes();
        last_rate = at;
        st.ts_errors = continuity.errors();
        st.relay_refuses = s.relay_refuses_new_endpoints();
        st.seconds_in_state = std::chrono::duration<double>(at - state_since).count();
        st.seconds_since_data = std::chrono::duration<double>(at - last_data).count();
        st.problem = describe_problem(st, discovery, relay_given, no_data_after);
        // Said once when it starts (the seconds in the sentence grow; the kind does not).
        std::string kind = st.problem;
        kind.erase(std::remove_if(kind.begin(), kind.end(), ::isdigit), kind.end());
        if (kind != problem_said) {
            if (!st.problem.empty()) {
                std::fprintf(stderr, "\namtgw: %s: %s\n", label.c_str(), st.problem.c_str());
            }
            problem_said = kind;
        }
    }
};

// One channel's tunnel in --http mode.
struct HttpChannel {
    Tunnel tunnel;
    std::unique_ptr<ChannelWatch> watch;
};

int run_http(ChannelHub& hub, const RelayOptions& relay_options, const std::string& listen,
             const std::string& web_dir, double no_data_after, double duration, bool quiet) {
    std::string address, error;
    int http_port = 0;
    if (!parse_listen(listen, address, http_port, error)) {
        std::fprintf(stderr, "amtgw: %s\n", error.c_str());
        return 2;
    }
    GatewayHttp http(hub, web_dir);
    if (!http.start(address, http_port, error)) {
        std::fprintf(stderr, "amtgw: --http %s: %s\n", listen.c_str(), error.c_str());
        return 2;
    }
    const std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
    std::fprintf(stderr, "amtgw: open http://%s:%d/ in a browser (page: %s)\n", host.c_str(),
                 http_port, web_dir.c_str());
    for (const ChannelView& v : hub.snapshot()) {
        std::fprintf(stderr, "amtgw: %s plays at http://%s:%d%s\n", to_amt_url(v.spec).c_str(),
                     host.c_str(), http_port, stream_path(v.spec).c_str());
    }

    std::map<ChannelSpec, HttpChannel> channels;
    const auto started = std::chrono::steady_clock::now();
    auto last_status = started;
    std::vector<pollfd> fds;
    std::vector<HttpChannel*> by_fd;
    uint8_t buf[65536];
    int status = 0;
    while (!stop_requested) {
        const ChannelHub::Changes changes = hub.reconcile();
        for (const ChannelSpec& spec : changes.open) {
            const auto config = relay_config(relay_options, {{spec.source, spec.group}}, error);
            if (!config) {
                std::fprintf(stderr, "\namtgw: %s: %s\n", to_amt_url(spec).c_str(), error.c_str());
                hub.unpin(spec);
                continue;
            }
            HttpChannel& c = channels[spec];
            const Family outer =
                config->relay ? config->relay->family() : config->discovery.family();
            c.tunnel.fd = open_socket(outer, 0);
            if (c.tunnel.fd < 0) {
                std::perror("amtgw: socket");
                status = 1;
                break;
            }
            c.watch = std::make_unique<ChannelWatch>(to_amt_url(spec), *config,
                                                     !relay_options.relay_text.empty());
            c.tunnel.session = std::make_unique<GatewaySession>(*config, csprng32);
            c.tunnel.session->on_data = [&hub, watch = c.watch.get(), spec](ByteView ip) {
                const ByteView payload = udp_payload(ip, spec.port);
                if (payload.empty()) return;
                watch->saw(payload);
                hub.publish(spec, payload);
            };
            c.tunnel.session->start(now());
            flush_outgoing(c.tunnel);
            std::fprintf(stderr, "\namtgw: joining %s (%zu viewer(s))\n", to_amt_url(spec).c_str(),
                         hub.viewers(spec));
        }
        for (const ChannelSpec& spec : changes.leave) {
            const auto it = channels.find(spec);
            if (it == channels.end()) continue;
            leave(it->second.tunnel);
            channels.erase(it);
            std::fprintf(stderr, "\namtgw: left %s: no viewers\n", to_amt_url(spec).c_str());
        }
        if (status != 0) break;

        fds.clear();
        by_fd.clear();
        for (auto& [spec, c] : channels) {
            fds.push_back({c.tunnel.fd, POLLIN, 0});
            by_fd.push_back(&c);
        }
        if (fds.empty()) {
            usleep(100 * 1000);
        } else {
            poll(fds.data(), fds.size(), 100);
        }
        for (size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents & POLLIN) receive_burst(by_fd[i]->tunnel, buf, sizeof(buf));
        }
        for (auto& [spec, c] : channels) {
            c.tunnel.session->advance(now());
            flush_outgoing(c.tunnel);
        }

        const auto after = std::chrono::steady_clock::now();
        if (duration > 0 && std::chrono::duration<double>(after - started).count() >= duration)
            break;
        if (after - last_status < std::chrono::seconds(1)) continue;
        last_status = after;
        // Once a second: the page's numbers and the sentences for people.
        size_t viewers = 0;
        for (auto& [spec, c] : channels) {
            c.watch->tick(*c.tunnel.session, after, no_data_after);
            hub.set_status(spec, c.watch->status);
            viewers += hub.viewers(spec);
        }
        if (!quiet) {
            std::string line;
            for (const auto& [spec, c] : channels) {
                char one[160];
                const ChannelStatus& st = c.watch->status;
                std::snprintf(one, sizeof(one), "  %s %s %llu pkts %.2f Mbit/s TS errors %llu",
                              c.watch->label.c_str(), st.state.c_str(),
                              static_cast<unsigned long long>(st.packets), st.mbit_per_s,
                              static_cast<unsigned long long>(st.ts_errors));
                line += one;
            }
            std::fprintf(stderr, "\ramtgw: %zu channel(s), %zu viewer(s)%s   ", channels.size(),
                         viewers, line.c_str());
        }
    }
    http.stop();
    for (auto& [spec, c] : channels)
        leave(c.tunnel);
    if (!quiet) std::fprintf(stderr, "\n");
    std::fprintf(stderr, "amtgw: stopped; left %zu channel(s)\n", channels.size());
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "amtgw - watch multicast through an AMT relay (RFC 7450), in one command.\n\n"
        "SYNOPSIS\n"
        "  amtgw [OPTIONS] amt://SOURCE@GROUP:PORT ...\n"
        "  amtgw --http [ADDR:]PORT [amt://...]\n"
        "  amtgw [OPTIONS] --source S --group G [--port PORT]\n"};
    app.footer(help_footer);
    app.set_version_flag("--version", "amtgw " AMT_VERSION);
    RelayOptions relay_options;
    std::string output_spec = "udp://127.0.0.1:5000", http_listen, web_dir;
    std::vector<std::string> sources, groups, urls;
    int port = 0;
    bool quiet = false, no_teardown = false;
    uint64_t count = 0;
    double duration = 0, no_data_after = 10;
    unsigned emulate = 1;
    uint16_t local_port = 0;
    app.add_option("channels", urls, "amt://SOURCE@GROUP:PORT or amt://GROUP:PORT (see CHANNELS)");
    app.add_option("--relay", relay_options.relay_text, "relay unicast address (skips discovery)");
    app.add_option("--discovery", relay_options.discovery_text,
                   "relay discovery address (default 192.52.193.1, or 2001:3::1 for IPv6 groups)");
    app.add_flag("--driad", relay_options.driad,
                 "find the relay in the source's AMTRELAY DNS records (RFC 8777)");
    app.add_option("-s,--source", sources,
                   "source address S (repeat for several channels; omit for ASM)");
    app.add_option("-g,--group", groups, "group address G (repeat; pairs with --source in order)");
    app.add_option("-p,--port", port, "only hand on UDP datagrams to this port (default: all)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--http", http_listen,
                   "serve the page, /status.json and each channel as /S/G/PORT.ts on "
                   "[ADDR:]PORT (ADDR 127.0.0.1 unless given)");
    app.add_option("--web", web_dir, "the page's folder (default: found beside the binary)");
    app.add_option("--no-data-warning", no_data_after,
                   "seconds without data on a joined channel before saying so")
        ->capture_default_str();
    app.add_option("-o,--output", output_spec,
                   "without --http: udp://HOST:PORT, a file, '-' for stdout, or 'none'")
        ->capture_default_str();
    app.add_option("--count", count, "stop after this many packets");
    app.add_option("--duration", duration, "stop after this many seconds");
    app.add_option("--emulate", emulate, "act as N gateways (N sockets), for load tests")
        ->check(CLI::Range(1u, 100000u));
    app.add_option("--local-port", local_port, "first local UDP port (default: ephemeral)");
    app.add_option("--data-timeout", relay_options.data_timeout,
                   "seconds without data on a flowing tunnel before asking the relay whether it "
                   "is alive (0: only at the refresh)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 3600.0));
    app.add_flag("--no-teardown", no_teardown, "never send Teardown");
    app.add_flag("-q,--quiet", quiet, "no status line");
    CLI11_PARSE(app, argc, argv);
    relay_options.teardown = !no_teardown;

    // Every channel, from the URLs and the flags, checked with a message that says what is wrong.
    std::vector<ChannelSpec> specs;
    for (const std::string& u : urls) {
        const ParsedChannel c = parse_amt_url(u);
        if (!c.channel) {
            std::fprintf(stderr, "amtgw: %s\n", c.error.c_str());
            return 2;
        }
        specs.push_back(*c.channel);
    }
    if (!sources.empty() && sources.size() != groups.size()) {
        std::fprintf(stderr, "amtgw: give one --source per --group (or none for ASM)\n");
        return 2;
    }
    for (size_t i = 0; i < groups.size(); ++i) {
        const ParsedChannel c =
            make_channel(sources.empty() ? "" : sources[i], groups[i], static_cast<uint16_t>(port));
        if (!c.channel) {
            std::fprintf(stderr, "amtgw: %s\n", c.error.c_str());
            return 2;
        }
        specs.push_back(*c.channel);
    }
    if (specs.empty() && http_listen.empty()) {
        std::fprintf(stderr,
                     "amtgw: name a channel, e.g. amtgw amt://198.51.100.7@232.1.1.1:5000, or "
                     "serve a page with --http 8080 (amtgw --help has examples)\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);  // a viewer that hangs up must not end amtgw

    if (!http_listen.empty()) {
        ChannelHub hub;
        for (const ChannelSpec& s : specs)
            hub.pin(s);
        return run_http(hub, relay_options, http_listen, find_web_dir(web_dir), no_data_after,
                        duration, quiet);
    }

    // Without --http: every channel in one tunnel (or --emulate N), the stream to --output.
    std::vector<Channel> channel_list;
    for (const ChannelSpec& s : specs)
        channel_list.push_back({s.source, s.group});
    if (port == 0) port = specs.front().port;  // a URL's :PORT filters like --port
    std::string error;
    const auto relay = relay_config(relay_options, channel_list, error);
    if (!relay) {
        std::fprintf(stderr, "amtgw: %s\n", error.c_str());
        return relay_options.driad && relay_options.relay_text.empty() ? 1 : 2;
    }
    const SessionConfig config = *relay;

    std::unique_ptr<Output> output;
    try {
        output = Output::open(output_spec);
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "amtgw: %s\n", e.what());
        return 2;
    }

    const Family outer = config.relay ? config.relay->family() : config.discovery.family();
    std::vector<Tunnel> tunnels(emulate);
    // The first tunnel's state is what the person is told about.
    std::string label = to_amt_url(specs.front());
    if (specs.size() > 1) label += " and " + std::to_string(specs.size() - 1) + " more";
    ChannelWatch watch(label, config, !relay_options.relay_text.empty());
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
            // What happens to the relay, on its own line with the wall time (the fleet test reads
            // which relay each gateway was given, and when).
            t.session->on_event = [quiet](const std::string& what) {
                std::fprintf(stderr, "%samtgw: %s: %s\n", quiet ? "" : "\n",
                             epoch_seconds().c_str(), what.c_str());
            };
            // The first tunnel's stream goes to the output; emulated ones are only counted.
            t.session->on_data = [&](ByteView ip) {
                const ByteView payload = udp_payload(ip, static_cast<uint16_t>(port));
                if (payload.empty()) return;
                watch.saw(payload);
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
            if (fds[i].revents & POLLIN) receive_burst(tunnels[i], buf, sizeof(buf));
        }
        for (Tunnel& t : tunnels) {
            t.session->advance(now());
            flush_outgoing(t);
        }
        const auto wall = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(wall - started).count();
        if ((count != 0 && delivered >= count) || (duration > 0 && elapsed >= duration)) break;
        if (wall - last_status < std::chrono::seconds(1)) continue;
        watch.tick(*tunnels[0].session, wall, no_data_after);
        if (quiet) {
            last_status = wall;
        } else {
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
                         static_cast<unsigned long long>(watch.continuity.errors()),
                         static_cast<unsigned long long>(joined), tunnels.size(),
                         s0.relay_refuses_new_endpoints() ? "  (relay is full/draining)" : "");
            last_bytes = bytes;
            last_status = wall;
        }
    }
    // Leave on exit: the relay stops the stream at once instead of waiting for the timeout.
    for (Tunnel& t : tunnels)
        leave(t);
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
        static_cast<unsigned long long>(watch.continuity.errors()));
    std::fprintf(stderr,
                 "amtgw: %zu/%zu tunnels received on all %zu channels (fewest packets on one "
                 "tunnel's channel: %llu)\n",
                 complete, tunnels.size(), config.channels.size(),
                 static_cast<unsigned long long>(fewest));
    return 0;
}
