// amtgw for people: the amt:// URL forms (good and bad, with the message a person sees), the
// stream paths, --http's [ADDR:]PORT, the viewer counting that decides when a tunnel opens and
// leaves (ChannelHub), the fan-out of one tunnel's datagrams to several viewers, and the
// sentences shown when something is wrong.
#include <gtest/gtest.h>

#include <thread>

#include "gateway/channel_hub.hpp"
#include "gateway/channel_url.hpp"
#include "gateway/http_server.hpp"

using namespace amt;
using namespace std::chrono_literals;

namespace {

ChannelSpec url(const char* text) {
    const ParsedChannel c = parse_amt_url(text);
    EXPECT_TRUE(c.channel) << text << ": " << c.error;
    return c.channel.value_or(ChannelSpec{});
}

std::string url_error(const char* text) {
    const ParsedChannel c = parse_amt_url(text);
    EXPECT_FALSE(c.channel) << text << " parsed";
    return c.error;
}

}  // namespace

TEST(AmtUrl, SsmWithPort) {
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    EXPECT_EQ(c.source, *IpAddress::parse("198.51.100.7"));
    EXPECT_EQ(c.group, *IpAddress::parse("232.1.1.1"));
    EXPECT_EQ(c.port, 5000);
    EXPECT_FALSE(c.any_source());
    EXPECT_EQ(to_amt_url(c), "amt://198.51.100.7@232.1.1.1:5000");
}

TEST(AmtUrl, AsmAndNoPort) {
    const ChannelSpec asm_ch = url("amt://239.1.2.3:1234");
    EXPECT_TRUE(asm_ch.any_source());
    EXPECT_EQ(asm_ch.port, 1234);
    const ChannelSpec no_port = url("amt://198.51.100.7@232.1.1.1");
    EXPECT_EQ(no_port.port, 0);
    EXPECT_EQ(to_amt_url(no_port), "amt://198.51.100.7@232.1.1.1");
    // Pasted without the scheme, or with a trailing slash, as people do.
    EXPECT_EQ(url("198.51.100.7@232.1.1.1:5000"), url("amt://198.51.100.7@232.1.1.1:5000/"));
}

TEST(AmtUrl, Ipv6InBrackets) {
    const ChannelSpec c = url("amt://[2001:db8::7]@[ff3e::8000:1]:5000");
    EXPECT_EQ(c.source, *IpAddress::parse("2001:db8::7"));
    EXPECT_EQ(c.group, *IpAddress::parse("ff3e::8000:1"));
    EXPECT_EQ(c.port, 5000);
    EXPECT_EQ(to_amt_url(c), "amt://[2001:db8::7]@[ff3e::8000:1]:5000");
    const ChannelSpec asm6 = url("amt://[ff3e::1]");
    EXPECT_TRUE(asm6.any_source());
    EXPECT_EQ(asm6.port, 0);
}

TEST(AmtUrl, BadFormsSayWhatIsWrong) {
    const std::pair<const char*, const char*> cases[] = {
        {"amt://", "names no channel"},
        {"udp://232.1.1.1:5000", "not an amt:// URL"},
        {"amt://198.51.100.7@10.1.1.1:5000", "not a multicast address"},
        {"amt://232.1.1.1@232.1.1.2:5000", "is a multicast address"},
        {"amt://198.51.100.7@232.1.1.1:70000", "from 1 to 65535"},
        {"amt://198.51.100.7@232.1.1.1:", "from 1 to 65535"},
        {"amt://198.51.100.7@232.1.1.1:50x", "'50x'"},
        {"amt://2001:db8::7@[ff3e::1]:5000", "in brackets"},
        {"amt://ff3e::1", "in brackets"},
        {"amt://[ff3e::1:5000", "closing ']'"},
        {"amt://[2001:db8::7]@232.1.1.1:5000", "different IP versions"},
        {"amt://source@232.1.1.1", "'source' is not an IP address"},
        {"amt://[ff3e::1]x", "expected ':PORT'"},
    };
    for (const auto& [input, says] : cases) {
        const std::string error = url_error(input);
        EXPECT_NE(error.find(says), std::string::npos) << input << " -> " << error;
        // Every message shows what was typed.
        EXPECT_NE(error.find(input), std::string::npos) << input << " -> " << error;
    }
}

TEST(AmtUrl, FlagsFormChecksTheSame) {
    EXPECT_TRUE(make_channel("", "232.1.1.1", 5000).channel->any_source());
    EXPECT_NE(make_channel("198.51.100.7", "10.0.0.1", 0).error.find("not a multicast"),
              std::string::npos);
    EXPECT_NE(make_channel("x", "232.1.1.1", 0).error.find("--source 'x'"), std::string::npos);
}

