// amtrelayd's configuration file: defaults, every section, and errors that name the key.
#include <gtest/gtest.h>

#include <filesystem>

#include "dataplane/daemon/relay_config.hpp"

using namespace amt;

namespace {

const char* minimal = R"(
[ports]
downstream = "net_null0"
[relay]
addresses = ["192.0.2.1"]
)";

std::string error_of(const std::string& text) {
    try {
        parse_relay_config(text, "test.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(RelayConfig, MinimalFileTakesDocumentedDefaults) {
    const RelayConfig c = parse_relay_config(minimal, "test.toml");
    EXPECT_EQ(c.dataplane.port, "net_null0");
    EXPECT_EQ(c.dataplane.workers, 1);
    EXPECT_EQ(c.dataplane.engine.query_interval.count(), 125);
    EXPECT_EQ(c.dataplane.engine.membership_timeout.count(), 270);
    EXPECT_EQ(c.dataplane.engine.secret_rotation.count(), 3600);
    EXPECT_FALSE(c.dataplane.engine.teardown);
    EXPECT_TRUE(c.dataplane.engine.asm_enabled);
    EXPECT_TRUE(c.dataplane.engine.sticky_mac);
    EXPECT_EQ(c.dataplane.engine.discovery_addresses.size(), 2u);
    EXPECT_TRUE(c.dataplane.replication.udp_checksum);
    EXPECT_EQ(c.log_level, "info");
}

TEST(RelayConfig, EverySectionIsRead) {
    const RelayConfig c = parse_relay_config(R"(
[eal]
args = ["-l", "0-2", "--vdev", "net_af_packet0,iface=veth0"]
[ports]
downstream = "net_af_packet0"
upstream = "net_af_packet1"
exception = "net_tap0"
workers = 2
[relay]
addresses = ["192.0.2.1", "2001:db8::1"]
discovery_addresses = ["192.52.193.1"]
query_interval = 60
robustness = 3
max_response_code = 10
membership_timeout = 200
secret_rotation = 1800
mac = "hmac-sha256"
teardown = true
asm = false
sticky_mac = false
accept_linux_p_flag = false
cisco_mac_compat = true
[limits]
max_endpoints = 1000
max_endpoints_per_source_ip = 10
max_groups_per_endpoint = 8
max_sources_per_group = 4
replies_per_second_per_source_ip = 5.5
reply_burst_per_source_ip = 20
[downstream]
next_hop = "192.0.2.254"
next_hop_v6_mac = "02:00:00:00:00:fe"
pmtu = 1400
outer_ttl = 32
zero_udp_checksum_ipv4 = true
[upstream]
addresses = ["10.0.1.2", "fe80::1"]
decrement_ttl = false
[dataplane]
packet_mbufs = 8191
header_mbufs = 4095
flow_table_size = 1024
control_ring_size = 1024
copy_threshold = 128
[log]
level = "debug"
drop_summary_interval = 30
[metrics]
listen = "[::1]:9900"
[control]
socket = "/run/amt/ctl.sock"
group = "root"
[drain]
on_command = "birdc disable anycast"
off_command = "birdc enable anycast"
)",
                                             "full.toml");
    const DataplaneConfig& d = c.dataplane;
    EXPECT_EQ(c.eal_args.size(), 4u);
    EXPECT_EQ(d.upstream_port, "net_af_packet1");
    EXPECT_EQ(d.exception_port, "net_tap0");
    EXPECT_EQ(d.workers, 2);
    EXPECT_EQ(d.engine.relay_addresses.size(), 2u);
    EXPECT_EQ(d.engine.discovery_addresses.size(), 1u);
    EXPECT_EQ(d.engine.query_interval.count(), 60);
    EXPECT_EQ(d.engine.robustness, 3);
    EXPECT_EQ(d.engine.max_response_code, 10);
    EXPECT_EQ(d.engine.mac_algorithm, MacAlgorithm::hmac_sha256);
    EXPECT_TRUE(d.engine.teardown);
    EXPECT_FALSE(d.engine.asm_enabled);
    EXPECT_TRUE(d.engine.cisco_mac_compat);
    EXPECT_EQ(d.engine.limits.max_sources_per_group, 4u);
    EXPECT_DOUBLE_EQ(d.engine.limits.replies_per_second_per_source_ip, 5.5);
    EXPECT_EQ(d.next_hop_v4, IpAddress::parse("192.0.2.254"));
    ASSERT_TRUE(d.next_hop_v6_mac.has_value());
    EXPECT_EQ((*d.next_hop_v6_mac)[5], 0xfe);
    EXPECT_EQ(d.pmtu, 1400);
    EXPECT_EQ(d.outer_ttl, 32);
    EXPECT_FALSE(d.replication.udp_checksum);
    EXPECT_EQ(d.upstream_addresses.size(), 2u);
    EXPECT_FALSE(d.decrement_ttl);
    EXPECT_EQ(d.replication.copy_threshold, 128);
    EXPECT_EQ(c.log_level, "debug");
    EXPECT_EQ(c.operations.metrics_listen, "[::1]:9900");
    EXPECT_EQ(c.operations.control_socket, "/run/amt/ctl.sock");
    EXPECT_EQ(c.operations.control_group, "root");
    EXPECT_EQ(c.operations.drain_on_command, "birdc disable anycast");
    EXPECT_EQ(c.operations.drain_off_command, "birdc enable anycast");
    EXPECT_EQ(c.drop_log_interval_seconds, 30u);
}

TEST(RelayConfig, ErrorsNameTheKeyAndWhatIsAllowed) {
    const std::string base = minimal;
    EXPECT_EQ(error_of(base + "query_interval = 200\n"),
              "test.toml: relay.query_interval = 200: must be 1..127");
    EXPECT_EQ(error_of(base + "membership_timeout = 100\n"),
              "test.toml: relay.membership_timeout = 100: must exceed query_interval (RFC 7450 "
              "§5.3.3.7); default 270");
    EXPECT_EQ(error_of(base + "teardwn = true\n"),
              "test.toml: relay.teardwn: unknown key (see the README's configuration reference)");
    EXPECT_EQ(error_of(base + "teardown = \"yes\"\n"),
              "test.toml: relay.teardown: must be true or false");
    EXPECT_EQ(error_of(base + "mac = \"md5\"\n"),
              "test.toml: relay.mac = \"md5\": must be \"aes-cmac-128\" or \"hmac-sha256\"");
    EXPECT_EQ(error_of("[ports]\ndownstream = \"x\"\n[relay]\naddresses = [\"239.1.1.1\"]\n"),
              "test.toml: relay.addresses = \"239.1.1.1\": must be a unicast address");
    EXPECT_EQ(
        error_of("[ports]\ndownstream = \"x\"\n"),
        "test.toml: relay.addresses is empty: give at least one unicast IPv4 or IPv6 address");
    EXPECT_NE(
        error_of("[relay]\naddresses = [\"192.0.2.1\"]\n").find("ports.downstream: is required"),
        std::string::npos);
    EXPECT_EQ(error_of(base + "[downstream]\nnext_hop_mac = \"02:00:00:00:00\"\n"),
              "test.toml: downstream.next_hop_mac = \"02:00:00:00:00\": must be a MAC address like "
              "02:00:5e:10:00:01");
    EXPECT_EQ(error_of(base + "[downstream]\nnext_hop = \"2001:db8::1\"\n"),
              "test.toml: downstream.next_hop: must be an IPv4 address (use next_hop_v6 for IPv6)");
    EXPECT_EQ(
        error_of(base + "[metricz]\n"),
        "test.toml: [metricz]: unknown section (allowed: eal, ports, relay, limits, downstream, "
        "upstream, dataplane, log, af_xdp, metrics, control, drain, state, ipfix)");
    EXPECT_EQ(error_of(base + "[metrics]\nlisten = \"9850\"\n"),
              "test.toml: metrics.listen = \"9850\": must be HOST:PORT, e.g. \"127.0.0.1:9850\" or "
              "\"[::1]:9850\"");
    EXPECT_EQ(error_of(base + "[metrics]\nlisten = \"127.0.0.1:99999\"\n"),
              "test.toml: metrics.listen = \"127.0.0.1:99999\": port must be 1..65535");
    EXPECT_EQ(error_of(base + "[control]\nsocket = \"amt.sock\"\n"),
              "test.toml: control.socket = \"amt.sock\": must be an absolute path (or \"\" to "
              "disable the control socket)");
    EXPECT_EQ(error_of(base + "[control]\ngroup = \"no-such-group-amt\"\n"),
              "test.toml: control.group = \"no-such-group-amt\": no such group: create it "
              "(groupadd no-such-group-amt) or name an existing one");
    EXPECT_EQ(error_of(base + "[log]\nlevel = \"loud\"\n"),
              "test.toml: log.level = \"loud\": must be trace, debug, info, warn, error, critical "
              "or off");
    EXPECT_NE(error_of("[ports\n").find("test.toml:1:"), std::string::npos)
        << "syntax errors give line:column";
    EXPECT_EQ(error_of(base + "[limits]\nmax_endpoints = 0\n"),
              "test.toml: limits.max_endpoints = 0: must be 1..100000000");
    EXPECT_EQ(error_of(base + "[state]\nfile = \"state\"\n"),
              "test.toml: state.file = \"state\": must be an absolute file path, e.g. "
              "\"/var/lib/amtrelayd/state\" (or \"\" to disable saved state)");
    EXPECT_EQ(error_of(base + "[state]\nfile = \"/no/such/dir-amt/state\"\n"),
              "test.toml: state.file = \"/no/such/dir-amt/state\": its folder /no/such/dir-amt "
              "does not exist: create it (mode 0700) or choose another");
    EXPECT_EQ(error_of(base + "[state]\nsnapshot_interval = 4000\n"),
              "test.toml: state.snapshot_interval = 4000: must be 0..3600");
    EXPECT_NE(error_of(base + "[state]\nfiel = \"/tmp/x\"\n").find("state.fiel"),
              std::string::npos);
}

// Issue 18, item 4: the global reply budget's keys are read and checked.
TEST(RelayConfig, GlobalReplyBudgetKeys) {
    const std::string base = minimal;
    const RelayConfig c = parse_relay_config(
        base + "[limits]\nreplies_per_second = 2000\nreply_burst = 300\n", "test.toml");
    EXPECT_DOUBLE_EQ(c.dataplane.engine.limits.replies_per_second, 2000);
    EXPECT_DOUBLE_EQ(c.dataplane.engine.limits.reply_burst, 300);
    EXPECT_NE(
        error_of(base + "[limits]\nreplies_per_second = 0\n").find("limits.replies_per_second = 0"),
        std::string::npos);
    EXPECT_NE(error_of(base + "[limits]\nreply_burst = 2e9\n")
                  .find("limits.replies_per_second and "
                        "limits.reply_burst must be"),
              std::string::npos);
    EXPECT_DOUBLE_EQ(c.dataplane.engine.limits.reply_reserve_percent, 10) << "default";
    EXPECT_DOUBLE_EQ(parse_relay_config(base + "[limits]\nreply_reserve_percent = 30\n", "t")
                         .dataplane.engine.limits.reply_reserve_percent,
                     30);
    EXPECT_NE(error_of(base + "[limits]\nreply_reserve_percent = 95\n")
                  .find("limits.reply_reserve_percent = 95"),
              std::string::npos);
}

// Issue 18 item 2: the flow budgets. Not in the file, they follow dataplane.flow_table_size (a
// 16th of it per address, a 64th per endpoint: 4096 and 1024 for the default 65536); set, they are
// taken as they are; 0 is refused with the key.
TEST(RelayConfig, FlowBudgetKeys) {
    const std::string base = minimal;
    const RelayLimits defaults = parse_relay_config(base, "t.toml").dataplane.engine.limits;
    EXPECT_EQ(defaults.max_flows_per_source_ip, 4096u);
    EXPECT_EQ(defaults.max_flows_per_endpoint, 1024u);
    const RelayLimits small =
        parse_relay_config(base + "[dataplane]\nflow_table_size = 4096\n", "t.toml")
            .dataplane.engine.limits;
    EXPECT_EQ(small.max_flows_per_source_ip, 256u);
    EXPECT_EQ(small.max_flows_per_endpoint, 64u);
    const RelayLimits tiny =
        parse_relay_config(base + "[dataplane]\nflow_table_size = 64\n", "t.toml")
            .dataplane.engine.limits;
    EXPECT_EQ(tiny.max_flows_per_source_ip, 4u);
    EXPECT_EQ(tiny.max_flows_per_endpoint, 1u);
    const RelayLimits set = parse_relay_config(base +
                                                   "[limits]\nmax_flows_per_source_ip = 20000\n"
                                                   "max_flows_per_endpoint = 300\n",
                                               "t.toml")
                                .dataplane.engine.limits;
    EXPECT_EQ(set.max_flows_per_source_ip, 20000u);
    EXPECT_EQ(set.max_flows_per_endpoint, 300u);
    EXPECT_EQ(error_of(base + "[limits]\nmax_flows_per_source_ip = 0\n"),
              "test.toml: limits.max_flows_per_source_ip = 0: must be 1..16777216");
    EXPECT_EQ(error_of(base + "[limits]\nmax_flows_per_endpoint = -1\n"),
              "test.toml: limits.max_flows_per_endpoint = -1: must be 1..16777216");
}

TEST(RelayConfig, StateSection) {
    const std::string base = "[ports]\ndownstream = \"x\"\n[relay]\naddresses = [\"192.0.2.1\"]\n";
    EXPECT_EQ(parse_relay_config(base, "t").state.file, "");
    EXPECT_EQ(parse_relay_config(base, "t").state.snapshot_interval_seconds, 5u);
    const RelayConfig c = parse_relay_config(
        base + "[state]\nfile = \"/tmp/amt-state\"\nsnapshot_interval = 0\n", "t");
    EXPECT_EQ(c.state.file, "/tmp/amt-state");
    EXPECT_EQ(c.state.snapshot_interval_seconds, 0u);
}

TEST(RelayConfig, ShippedExamplesAreValid) {
    size_t examples = 0;
    for (const auto& entry : std::filesystem::directory_iterator(EXAMPLES_DIR)) {
        if (entry.path().extension() != ".toml") continue;
        ++examples;
        try {
            load_relay_config(entry.path().string());
        } catch (const ConfigError& e) {
            ADD_FAILURE() << e.what();
        }
    }
    EXPECT_GE(examples, 3u) << "deploy/examples: vdev, AF_XDP and PMD examples";
    EXPECT_NE(std::string([] {
                  try {
                      load_relay_config("/nonexistent/amtrelayd.toml");
                  } catch (const ConfigError& e) {
                      return std::string(e.what());
                  }
                  return std::string();
              }())
                  .find("cannot be read"),
              std::string::npos);
}

TEST(RelayConfig, AfXdpSectionBuildsTheVdevAndForcesCopies) {
    const RelayConfig c = parse_relay_config(R"(
[eal]
args = ["--no-huge"]
[ports]
workers = 2
[relay]
addresses = ["192.0.2.1"]
[downstream]
next_hop = "192.0.2.254"
next_hop_mac = "02:00:00:00:00:fe"
[af_xdp]
interface = "eth1"
start_queue = 4
xdp_mode = "generic"
multicast_ranges = ["232.0.0.0/8", "ff3e::/16"]
program = "/opt/amt_steer.bpf.o"
)",
                                             "test.toml");
    ASSERT_TRUE(c.af_xdp);
    EXPECT_EQ(c.dataplane.port, "net_af_xdp0");
    EXPECT_FALSE(c.dataplane.replication.chaining) << "net_af_xdp cannot send chained mbufs";
    EXPECT_EQ(c.af_xdp->queues, 0) << "automatic: workers + 1 when the interface has them";
    EXPECT_EQ(c.af_xdp->mode, XdpMode::generic);
    ASSERT_EQ(c.af_xdp->multicast_ranges.size(), 2u);
    EXPECT_EQ(c.af_xdp->multicast_ranges[1].to_string(), "ff3e::/16");
    EXPECT_EQ(af_xdp_vdev(*c.af_xdp, 3),
              "net_af_xdp0,iface=eth1,start_queue=4,queue_count=3,xdp_prog=/opt/amt_steer.bpf.o");

    const RelayConfig d = parse_relay_config(
        "[relay]\naddresses = [\"192.0.2.1\"]\n[af_xdp]\ninterface = \"eth1\"\n", "test.toml");
    EXPECT_EQ(d.af_xdp->mode, XdpMode::automatic);
    EXPECT_EQ(d.af_xdp->multicast_ranges.size(), 2u) << "224.0.0.0/4 and ff00::/8";
    EXPECT_NE(af_xdp_vdev(*d.af_xdp, 2).find(",queue_count=2,xdp_prog=/"), std::string::npos);
}

