// pcap-in / pcap-out fixtures (YANET style): for each scenario under fixtures/, install the flows
// of scenario.json, send every frame of send.pcap through the relay, and compare what it sent
// with expect.pcap frame by frame, byte for byte. The expected frames were built by scapy
// (fixtures/make_fixtures.py), so their checksums are computed independently of the relay.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "harness.hpp"

using namespace amt;
using namespace amt::test;

namespace {

std::vector<Frame> read_pcap(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    std::vector<Frame> frames;
    if (bytes.size() < 24 || load_be32(bytes.data()) != 0xd4c3b2a1) {  // little-endian pcap
        ADD_FAILURE() << "not a little-endian pcap: " << path;
        return frames;
    }
    auto le32 = [&](size_t off) {
        return uint32_t{bytes[off]} | uint32_t{bytes[off + 1]} << 8 |
               uint32_t{bytes[off + 2]} << 16 | uint32_t{bytes[off + 3]} << 24;
    };
    for (size_t off = 24; off + 16 <= bytes.size();) {
        const uint32_t caplen = le32(off + 8);
        off += 16;
        if (off + caplen > bytes.size()) break;
        frames.emplace_back(bytes.begin() + static_cast<long>(off),
                            bytes.begin() + static_cast<long>(off + caplen));
        off += caplen;
    }
    return frames;
}

MacAddress parse_mac(const std::string& text) {
    MacAddress m{};
    for (size_t i = 0; i < 6; ++i)
        m[i] = static_cast<uint8_t>(std::stoul(text.substr(i * 3, 2), nullptr, 16));
    return m;
}

class Fixture : public testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Fixture, OutputMatchesExpectPcap) {
    const std::string dir = std::string(FIXTURE_DIR) + "/" + GetParam();
    std::ifstream scenario_file(dir + "/scenario.json");
    ASSERT_TRUE(scenario_file.good()) << dir;
    const nlohmann::json scenario = nlohmann::json::parse(scenario_file);

    EngineConfig engine = TestRelay::default_engine();
    engine.relay_addresses.clear();
    for (const auto& a : scenario["relay_addresses"])
        engine.relay_addresses.push_back(*IpAddress::parse(a.get<std::string>()));
    static int instance = 0;
    TestRelay relay("fx" + std::to_string(instance++), 1, engine);

    FlowPublisher& publisher = relay.dp().control().publisher();
    EndpointId next_id = 0;
    for (const auto& flow : scenario["flows"]) {
        const FlowKey key{*IpAddress::parse(flow["source"].get<std::string>()),
                          *IpAddress::parse(flow["group"].get<std::string>())};
        publisher.apply({FlowOp::create_flow, key});
        for (const auto& g : flow["gateways"]) {
            const UdpEndpoint gw{*IpAddress::parse(g["ip"].get<std::string>()),
                                 g["port"].get<uint16_t>()};
            const UdpEndpoint from = gw.ip.is_v4() ? relay.relay_v4() : relay.relay_v6();
            publisher.apply({FlowOp::add_tunnel, key, next_id++, gw, from});
        }
    }
    publisher.publish();

    for (const Frame& f : read_pcap(dir + "/send.pcap"))
        relay.nic().inject(f);
    relay.step();
    const std::vector<Frame> got = relay.nic().sent();
    std::vector<Frame> want = read_pcap(dir + "/expect.pcap");
    // The fixture names the relay's MAC with a placeholder; a ring port has its own address.
    const MacAddress placeholder = parse_mac(scenario["relay_mac"]);
    const MacAddress relay_mac = relay.relay_mac();
    for (Frame& f : want) {
        ASSERT_TRUE(f.size() > 12 &&
                    std::equal(placeholder.begin(), placeholder.end(), f.begin() + 6));
        std::copy(relay_mac.begin(), relay_mac.end(), f.begin() + 6);
    }
    ASSERT_FALSE(want.empty());
    ASSERT_EQ(parse_mac(scenario["next_hop_mac"]), gateway_mac);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].size(), want[i].size()) << "frame " << i;
        if (got[i] == want[i]) continue;
        for (size_t b = 0; b < std::min(got[i].size(), want[i].size()); ++b) {
            if (got[i][b] != want[i][b]) {
                ADD_FAILURE() << "frame " << i << " differs first at octet " << b << ": got 0x"
                              << std::hex << int{got[i][b]} << ", want 0x" << int{want[i][b]};
                break;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Scenarios, Fixture, testing::Values("ssm_ipv4", "ipv6_and_any_source"));
