// The handshake section: MAC algorithms, Request→Query on a worker's responder, Update
// processing on the control thread's engine.
#include <array>
#include <string>
#include <vector>

#include "bench_result.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/relay_engine.hpp"

namespace amt::bench {

namespace {

struct NullSink : EngineSink {
    size_t bytes = 0;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView p) override {
        bytes += p.size();
    }
    void flow_edit(const FlowEdit&) override {}
    void upstream_change(const FlowKey&, bool) override {}
};

// Captures the Query's MAC so that Updates can be built for it.
struct QuerySink : NullSink {
    ResponseMac mac{};
    uint32_t nonce = 0;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView p) override {
        MembershipQuery q;
        if (parse_membership_query(p, q) == ParseError::ok) {
            mac = q.mac;
            nonce = q.nonce;
        }
    }
};

UdpEndpoint gateway(uint32_t i) {
    return {IpAddress::v4(0x0a000000u + i), static_cast<uint16_t>(1024 + i % 60000)};
}

void bench_macs(double seconds, std::vector<Result>& out) {
    MacSecret key{};
    random_secret(key);
    for (MacAlgorithm alg : {MacAlgorithm::aes_cmac_128, MacAlgorithm::hmac_sha256}) {
        MacComputer mac(alg, key);
        std::vector<MacInput> in(32);
        for (uint32_t i = 0; i < in.size(); ++i)
            in[i] = {gateway(i), i};
        std::vector<ResponseMac> macs(in.size());
        const double single = rate(seconds, 1, [&] { macs[0] = mac.compute(in[0]); });
        const double batch = rate(seconds, in.size(), [&] { mac.compute_batch(in, macs); });
        out.push_back({"handshake", "mac " + std::string(to_string(alg)) + " single", 1e9 / single,
                       "ns/MAC"});
        out.push_back({"handshake", "mac " + std::string(to_string(alg)) + " batch of 32",
                       1e9 / batch, "ns/MAC"});
    }
}

// One relay address, and no reply rate limit: the benchmark sends from few sources.
EngineConfig unlimited_config() {
    EngineConfig config;
    config.relay_addresses = {*IpAddress::parse("192.0.2.1")};
    config.limits.replies_per_second_per_source_ip = 1e12;
    config.limits.reply_burst_per_source_ip = 1e12;
    config.limits.replies_per_second = 1e9;
    config.limits.reply_burst = 1e9;
    return config;
}

void bench_responder(double seconds, std::vector<Result>& out) {
    const EngineConfig config = unlimited_config();
    SecretStore secrets(Time{0});
    ReplyGuard guard(config.limits);
    HandshakeResponder responder(config, secrets, guard);
    NullSink sink;
    std::vector<std::array<uint8_t, 8>> requests(32);
    std::vector<Datagram> batch(32);
    for (uint32_t i = 0; i < batch.size(); ++i) {
        build_request(requests[i], {.nonce = i});
        batch[i] = {gateway(i), {config.relay_addresses[0], amt_udp_port}, ByteView(requests[i])};
    }
    Time now{1};
    const double r = rate(seconds, batch.size(), [&] { responder.respond(batch, now, sink); });
    out.push_back({"handshake", "Request→Query, burst of 32, one core", r / 1e6, "M/s"});
}

void bench_updates(double seconds, std::vector<Result>& out) {
    const EngineConfig config = unlimited_config();
    SecretStore secrets(Time{0});
    QuerySink sink;
    RelayEngine engine(config, secrets, sink);
    const UdpEndpoint relay{config.relay_addresses[0], amt_udp_port};
    // 4096 gateways, each with a valid Update that refreshes its (S,G): the steady state of a
    // relay, one accepted Update per gateway per query interval.
    constexpr uint32_t gateways = 4096;
    std::vector<std::vector<uint8_t>> updates(gateways);
    const IpAddress source = *IpAddress::parse("198.51.100.7");
    for (uint32_t i = 0; i < gateways; ++i) {
        uint8_t req[8], report[64];
        build_request(req, {.nonce = i});
        engine.handle({gateway(i), relay, ByteView(req)}, Time{1});
        ReportBuilder b(report, Family::ipv4);
        b.add_record(RecordType::mode_is_include, IpAddress::v4(0xe8010000u + i % 64),
                     std::span(&source, 1));
        updates[i].resize(128);
        updates[i].resize(build_membership_update(updates[i], sink.mac, sink.nonce,
                                                  ByteView(report, b.finish())));
    }
    uint32_t next = 0;
    const double r = rate(seconds, 1, [&] {
        const uint32_t i = next++ % gateways;
        engine.handle({gateway(i), relay, ByteView(updates[i])}, Time{2});
    });
    out.push_back({"handshake", "Update (IS_IN refresh) on the control thread", r / 1e6, "M/s"});
}

}  // namespace

void bench_handshake(double seconds, std::vector<Result>& out) {
    bench_macs(seconds, out);
    bench_responder(seconds, out);
    bench_updates(seconds, out);
}

}  // namespace amt::bench