TEST(StreamPath, RoundTrips) {
    for (const char* text : {"amt://198.51.100.7@232.1.1.1:5000", "amt://239.1.1.1",
                             "amt://[2001:db8::7]@[ff3e::8000:1]:5000", "amt://[ff3e::1]:9"}) {
        const ChannelSpec c = url(text);
        const auto back = parse_stream_path(stream_path(c));
        ASSERT_TRUE(back) << stream_path(c);
        EXPECT_EQ(*back, c) << stream_path(c);
    }
    EXPECT_EQ(stream_path(url("amt://198.51.100.7@232.1.1.1:5000")),
              "/198.51.100.7/232.1.1.1/5000.ts");
    EXPECT_EQ(stream_path(url("amt://239.1.1.1")), "/any/239.1.1.1/any.ts");
    EXPECT_FALSE(parse_stream_path("/198.51.100.7/10.0.0.1/5000.ts"));
    EXPECT_FALSE(parse_stream_path("/198.51.100.7/232.1.1.1/0.ts"));
    EXPECT_FALSE(parse_stream_path("/232.1.1.1/5000.ts"));
    EXPECT_FALSE(parse_stream_path("/index.html"));
}

TEST(HttpListen, AddressDefaultsToLoopback) {
    std::string address, error;
    int port = 0;
    ASSERT_TRUE(parse_listen("8080", address, port, error));
    EXPECT_EQ(address, "127.0.0.1");
    EXPECT_EQ(port, 8080);
    ASSERT_TRUE(parse_listen("0.0.0.0:81", address, port, error));
    EXPECT_EQ(address, "0.0.0.0");
    ASSERT_TRUE(parse_listen("[::1]:8080", address, port, error));
    EXPECT_EQ(address, "::1");
    EXPECT_FALSE(parse_listen("localhost:8080", address, port, error));
    EXPECT_NE(error.find("not an IP address"), std::string::npos);
    EXPECT_FALSE(parse_listen("99999", address, port, error));
    EXPECT_NE(error.find("from 1 to 65535"), std::string::npos);
}

TEST(ChannelHub, ViewersShareOneTunnelAndTheLastLeaves) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    const uint64_t a = hub.add_viewer(c);
    const uint64_t b = hub.add_viewer(c);
    auto changes = hub.reconcile();
    ASSERT_EQ(changes.open.size(), 1u);  // two viewers, one tunnel
    EXPECT_EQ(changes.open[0], c);
    EXPECT_EQ(hub.viewers(c), 2u);
    hub.remove_viewer(c, a);
    changes = hub.reconcile();
    EXPECT_TRUE(changes.open.empty());
    EXPECT_TRUE(changes.leave.empty());  // one viewer left: the tunnel stays
    hub.remove_viewer(c, b);
    changes = hub.reconcile();
    ASSERT_EQ(changes.leave.size(), 1u);  // the last viewer is gone: leave
    EXPECT_TRUE(hub.snapshot().empty());
    EXPECT_TRUE(hub.reconcile().leave.empty());  // left once only
    // A viewer that comes back opens a new tunnel.
    hub.add_viewer(c);
    EXPECT_EQ(hub.reconcile().open.size(), 1u);
}

TEST(ChannelHub, CommandLineJoinStaysWithoutViewers) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    hub.pin(c);
    EXPECT_EQ(hub.reconcile().open.size(), 1u);
    const uint64_t v = hub.add_viewer(c);
    EXPECT_TRUE(hub.reconcile().open.empty());  // the pinned tunnel serves the viewer
    hub.remove_viewer(c, v);
    EXPECT_TRUE(hub.reconcile().leave.empty());  // still joined by the command line
    hub.unpin(c);
    EXPECT_EQ(hub.reconcile().leave.size(), 1u);
}

TEST(ChannelHub, ChannelsAreSeparate) {
    ChannelHub hub;
    const ChannelSpec one = url("amt://198.51.100.7@232.1.1.1:5000");
    const ChannelSpec other = url("amt://198.51.100.7@232.1.1.2:5000");
    const uint64_t v1 = hub.add_viewer(one);
    hub.add_viewer(other);
    EXPECT_EQ(hub.reconcile().open.size(), 2u);
    hub.remove_viewer(one, v1);
    const auto changes = hub.reconcile();
    ASSERT_EQ(changes.leave.size(), 1u);
    EXPECT_EQ(changes.leave[0], one);
    EXPECT_EQ(hub.viewers(other), 1u);
}