TEST(RelayConfig, AfXdpErrorsNameTheKey) {
    const std::string base = "[relay]\naddresses = [\"192.0.2.1\"]\n";
    EXPECT_EQ(error_of(base + "[af_xdp]\nqueues = 2\n"),
              "test.toml: af_xdp.interface: is required (the kernel interface, e.g. \"eth1\")");
    EXPECT_EQ(error_of(base + "[af_xdp]\ninterface = \"eth1\"\nxdp_mode = \"fast\"\n"),
              "test.toml: af_xdp.xdp_mode = \"fast\": must be auto, native or generic");
    EXPECT_EQ(
        error_of("[ports]\nworkers = 2\n" + base + "[af_xdp]\ninterface = \"eth1\"\nqueues = 1\n"),
        "test.toml: af_xdp.queues = 1: must be 0 (automatic) or at least ports.workers = 2 "
        "(one RX/TX queue pair per worker)");
    EXPECT_NE(error_of(base + "[af_xdp]\ninterface = \"eth1\"\nmulticast_ranges = "
                              "[\"10.0.0.0/8\"]\n")
                  .find("af_xdp.multicast_ranges: \"10.0.0.0/8\": must be a multicast prefix"),
              std::string::npos);
    EXPECT_EQ(error_of(base + "[af_xdp]\ninterface = \"eth1\"\nqueue = 2\n"),
              "test.toml: af_xdp.queue: unknown key (see the README's configuration reference)");
    EXPECT_NE(error_of(base + "[downstream]\nnext_hop = \"192.0.2.254\"\n[af_xdp]\ninterface = "
                              "\"eth1\"\n")
                  .find("downstream.next_hop: in AF_XDP mode the kernel receives ARP and ND"),
              std::string::npos);
    EXPECT_NE(error_of("[ports]\ndownstream = \"net_af_packet0\"\n" + base +
                       "[af_xdp]\ninterface = \"eth1\"\n")
                  .find("with [af_xdp] the relay has one port, net_af_xdp0"),
              std::string::npos);
}

