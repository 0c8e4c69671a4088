// amtbench: benchmarks of the project's real code (the same worker loop, replicator, flow table
// and engine as amtrelayd), printed as a table or --json. Every figure is measured in this run;
// the command line that produced it is printed with it.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_result.hpp"
#include "dataplane/eal.hpp"

using namespace amt;
using namespace amt::bench;

int main(int argc, char** argv) {
    CLI::App app{"amtbench: benchmarks of the AMT relay's real code"};
    double seconds = 1.0;
    bool json = false;
    std::vector<std::string> sections = {"handshake", "replication"};
    std::vector<size_t> fanouts = {1, 4, 16, 64, 1024};
    std::vector<size_t> payloads = {64, 512, 1316};
    app.add_option("--seconds", seconds, "measuring time per figure")->check(CLI::PositiveNumber);
    app.add_flag("--json", json, "print JSON instead of a table");
    app.add_option("--section", sections, "sections to run")
        ->check(CLI::IsMember({"handshake", "replication", "scale", "flood", "egress"}));
    app.add_option("--fanout", fanouts, "replication fan-outs");
    app.add_option("--payload", payloads, "replication UDP payload sizes (octets)");
    std::vector<std::string> families = {"4in4", "6in6"};
    app.add_option("--family", families,
                   "replication: inner multicast in outer (gateway) family: 4in4 6in6 4in6 6in4")
        ->check(CLI::IsMember({"4in4", "6in6", "4in6", "6in4"}));
    ScaleOptions scale;
    bool flow_counters = false;
    app.add_flag("--flow-counters", flow_counters,
                 "replication: per-flow counters on (per-tunnel accounting, ipfix.collector)");
    app.add_option("--endpoints", scale.endpoints, "scale: endpoints loaded, one (S,G) each");
    app.add_option("--channels", scale.channels, "scale: (S,G) channels they spread over");
    app.add_option("--hot-channels", scale.hot_channels, "scale: channels streamed and churned");
    app.add_option("--stream-pps", scale.stream_pps, "scale: stream packets per second (0: none)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--churn-rate", scale.churn_rate, "scale: membership changes per second")
        ->check(CLI::PositiveNumber);
    app.add_option("--churn-seconds", scale.churn_seconds, "scale: churn duration")
        ->check(CLI::PositiveNumber);
    app.add_option("--big-flow", scale.big_flow, "scale: members of the one-flow run (0: skip)");
    FloodOptions flood;
    app.add_option("--flood-pps", flood.pps, "flood: spoofed Requests per second")
        ->check(CLI::PositiveNumber);
    app.add_option("--flood-seconds", flood.seconds, "flood: duration of each scenario")
        ->check(CLI::PositiveNumber);
    app.add_option("--flood-addresses", flood.spoofed_addresses, "flood: spoofed source addresses")
        ->check(CLI::PositiveNumber);
    app.add_option("--flood-workers", flood.workers, "flood: relay workers (RX queues)")
        ->check(CLI::Range(1, 8));
    app.add_option("--established", flood.established, "flood: gateways joined before it")
        ->check(CLI::Range(0, 120));
    app.add_option("--newcomers", flood.newcomers, "flood: gateways joining during it")
        ->check(CLI::Range(0, 120));
    EgressOptions egress;
    app.add_option("--link-gbps", egress.link_gbps, "egress: link rate of the port")
        ->check(CLI::PositiveNumber);
    app.add_option("--tx-descriptors", egress.tx_descriptors,
                   "egress: the worker's TX ring (a chained replica takes 2)")
        ->check(CLI::Range(64, 65536));
    app.add_option("--egress-payload", egress.payload, "egress: UDP payload octets")
        ->check(CLI::Range(16, 1400));
    app.add_option("--egress-fanout", egress.fanout, "egress: gateways per channel")
        ->check(CLI::Range(1, 65536));
    app.add_option("--burst", egress.burst, "egress: back-to-back packets per burst")
        ->check(CLI::Range(1, 1024));
    app.add_option("--egress-channels", egress.channels, "egress: channels")
        ->check(CLI::Range(1, 1024));
    app.add_option("--load", egress.loads, "egress: average egress, % of the link")
        ->check(CLI::PositiveNumber);
    app.add_option("--egress-seconds", egress.seconds, "egress: virtual seconds of input per load")
        ->check(CLI::PositiveNumber);
    app.add_option("--request-rate", egress.request_rate,
                   "egress: handshakes started per (virtual) second")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--egress-buffer-us", egress.egress_buffer_us,
                   "egress: the relay's dataplane.egress_buffer_us (0: its default)");
    CLI11_PARSE(app, argc, argv);

    std::string command;
    for (int i = 0; i < argc; ++i)
        command += (i ? " " : "") + std::string(argv[i]);
    std::vector<Result> results;
    // One EAL for the process; a second lcore (when there is a second CPU) runs the scale
    // section's worker, so that it does not share a CPU with the control loop.
    std::unique_ptr<Eal> eal;
    auto need_eal = [&] {
        if (eal) return;
        eal = std::make_unique<Eal>(std::vector<std::string>{
            "--no-huge", "-m", "1024", "--no-shconf", "--no-pci", "-l",
            sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "0-1" : "0", "--log-level=*:error"});
    };
    for (const std::string& s : sections) {
        if (s == "handshake") bench_handshake(seconds, results);
        if (s == "replication") {
            need_eal();
            bench_replication(seconds, fanouts, payloads, families, results, flow_counters);
        }
        if (s == "scale") {
            need_eal();
            bench_scale(scale, results);
        }
        if (s == "egress") {
            need_eal();
            bench_egress(egress, results);
        }
        if (s == "flood") {
            need_eal();
            bench_flood(flood, results);
        }
    }

    if (json) {
        nlohmann::json j = {{"command", command}, {"results", nlohmann::json::array()}};
        for (const Result& r : results) {
            j["results"].push_back(
                {{"section", r.section}, {"name", r.name}, {"value", r.value}, {"unit", r.unit}});
        }
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("# %s\n", command.c_str());
    for (const Result& r : results) {
        std::printf("%-12s %-58s %10.3f %s\n", r.section.c_str(), r.name.c_str(), r.value,
                    r.unit.c_str());
    }
    return 0;
}