TEST(ChannelHub, EveryViewerGetsEveryDatagramFromItsJoinOn) {
    ChannelHub hub(4);
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    const uint64_t early = hub.add_viewer(c);
    hub.reconcile();
    const uint8_t d1[] = {1, 1}, d2[] = {2, 2};
    hub.publish(c, ByteView(d1));
    const uint64_t late = hub.add_viewer(c);  // live: from the next datagram on
    hub.publish(c, ByteView(d2));
    std::vector<uint8_t> out;
    ASSERT_TRUE(hub.read(c, early, out, 0ms));
    EXPECT_EQ(out, (std::vector<uint8_t>{1, 1, 2, 2}));
    out.clear();
    ASSERT_TRUE(hub.read(c, late, out, 0ms));
    EXPECT_EQ(out, (std::vector<uint8_t>{2, 2}));
    out.clear();
    ASSERT_TRUE(hub.read(c, late, out, 0ms));  // nothing new: empty, still open
    EXPECT_TRUE(out.empty());
}

// A TS packet: PID, payload unit start, and an adaptation field with the random access indicator.
std::vector<uint8_t> ts_packet(uint16_t pid, bool unit_start, bool random_access, uint8_t tag) {
    std::vector<uint8_t> p(188, 0xff);
    p[0] = 0x47;
    p[1] = static_cast<uint8_t>((unit_start ? 0x40 : 0) | (pid >> 8));
    p[2] = static_cast<uint8_t>(pid);
    p[3] = random_access ? 0x30 : 0x10;
    if (random_access) {
        p[4] = 1;
        p[5] = 0x40;
    }
    p[187] = tag;
    return p;
}

TEST(ChannelHub, NewViewerStartsAtThePatBeforeTheLastKeyframe) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    hub.pin(c);
    hub.reconcile();
    const std::vector<std::vector<uint8_t>> stream = {
        ts_packet(0, true, false, 1),   // PAT
        ts_packet(256, true, true, 2),  // keyframe
        ts_packet(256, false, false, 3),
        ts_packet(0, true, false, 4),     // PAT
        ts_packet(4096, true, false, 5),  // PMT
        ts_packet(256, true, true, 6),    // keyframe
        ts_packet(256, false, false, 7),
        ts_packet(0, true, false, 8),  // PAT after the last keyframe: not a start
    };
    for (const auto& p : stream)
        hub.publish(c, ByteView(p));
    const uint64_t v = hub.add_viewer(c);
    std::vector<uint8_t> out;
    ASSERT_TRUE(hub.read(c, v, out, 0ms));
    ASSERT_EQ(out.size(), 5u * 188);
    EXPECT_EQ(out[187], 4);  // from the PAT before the last keyframe
    EXPECT_EQ(out.back(), 8);
}

// PAT (program 1 at PMT PID 4096) and PMT (H.264 on 256, AAC on 257), as ffmpeg writes them.
std::vector<uint8_t> psi_packet(uint16_t pid, std::vector<uint8_t> section, uint8_t tag) {
    std::vector<uint8_t> p = ts_packet(pid, true, false, tag);
    p[4] = 0;  // pointer field
    std::copy(section.begin(), section.end(), p.begin() + 5);
    return p;
}
const std::vector<uint8_t> pat_section = {0x00, 0xb0, 13,   0,    1, 0xc1, 0, 0,
                                          0,    1,    0xf0, 0x00, 0, 0,    0, 0};
const std::vector<uint8_t> pmt_section = {0x02, 0xb0, 23,   0,    1,    0xc1, 0,    0, 0xe1,
                                          0x00, 0xf0, 0,    0x1b, 0xe1, 0,    0xf0, 0, 0x0f,
                                          0xe1, 1,    0xf0, 0,    0,    0,    0,    0};

TEST(ChannelHub, AudioRandomAccessIsNoStartPoint) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    hub.pin(c);
    hub.reconcile();
    const std::vector<std::vector<uint8_t>> stream = {
        psi_packet(0, pat_section, 1), psi_packet(4096, pmt_section, 2),
        ts_packet(256, true, true, 3),  // H.264 keyframe
        ts_packet(0, true, false, 4),   // PAT
        ts_packet(257, true, true, 5),  // AAC frame: random access too, but not a keyframe
    };
    for (const auto& p : stream)
        hub.publish(c, ByteView(p));
    const uint64_t v = hub.add_viewer(c);
    std::vector<uint8_t> out;
    ASSERT_TRUE(hub.read(c, v, out, 0ms));
    ASSERT_EQ(out.size(), 5u * 188);
    EXPECT_EQ(out[187], 1);  // from the PAT before the video keyframe
}