// Issue 18 item 1: where native multicast may come from on a one-port relay.
TEST(RelayConfig, UpstreamSourcePrefixes) {
    EXPECT_TRUE(parse_relay_config(minimal, "test.toml").dataplane.upstream_source_prefixes.empty())
        << "default: none (one port: no native multicast accepted)";
    const RelayConfig c = parse_relay_config(
        std::string(minimal) +
            "[upstream]\nsource_prefixes = [\"198.51.100.0/24\", \"2001:db8:5::/48\", "
            "\"192.0.2.2\"]\n",
        "test.toml");
    const auto& p = c.dataplane.upstream_source_prefixes;
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p[0].to_string(), "198.51.100.0/24");
    EXPECT_EQ(p[2].to_string(), "192.0.2.2/32") << "a bare address is a host prefix";
    EXPECT_TRUE(p[0].contains(*IpAddress::parse("198.51.100.255")));
    EXPECT_FALSE(p[0].contains(*IpAddress::parse("198.51.101.0")));
    EXPECT_FALSE(p[0].contains(*IpAddress::parse("::c633:6407"))) << "other family";
    EXPECT_TRUE(p[1].contains(*IpAddress::parse("2001:db8:5:ffff::1")));
    EXPECT_FALSE(p[1].contains(*IpAddress::parse("2001:db8:6::1")));
    EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
    EXPECT_TRUE(IpPrefix::parse("198.51.100.4/30")->contains(*IpAddress::parse("198.51.100.7")));
    EXPECT_FALSE(IpPrefix::parse("198.51.100.4/30")->contains(*IpAddress::parse("198.51.100.8")));

    const std::string base = std::string(minimal) + "[upstream]\nsource_prefixes = ";
    const std::string allowed =
        "must be a prefix like \"198.51.100.0/24\" or \"2001:db8::/32\" (no host bits set; a "
        "bare address is a /32 or /128)";
    EXPECT_EQ(error_of(base + "[\"198.51.100.7/24\"]\n"),
              "test.toml: upstream.source_prefixes: \"198.51.100.7/24\": " + allowed);
    EXPECT_EQ(error_of(base + "[\"198.51.100.0/33\"]\n"),
              "test.toml: upstream.source_prefixes: \"198.51.100.0/33\": " + allowed);
    EXPECT_EQ(error_of(base + "[\"sources\"]\n"),
              "test.toml: upstream.source_prefixes: \"sources\": " + allowed);
    EXPECT_EQ(error_of(base + "\"198.51.100.0/24\"\n"),
              "test.toml: upstream.source_prefixes: must be an array of strings");
}

