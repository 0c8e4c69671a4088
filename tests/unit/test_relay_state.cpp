// Hitless restart (controlplane/relay_state.hpp): the state file's codec, every bad-file case the
// loader must refuse with a reason, and a differential round trip of the engine: endpoints loaded
// through real handshakes into engine A, saved, encoded, decoded and restored into engine B with a
// fresh SecretStore; B must hold the same tunnels, emit the same forwarding table and upstream
// joins, accept the MACs A handed out, answer Requests with A's MAC and expire like A.
// AMT_STATE_ENDPOINTS sets the round trip's size (default 20,000; 1,000,000 for BENCHMARKS.md).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "common/packet_headers.hpp"
#include "controlplane/relay_engine.hpp"
#include "controlplane/relay_state.hpp"

using namespace amt;

namespace {

using Clock = std::chrono::steady_clock;
const IpAddress relay_ip = *IpAddress::parse("192.0.2.1");
const UdpEndpoint relay{relay_ip, amt_udp_port};

// Keeps the forwarding table and the upstream joins the engine's edits describe, and the last
// Query's nonce and MAC.
struct TableSink : EngineSink {
    ResponseMac mac{};
    uint32_t nonce = 0;
    std::vector<uint8_t> last_reply;
    std::map<FlowKey, std::set<UdpEndpoint>> table;
    std::set<FlowKey> joined;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView payload) override {
        last_reply.assign(payload.begin(), payload.end());
        MembershipQuery q;
        if (parse_membership_query(payload, q) == ParseError::ok) {
            mac = q.mac;
            nonce = q.nonce;
        }
    }
    void flow_edit(const FlowEdit& e) override {
        switch (e.op) {
            case FlowOp::create_flow:
                table[e.key];
                break;
            case FlowOp::delete_flow:
                table.erase(e.key);
                break;
            case FlowOp::add_tunnel:
                table[e.key].insert(e.tunnel);
                break;
            case FlowOp::remove_tunnel:
                table[e.key].erase(e.tunnel);
                break;
        }
    }
    void upstream_change(const FlowKey& key, bool join) override {
        if (join) {
            joined.insert(key);
        } else {
            joined.erase(key);
        }
    }
};

struct CountingSink : EngineSink {
    size_t edits = 0;
    void send_reply(const UdpEndpoint&, const UdpEndpoint&, ByteView) override {}
    void flow_edit(const FlowEdit&) override { ++edits; }
    void upstream_change(const FlowKey&, bool) override {}
};

EngineConfig config_for(uint32_t endpoints) {
    EngineConfig c;
    c.relay_addresses = {relay_ip};
    c.asm_enabled = true;
    c.limits.max_endpoints = endpoints;
    c.limits.replies_per_second_per_source_ip = 1e9;
    c.limits.replies_per_second = 1e9;
    c.limits.reply_burst = 1e9;
    return c;
}

UdpEndpoint gateway(size_t i) {
    return {IpAddress::v4(0x0a000000u + static_cast<uint32_t>(i)),
            static_cast<uint16_t>(1024 + i % 60000)};
}

// Request → Query → Update for gateway i: one SSM channel with 1-3 sources, and every 7th also
// an ASM group in EXCLUDE mode blocking one source.
void join(RelayEngine& engine, TableSink& sink, size_t i, Time now) {
    uint8_t request[8], report[256], update[320];
    build_request(request, {.nonce = static_cast<uint32_t>(i)});
    engine.handle({gateway(i), relay, ByteView(request)}, now);
    ReportBuilder b(report, Family::ipv4);
    std::vector<IpAddress> sources;
    for (size_t k = 0; k <= i % 3; ++k)
        sources.push_back(IpAddress::v4(0xc6336400u + static_cast<uint32_t>((i + k) % 10)));
    std::sort(sources.begin(), sources.end());
    b.add_record(RecordType::allow_new_sources, IpAddress::v4(0xe8010000u + i % 100),
                 std::span(sources));
    if (i % 7 == 0) {
        const IpAddress blocked = IpAddress::v4(0xc6336463u);
        b.add_record(RecordType::change_to_exclude, IpAddress::v4(0xef010000u + i % 5),
                     std::span(&blocked, 1));
    }
    const size_t len =
        build_membership_update(update, sink.mac, sink.nonce, ByteView(report, b.finish()));
    engine.handle({gateway(i), relay, ByteView(update, len)}, now);
}

