// The IPFIX exporter (issue 15) against a real UDP socket, judged by tshark's IPFIX dissector
// (cflow): records of all four channel/tunnel family combinations and every end reason are sent,
// captured from the socket into a pcap and decoded; each must come out with the values put in and
// without a malformed or warning flag. And a collector that is absent costs records, counted,
// never a blocked caller.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/bytes.hpp"
#include "dataplane/daemon/ipfix_exporter.hpp"

using namespace amt;
using json = nlohmann::json;

namespace {

IpAddress ip(const char* text) {
    return IpAddress::parse(text).value();
}

SessionRecord record(const char* s, const char* g, const char* relay, const char* gateway,
                     uint16_t port, uint64_t packets, SessionEnd why) {
    return {.gateway = {ip(gateway), port},
            .relay = {ip(relay), 2268},
            .flow = {ip(s), ip(g)},
            .start_ms = 1'796'000'000'000,
            .end_ms = 1'796'000'004'000,
            .packets = packets,
            .octets = packets * 1000,
            .reason = why};
}

class UdpCollector {
  public:
    UdpCollector() {
        fd_ = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~UdpCollector() { close(fd_); }
    uint16_t port() const { return port_; }
    std::vector<std::vector<uint8_t>> take() {
        std::vector<std::vector<uint8_t>> out;
        std::vector<uint8_t> buf(65536);
        ssize_t n;
        while ((n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT)) > 0)
            out.emplace_back(buf.begin(), buf.begin() + n);
        return out;
    }