// Issue 18 item 9: gateways on the relay's own link.
TEST(RelayConfig, DownstreamPrefixesForOnLinkGateways) {
    const RelayConfig plain = parse_relay_config(minimal, "test.toml");
    EXPECT_TRUE(plain.dataplane.downstream_prefixes.empty()) << "default: no gateway is on-link";
    EXPECT_EQ(plain.dataplane.max_neighbors, 1024u);
    const std::string two_families = R"(
[ports]
downstream = "net_null0"
[relay]
addresses = ["192.0.2.1", "2001:db8::1"]
[downstream]
)";
    const RelayConfig c = parse_relay_config(
        two_families + "prefixes = [\"192.0.2.0/24\", \"2001:db8::/64\"]\nmax_neighbors = 64\n",
        "test.toml");
    ASSERT_EQ(c.dataplane.downstream_prefixes.size(), 2u);
    EXPECT_EQ(c.dataplane.downstream_prefixes[0].to_string(), "192.0.2.0/24");
    EXPECT_EQ(c.dataplane.downstream_prefixes[1].to_string(), "2001:db8::/64");
    EXPECT_EQ(c.dataplane.max_neighbors, 64u);

    EXPECT_EQ(error_of(two_families + "prefixes = [\"192.0.2.1/24\"]\n"),
              "test.toml: downstream.prefixes: \"192.0.2.1/24\": must be a prefix like "
              "\"198.51.100.0/24\" or \"2001:db8::/32\" (no host bits set; a bare address is a "
              "/32 or /128)");
    EXPECT_EQ(error_of(two_families + "max_neighbors = 0\n"),
              "test.toml: downstream.max_neighbors = 0: must be 1..1048576");
    EXPECT_EQ(error_of(std::string(minimal) + "[downstream]\nprefixes = [\"2001:db8::/64\"]\n"),
              "test.toml: downstream.prefixes: \"2001:db8::/64\": relay.addresses has no IPv6 "
              "address to send ARP / Neighbor Solicitations from: add one, or remove the prefix");
    EXPECT_NE(error_of("[relay]\naddresses = [\"192.0.2.1\"]\n[downstream]\nprefixes = "
                       "[\"192.0.2.0/24\"]\n[af_xdp]\ninterface = \"eth1\"\n")
                  .find("downstream.prefixes: in AF_XDP mode the kernel receives ARP and ND"),
              std::string::npos);
}