TEST(ChannelHub, FirstViewerWaitsForAKeyframe) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    const uint64_t v = hub.add_viewer(c);  // the tunnel opens for it: nothing kept yet
    hub.reconcile();
    for (const auto& p : {ts_packet(256, false, false, 1), ts_packet(0, true, false, 2)})
        hub.publish(c, ByteView(p));
    std::vector<uint8_t> out;
    ASSERT_TRUE(hub.read(c, v, out, 0ms));
    EXPECT_TRUE(out.empty());  // mid-GOP: a decoder could do nothing with it
    const auto key = ts_packet(256, true, true, 3);
    hub.publish(c, ByteView(key));
    ASSERT_TRUE(hub.read(c, v, out, 0ms));
    ASSERT_EQ(out.size(), 2u * 188);
    EXPECT_EQ(out[187], 2);  // the PAT just before the keyframe
}

TEST(ChannelHub, SlowViewerSkipsToTheOldestKept) {
    ChannelHub hub(2);
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    const uint64_t v = hub.add_viewer(c);
    for (uint8_t i = 1; i <= 5; ++i) {
        const uint8_t d[] = {i};
        hub.publish(c, ByteView(d));
    }
    std::vector<uint8_t> out;
    ASSERT_TRUE(hub.read(c, v, out, 0ms));
    EXPECT_EQ(out, (std::vector<uint8_t>{4, 5}));
}

TEST(ChannelHub, ReaderWakesForDataAndEndsWhenTheChannelLeaves) {
    ChannelHub hub;
    const ChannelSpec c = url("amt://198.51.100.7@232.1.1.1:5000");
    const uint64_t v = hub.add_viewer(c);
    hub.pin(c);
    hub.reconcile();
    std::vector<uint8_t> out;
    std::thread publisher([&] {
        const uint8_t d[] = {7};
        hub.publish(c, ByteView(d));
    });
    // Waits (generously) until the publisher's datagram is there.
    while (out.empty())
        ASSERT_TRUE(hub.read(c, v, out, 1000ms));
    publisher.join();
    EXPECT_EQ(out, (std::vector<uint8_t>{7}));
    hub.remove_viewer(c, v);
    EXPECT_FALSE(hub.read(c, v, out, 0ms));  // this viewer is gone
    hub.unpin(c);
    hub.reconcile();
    const uint64_t w = hub.add_viewer(url("amt://198.51.100.7@232.1.1.2:5000"));
    hub.close_all();
    EXPECT_FALSE(hub.read(url("amt://198.51.100.7@232.1.1.2:5000"), w, out, 1000ms));
}

TEST(Problems, SentencesForPeople) {
    ChannelStatus s;
    s.state = "discovering";
    s.seconds_in_state = 2;
    EXPECT_EQ(describe_problem(s, "192.52.193.1", false, 10), "");  // give it a moment
    s.seconds_in_state = 6;
    const std::string no_relay = describe_problem(s, "192.52.193.1", false, 10);
    EXPECT_NE(no_relay.find("No relay answered discovery at 192.52.193.1"), std::string::npos);
    EXPECT_NE(no_relay.find("--relay"), std::string::npos);

    s = ChannelStatus{};
    s.state = "joined";
    s.relay = "192.0.2.1";
    s.relay_refuses = true;
    EXPECT_NE(describe_problem(s, "", true, 10).find("draining or full"), std::string::npos);

    s = ChannelStatus{};
    s.state = "joined";
    s.seconds_since_data = 12;
    EXPECT_NE(describe_problem(s, "", true, 10).find("no data for 12 s"), std::string::npos);
    s.seconds_since_data = 1;
    EXPECT_EQ(describe_problem(s, "", true, 10), "");

    s.data_seen = true;
    s.mpeg_ts = false;
    EXPECT_NE(describe_problem(s, "", true, 10).find("not MPEG-TS"), std::string::npos);
}

TEST(StatusJson, CarriesWhatThePageShows) {
    ChannelView v{url("amt://198.51.100.7@232.1.1.1:5000"), {}, 2, true};
    v.status.state = "joined";
    v.status.ts_errors = 3;
    const std::string j = status_json({v});
    EXPECT_NE(j.find("\"path\": \"/198.51.100.7/232.1.1.1/5000.ts\""), std::string::npos) << j;
    EXPECT_NE(j.find("\"viewers\": 2"), std::string::npos) << j;
    EXPECT_NE(j.find("\"ts_continuity_errors\": 3"), std::string::npos) << j;
}