  private:
    int fd_;
    uint16_t port_ = 0;
};

// Each datagram as an Ethernet/IPv4/UDP frame to port 4739, for tshark.
void write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& datagrams) {
    std::ofstream f(path, std::ios::binary);
    const auto put = [&](uint32_t v, int n) {
        for (int i = 0; i < n; ++i)
            f.put(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    put(0xa1b2c3d4, 4), put(2, 2), put(4, 2), put(0, 4), put(0, 4), put(65535, 4), put(1, 4);
    for (const auto& d : datagrams) {
        std::vector<uint8_t> frame(14 + 20 + 8 + d.size(), 0);
        frame[12] = 0x08;
        uint8_t* ip4 = frame.data() + 14;
        ip4[0] = 0x45, ip4[8] = 64, ip4[9] = 17;
        store_be16(ip4 + 2, static_cast<uint16_t>(28 + d.size()));
        ip4[12] = 127, ip4[15] = 1, ip4[16] = 127, ip4[19] = 1;
        store_be16(ip4 + 20, 40000);
        store_be16(ip4 + 22, 4739);
        store_be16(ip4 + 24, static_cast<uint16_t>(8 + d.size()));
        std::copy(d.begin(), d.end(), ip4 + 28);
        put(0, 4), put(0, 4), put(static_cast<uint32_t>(frame.size()), 4);
        put(static_cast<uint32_t>(frame.size()), 4);
        f.write(reinterpret_cast<const char*>(frame.data()),
                static_cast<std::streamsize>(frame.size()));
    }
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    pclose(p);
    return out;
}

// Waits (bounded) until `done()`; the figure asserted afterwards, not the time it took.
template <typename Fn>
void wait_until(Fn done) {
    for (int i = 0; i < 500 && !done(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

TEST(IpfixExport, TsharkDecodesEveryTemplateAndRecord) {
    UdpCollector collector;
    IpfixExporter exporter(
        {.collector = "127.0.0.1:" + std::to_string(collector.port()), .observation_domain = 7});
    wait_until([&] { return exporter.stats().template_sends.load() >= 1; });
    const std::vector<SessionRecord> records = {
        record("203.0.113.1", "232.1.1.1", "192.0.2.1", "198.51.100.10", 40001, 11,
               SessionEnd::leave),
        record("0.0.0.0", "239.1.1.1", "2001:db8::1", "2001:db8:100::10", 40002, 22,
               SessionEnd::expiry),
        record("2001:db8:5::1", "ff3e::8000:1", "192.0.2.1", "198.51.100.20", 40003, 33,
               SessionEnd::active),
        record("::", "ff0e::1234", "2001:db8::1", "2001:db8:100::20", 40004, 44,
               SessionEnd::relay_stop),
        record("203.0.113.2", "232.1.1.2", "192.0.2.1", "198.51.100.30", 40005, 55,
               SessionEnd::teardown)};
    for (const SessionRecord& r : records)
        exporter.session_record(r);
    exporter.finish(std::chrono::seconds(2));
    EXPECT_EQ(exporter.stats().exported.load(), records.size());
    const auto datagrams = collector.take();
    ASSERT_FALSE(datagrams.empty());
    const std::string pcap = testing::TempDir() + "ipfix_export.pcap";
    write_pcap(pcap, datagrams);
    const char* tshark = std::getenv("TSHARK");
    const std::string out = run(std::string(tshark ? tshark : "tshark") + " -r " + pcap +
                                " -d udp.port==4739,cflow -T ek 2>&1");
    EXPECT_EQ(out.find("_ws_malformed"), std::string::npos) << out;
    EXPECT_EQ(out.find("_ws_expert"), std::string::npos) << "warning or error: " << out;
    // One JSON object per line; the data records' fields, as tshark decodes them.
    std::vector<std::string> packets, reasons, v6_gateways, ports;
    size_t templates = 0;
    for (size_t pos = 0, end; (end = out.find('\n', pos)) != std::string::npos; pos = end + 1) {
        const json j = json::parse(out.substr(pos, end - pos), nullptr, false);
        if (!j.is_object() || !j.contains("layers")) continue;
        const json& c = j["layers"]["cflow"];
        const auto collect = [&](const char* key, std::vector<std::string>& to) {
            if (!c.contains(key)) return;
            for (const json& v : c[key].is_array() ? c[key] : json::array({c[key]}))
                to.push_back(v.is_string() ? v.get<std::string>() : v.dump());
        };
        EXPECT_EQ(c.value("cflow_cflow_od_id", std::string("7")), "7");
        if (c.contains("cflow_cflow_template_id")) ++templates;
        collect("cflow_cflow_packets", packets);
        collect("cflow_cflow_flow_end_reason", reasons);
        collect("cflow_cflow_post_nat_destination_ipv6_address", v6_gateways);
        collect("cflow_cflow_post_naptdestination_transport_port", ports);
    }
    EXPECT_GE(templates, 1u) << "no template set decoded";
    EXPECT_EQ(packets, (std::vector<std::string>{"11", "22", "33", "44", "55"})) << out;
    EXPECT_EQ(reasons, (std::vector<std::string>{"3", "1", "2", "4", "3"}));
    EXPECT_EQ(v6_gateways, (std::vector<std::string>{"2001:db8:100::10", "2001:db8:100::20"}));
    EXPECT_EQ(ports, (std::vector<std::string>{"40001", "40002", "40003", "40004", "40005"}));
}

// Nothing listens: the caller never waits, and every record is accounted for (sent into the
// void, refused by the transport, or dropped from the queue), none lost silently.
TEST(IpfixExport, AbsentCollectorCostsCountedRecordsOnly) {
    uint16_t port;
    {
        const UdpCollector gone;
        port = gone.port();
    }  // closed: ICMP port unreachable from here on
    IpfixExporter exporter(
        {.collector = "127.0.0.1:" + std::to_string(port), .queue_records = 1024});
    const size_t n = 100'000;
    for (size_t i = 0; i < n; ++i) {
        exporter.session_record(record("203.0.113.1", "232.1.1.1", "192.0.2.1", "198.51.100.10",
                                       static_cast<uint16_t>(i), 1, SessionEnd::leave));
    }
    exporter.finish(std::chrono::milliseconds(500));
    const IpfixStats& st = exporter.stats();
    std::printf("exported %llu, queue full %llu, send failed %llu\n",
                static_cast<unsigned long long>(st.exported.load()),
                static_cast<unsigned long long>(st.dropped_queue_full.load()),
                static_cast<unsigned long long>(st.dropped_send_failed.load()));
    EXPECT_EQ(st.exported.load() + st.dropped_queue_full.load() + st.dropped_send_failed.load(), n);
}

}  // namespace