// Issue 15: [ipfix]. Off by default (no flow counters either); a collector turns the per-flow
// counters on; every key is checked and a bad value names the key and what is allowed.
TEST(RelayConfig, IpfixSection) {
    const std::string base = minimal;
    const RelayConfig off = parse_relay_config(base, "t");
    EXPECT_FALSE(off.ipfix.enabled());
    EXPECT_FALSE(off.dataplane.count_flows);
    EXPECT_EQ(off.ipfix.active_timeout_seconds, 300u);
    EXPECT_EQ(off.ipfix.template_refresh_seconds, 60u);

    const RelayConfig on = parse_relay_config(base + R"([ipfix]
collector = "[2001:db8::9]:4739"
transport = "udp"
observation_domain = 4000000000
active_timeout = 60
template_refresh = 30
queue_records = 4096
)",
                                              "t");
    EXPECT_TRUE(on.ipfix.enabled());
    EXPECT_TRUE(on.dataplane.count_flows);
    EXPECT_EQ(on.ipfix.observation_domain, 4'000'000'000u);
    EXPECT_EQ(on.ipfix.active_timeout_seconds, 60u);
    EXPECT_EQ(on.ipfix.template_refresh_seconds, 30u);
    EXPECT_EQ(on.ipfix.queue_records, 4096u);
    EXPECT_EQ(split_host_port(on.ipfix.collector),
              std::make_pair(std::string("2001:db8::9"), std::string("4739")));
    EXPECT_TRUE(parse_relay_config(base + "[ipfix]\ncollector = \"collector.example:4739\"\n", "t")
                    .ipfix.enabled());

    for (const char* bad : {"192.0.2.9", "192.0.2.9:0", "192.0.2.9:70000", ":4739", "a b:4739",
                            "[2001:db8::9:4739"}) {
        const std::string e = error_of(base + "[ipfix]\ncollector = \"" + bad + "\"\n");
        EXPECT_NE(e.find(std::string("ipfix.collector = \"") + bad + "\": must be HOST:PORT"),
                  std::string::npos)
            << bad << ": " << e;
    }
    EXPECT_NE(error_of(base + "[ipfix]\ntransport = \"tcp\"\n").find("ipfix.transport = \"tcp\""),
              std::string::npos);
    EXPECT_NE(error_of(base + "[ipfix]\nactive_timeout = 0\n").find("ipfix.active_timeout = 0"),
              std::string::npos);
    EXPECT_NE(error_of(base + "[ipfix]\ntemplate_refresh = 7200\n")
                  .find("ipfix.template_refresh = 7200: must be 1..3600"),
              std::string::npos);
    EXPECT_NE(error_of(base + "[ipfix]\nqueue_records = 10\n").find("ipfix.queue_records = 10"),
              std::string::npos);
    EXPECT_NE(error_of(base + "[ipfix]\ncolector = \"x:1\"\n").find("ipfix.colector: unknown key"),
              std::string::npos);
}