size_t endpoints_to_load() {
    const char* env = std::getenv("AMT_STATE_ENDPOINTS");
    return env ? std::strtoul(env, nullptr, 10) : 20'000;
}

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

RelayState small_state() {
    RelayState s;
    s.saved_at_unix_ns = 1'700'000'000'000'000'000;
    s.relay_addresses = {relay_ip, *IpAddress::parse("2001:db8::1")};
    s.secrets.current.fill(0x11);
    s.secrets.previous.fill(0x22);
    s.secrets.current_age = std::chrono::seconds(30);
    s.secrets.previous_remaining = std::chrono::seconds(200);
    SavedEndpoint e{.address = gateway(1),
                    .relay = relay,
                    .last_nonce = 7,
                    .last_mac = {1, 2, 3, 4, 5, 6},
                    .remaining = std::chrono::seconds(100)};
    e.groups.push_back({.group = *IpAddress::parse("232.1.1.1"),
                        .sources = {*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2")}});
    e.groups.push_back({.group = *IpAddress::parse("239.1.1.1"), .mode = FilterMode::exclude});
    s.endpoints.push_back(e);
    SavedEndpoint e6{.address = {*IpAddress::parse("2001:db8:100::10"), 4000},
                     .relay = {*IpAddress::parse("2001:db8::1"), amt_udp_port},
                     .remaining = std::chrono::seconds(5)};
    e6.groups.push_back({.group = *IpAddress::parse("ff3e::8000:1"),
                         .older_version_host = true,
                         .sources = {*IpAddress::parse("2001:db8:5::1")}});
    s.endpoints.push_back(e6);
    return s;
}

// Rewrites the header's CRC so that a crafted payload gets past the checksum to the decoder.
void fix_crc(std::vector<uint8_t>& file) {
    const uint32_t crc = crc32c(ByteView(file).subspan(32));
    std::memcpy(file.data() + 24, &crc, 4);
}

bool same(const SavedEndpoint& a, const SavedEndpoint& b) {
    return a.address == b.address && a.relay == b.relay && a.last_nonce == b.last_nonce &&
           a.last_mac == b.last_mac && a.remaining == b.remaining && a.groups == b.groups;
}

}  // namespace

TEST(RelayStateCodec, RoundTripKeepsEveryField) {
    const RelayState s = small_state();
    std::vector<uint8_t> file;
    encode_state(s, file);
    RelayState back;
    ASSERT_EQ(decode_state(file, back), "");
    EXPECT_EQ(back.saved_at_unix_ns, s.saved_at_unix_ns);
    EXPECT_EQ(back.relay_addresses, s.relay_addresses);
    EXPECT_EQ(back.secrets.current, s.secrets.current);
    EXPECT_EQ(back.secrets.previous, s.secrets.previous);
    EXPECT_EQ(back.secrets.current_age, s.secrets.current_age);
    EXPECT_EQ(back.secrets.previous_remaining, s.secrets.previous_remaining);
    ASSERT_EQ(back.endpoints.size(), 2u);
    EXPECT_TRUE(same(back.endpoints[0], s.endpoints[0]));
    EXPECT_TRUE(same(back.endpoints[1], s.endpoints[1]));
}

TEST(RelayStateCodec, CrcIsCastagnoli) {
    const std::string check = "123456789";  // the standard check input
    EXPECT_EQ(crc32c(ByteView(reinterpret_cast<const uint8_t*>(check.data()), check.size())),
              0xe3069283u);
}

TEST(RelayStateCodec, RefusesEveryTruncation) {
    std::vector<uint8_t> file;
    encode_state(small_state(), file);
    for (size_t n = 0; n < file.size(); ++n) {
        RelayState out;
        EXPECT_NE(decode_state(ByteView(file.data(), n), out), "") << "length " << n;
    }
    RelayState out;
    EXPECT_NE(decode_state(ByteView(file.data(), 0), out).find("truncated"), std::string::npos);
}

TEST(RelayStateCodec, RefusesEveryFlippedOctet) {
    std::vector<uint8_t> file;
    encode_state(small_state(), file);
    for (size_t i = 0; i < file.size(); ++i) {
        std::vector<uint8_t> bad = file;
        bad[i] ^= 0x40;
        RelayState out;
        EXPECT_NE(decode_state(bad, out), "") << "octet " << i;
    }
}

TEST(RelayStateCodec, NamesTheReason) {
    std::vector<uint8_t> file;
    encode_state(small_state(), file);
    RelayState out;
    std::vector<uint8_t> v = file;
    v[0] = 'X';
    EXPECT_EQ(decode_state(v, out), "not a relay state file");
    v = file;
    v[8] = 2;
    EXPECT_EQ(decode_state(v, out), "version 2, this relay reads version 1");
    v = file;
    v.push_back(0);
    EXPECT_NE(decode_state(v, out).find("truncated or padded"), std::string::npos);
    v = file;
    v[40] ^= 1;
    EXPECT_EQ(decode_state(v, out), "checksum mismatch (corrupt)");
}

TEST(RelayStateCodec, RefusesCraftedContentPastTheChecksum) {
    const auto refuse = [](RelayState s, const char* reason) {
        std::vector<uint8_t> file;
        encode_state(s, file);
        fix_crc(file);
        RelayState out;
        EXPECT_EQ(decode_state(file, out), reason);
    };
    RelayState s = small_state();
    std::swap(s.endpoints[0].groups[0].sources[0], s.endpoints[0].groups[0].sources[1]);
    refuse(s, "source list not sorted and unique");
    s = small_state();
    s.endpoints[0].groups[1] = s.endpoints[0].groups[0];
    refuse(s, "a group listed twice");
    s = small_state();
    s.endpoints[0].groups[0].group = *IpAddress::parse("10.1.1.1");
    refuse(s, "a group that is not multicast");
    s = small_state();
    s.endpoints[0].groups[0].sources.clear();
    refuse(s, "an empty membership (INCLUDE{})");
    s = small_state();
    s.endpoints[0].groups.clear();
    refuse(s, "group count out of range");
    s = small_state();
    s.endpoints[1].remaining = std::chrono::seconds(-1);
    refuse(s, "negative time");
    s = small_state();
    s.endpoints[1].groups[0].sources[0] = *IpAddress::parse("10.0.0.1");
    refuse(s, "a source of the other family");
}

TEST(RelayStateFits, AddressesAndAge) {
    const RelayState s = small_state();
    const auto addrs = s.relay_addresses;
    const int64_t t = s.saved_at_unix_ns;
    EXPECT_EQ(state_fits(s, {addrs[1], addrs[0]}, std::chrono::seconds(270), t + 1), "");
    EXPECT_NE(
        state_fits(s, {addrs[0]}, std::chrono::seconds(270), t).find("relay.addresses changed"),
        std::string::npos);
    EXPECT_NE(state_fits(s, addrs, std::chrono::seconds(270), t + 271'000'000'000)
                  .find("longer than relay.membership_timeout"),
              std::string::npos);
    EXPECT_NE(state_fits(s, addrs, std::chrono::seconds(270), t - 1), "");
}

TEST(RelayStateEngine, RestoredEngineBehavesLikeTheOriginal) {
    const size_t n = endpoints_to_load();
    const EngineConfig config = config_for(static_cast<uint32_t>(n));
    const Time t0{1'000'000'000'000};
    SecretStore secrets_a(t0);
    TableSink sink_a;
    RelayEngine a(config, secrets_a, sink_a);
    std::vector<std::pair<uint32_t, ResponseMac>> handed_out(n);
    for (size_t i = 0; i < n; ++i) {
        // Spread over 100 s so that the endpoints expire at different times.
        join(a, sink_a, i, t0 + std::chrono::milliseconds(100'000 * i / n));
        handed_out[i] = {sink_a.nonce, sink_a.mac};
    }
    ASSERT_EQ(a.memberships().endpoint_count(), n);
    const Time saved_at = t0 + std::chrono::seconds(120);

    auto t = Clock::now();
    RelayState state;
    a.save_state(saved_at, state);
    const double save_ms = ms_since(t);
    t = Clock::now();
    std::vector<uint8_t> file;
    encode_state(state, file);
    const double encode_ms = ms_since(t);
    t = Clock::now();
    RelayState loaded;
    ASSERT_EQ(decode_state(file, loaded), "");
    const double decode_ms = ms_since(t);

    // The new process: another clock epoch and its own random secret, 3 s after the save.
    const Time b0{5'000'000'000'000};
    const Time elapsed = std::chrono::seconds(3);
    for (SavedEndpoint& e : loaded.endpoints)
        e.remaining -= std::min(e.remaining, elapsed);  // what the daemon does with the file's age
    loaded.secrets.current_age += elapsed;
    loaded.secrets.previous_remaining -= std::min(loaded.secrets.previous_remaining, elapsed);
    SecretStore secrets_b(b0);
    TableSink sink_b;
    RelayEngine b(config, secrets_b, sink_b);
    t = Clock::now();
    const size_t restored = b.restore_state(loaded, b0);
    const double restore_ms = ms_since(t);
    std::printf(
        "endpoints %zu: save %.1f ms, encode %.1f ms, file %.1f MB (%.1f B/endpoint), decode %.1f "
        "ms, restore %.1f ms\n",
        n, save_ms, encode_ms, static_cast<double>(file.size()) / 1e6,
        static_cast<double>(file.size()) / static_cast<double>(n), decode_ms, restore_ms);

    // What the daemon's periodic snapshot costs the control thread: one fork() of this heap (the
    // child encodes; here it only exits).
    t = Clock::now();
    const pid_t child = fork();
    if (child == 0) _exit(0);
    const double fork_ms = ms_since(t);
    ASSERT_GT(child, 0);
    waitpid(child, nullptr, 0);
    // The restore itself, with a sink that keeps no model table (as the daemon's publisher).
    {
        SecretStore secrets_c(b0);
        CountingSink counting;
        RelayEngine c(config, secrets_c, counting);
        t = Clock::now();
        c.restore_state(loaded, b0);
        std::printf(
            "fork of the engine's process: %.1f ms; restore with a counting sink: %.1f ms "
            "(%zu edits)\n",
            fork_ms, ms_since(t), counting.edits);
    }

    EXPECT_EQ(restored, n);
    EXPECT_EQ(b.memberships().endpoint_count(), n);
    EXPECT_EQ(sink_b.table, sink_a.table);
    EXPECT_EQ(sink_b.joined, sink_a.joined);
    EXPECT_FALSE(sink_a.joined.empty());

    // An Update in flight from the old process's handshake verifies at the new one, and a Request
    // is answered with the same MAC (the same secret and the same binding).
    for (size_t i : {size_t{0}, n / 2, n - 1}) {
        uint8_t report[64], update[128], request[8];
        ReportBuilder rb(report, Family::ipv4);
        const IpAddress s = IpAddress::v4(0xc6336401u);
        rb.add_record(RecordType::allow_new_sources, IpAddress::v4(0xe8020000u), std::span(&s, 1));
        const size_t len = build_membership_update(
            update, handed_out[i].second, handed_out[i].first, ByteView(report, rb.finish()));
        const uint64_t failures = b.counters().mac_failures.value();
        b.handle({gateway(i), relay, ByteView(update, len)}, b0 + std::chrono::milliseconds(1));
        a.handle({gateway(i), relay, ByteView(update, len)},  // the same at A keeps them alike
                 saved_at + elapsed + std::chrono::milliseconds(1));
        EXPECT_EQ(b.counters().mac_failures.value(), failures) << "endpoint " << i;
        EXPECT_TRUE(sink_b.table.count({s, IpAddress::v4(0xe8020000u)})) << "endpoint " << i;

        build_request(request, {.nonce = 99});
        a.handle({gateway(i), relay, ByteView(request)}, saved_at);
        b.handle({gateway(i), relay, ByteView(request)}, b0);
        EXPECT_EQ(sink_b.mac, sink_a.mac) << "endpoint " << i;
    }

    // Timers continue from what remained: both expire the same endpoints over the next 300 s,
    // the restored one never earlier and at most one timer tick (100 ms) later.
    for (int step = 1; step <= 300; ++step) {
        const Time at = std::chrono::seconds(step);
        a.advance(saved_at + elapsed + at);
        b.advance(b0 + at);
        ASSERT_GE(b.memberships().endpoint_count(), a.memberships().endpoint_count())
            << "after " << step << " s";
        b.advance(b0 + at + std::chrono::milliseconds(100));
        ASSERT_LE(b.memberships().endpoint_count(), a.memberships().endpoint_count())
            << "after " << step << " s and one tick";
    }
    EXPECT_EQ(a.memberships().endpoint_count(), 0u);
    EXPECT_EQ(b.memberships().endpoint_count(), 0u);
}

TEST(RelayStateEngine, RestoreSkipsWhatTodaysConfigurationRefuses) {
    RelayState s = small_state();
    EngineConfig config = config_for(100);
    config.relay_addresses = {relay_ip};  // the IPv6 relay address is gone
    config.asm_enabled = false;           // and ASM switched off
    SecretStore secrets(Time{0});
    TableSink sink;
    RelayEngine engine(config, secrets, sink);
    EXPECT_EQ(engine.restore_state(s, Time{1'000'000'000}), 1u);
    ASSERT_EQ(engine.memberships().endpoint_count(), 1u);
    const EndpointRecord& r = engine.memberships().endpoint(engine.memberships().find(gateway(1)));
    ASSERT_EQ(r.groups.size(), 1u);  // the ASM group was not restored
    EXPECT_EQ(r.groups[0].group, *IpAddress::parse("232.1.1.1"));
    EXPECT_EQ(secrets.snapshot().current, s.secrets.current);
    EXPECT_EQ(secrets.snapshot().previous, s.secrets.previous);
}

// Issue 18 item 2: a restore keeps today's flow budgets, as an Update would: sources beyond
// limits.max_flows_per_endpoint are left out, and an EXCLUDE group without room is not restored.
TEST(RelayStateEngine, RestoreKeepsTheFlowBudgets) {
    EngineConfig config = config_for(100);
    config.limits.max_flows_per_endpoint = 1;
    SecretStore secrets(Time{0});
    TableSink sink;
    RelayEngine engine(config, secrets, sink);
    EXPECT_EQ(engine.restore_state(small_state(), Time{1'000'000'000}), 1u);
    const EndpointRecord& r = engine.memberships().endpoint(engine.memberships().find(gateway(1)));
    ASSERT_EQ(r.groups.size(), 1u);
    EXPECT_EQ(r.groups[0].group, *IpAddress::parse("232.1.1.1"));
    EXPECT_EQ(r.groups[0].sources, std::vector<IpAddress>{*IpAddress::parse("10.0.0.1")});
    EXPECT_EQ(engine.memberships().flows_of(engine.memberships().find(gateway(1))), 1u);
}
