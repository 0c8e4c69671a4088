// Differential test of the relay's membership engine.
//
// Long random sequences of Membership Updates (IGMPv3/MLDv2 records, IGMPv2/MLDv1 reports and
// leaves), Teardowns, forged Updates and time steps drive the real RelayEngine, with real
// Request → Query → Update handshakes, and a deliberately simple reference model. After every step
// the forwarding table rebuilt from the engine's FlowEdits and the upstream joins it announced
// must agree with the model.
//
// The model is the state table of controlplane/group_membership.hpp written out with std::set:
// per endpoint, per group a mode and a set of sources; v2/v1 Report = IS_EX{} and marks the
// group as having an older-version host (BLOCK then ignored, TO_EX's sources dropped), Leave/Done
// = TO_IN{}; SSM groups (232/8, ff3x::/32) ignore IS_EX, TO_EX and v2/v1 messages; INCLUDE{}
// deletes the group; an endpoint with no group does not exist. One timer per endpoint, restarted
// by every authentic Update (checklist §8.6); Teardown removes everything. Endpoint e receives
// (S,G) iff it is INCLUDE with S listed or EXCLUDE without S listed.
//
// All times are multiples of the engine's 100 ms timer tick, so "expired" is exactly
// "now − last accepted Update > membership_timeout".
//
// On a disagreement the test prints the seed, the step, the last operations and a shrunk
// sequence of operations that still fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/relay_engine.hpp"
#include "controlplane/secret_store.hpp"

namespace amt {
namespace {

using std::chrono::milliseconds;

IpAddress addr(std::string_view text) {
    const std::optional<IpAddress> a = IpAddress::parse(text);
    if (!a) std::abort();
    return *a;
}

// ---------------------------------------------------------------------------------------------
// The fixed universe of a run: gateway endpoints, groups and sources.

struct GatewaySpec {
    UdpEndpoint address;
    UdpEndpoint relay;                   // the relay address its Requests and Updates go to
    std::vector<Family> inner_families;  // IGMP, MLD or both, whatever the outer family
};

struct GroupSpec {
    IpAddress address;
    bool ssm = false;  // written down here, not computed with the engine's is_ssm()
};

struct Universe {
    std::vector<GatewaySpec> gateways;
    std::vector<GroupSpec> groups;
    std::vector<IpAddress> sources_v4;  // what records name
    std::vector<IpAddress> sources_v6;
    IpAddress bad_v4;      // loopback: the engine drops it from records
    IpAddress bad_v6;      // link-local unicast: likewise
    IpAddress unnamed_v4;  // never in a record: must always follow (*,G)
    IpAddress unnamed_v6;

    const std::vector<IpAddress>& sources(Family f) const {
        return f == Family::ipv4 ? sources_v4 : sources_v6;
    }
    bool is_bad_source(const IpAddress& s) const { return s == bad_v4 || s == bad_v6; }
    // The sources checked after every step: the named ones and one never named.
    std::vector<IpAddress> checked_sources(Family f) const {
        std::vector<IpAddress> out = sources(f);
        out.push_back(f == Family::ipv4 ? unnamed_v4 : unnamed_v6);
        return out;
    }
    std::vector<size_t> groups_of(Family f) const {
        std::vector<size_t> out;
        for (size_t i = 0; i < groups.size(); ++i) {
            if (groups[i].address.family() == f) out.push_back(i);
        }
        return out;
    }
};

const IpAddress relay_v4 = addr("192.0.2.100");
const IpAddress relay_v6 = addr("2001:db8:ff::1");

const Universe& universe() {
    static const Universe u = [] {
        Universe u;
        const UdpEndpoint r4{relay_v4, amt_udp_port};
        const UdpEndpoint r6{relay_v6, amt_udp_port};
        const Family v4 = Family::ipv4;
        const Family v6 = Family::ipv6;
        u.gateways = {
            // Two endpoints of one host (or behind one NAT): same IP, different ports.
            {{addr("198.51.100.10"), 5000}, r4, {v4, v6}},
            {{addr("198.51.100.10"), 5001}, r4, {v4}},
            // IPv4 outside, MLD inside.
            {{addr("203.0.113.7"), 2268}, r4, {v6}},
            // IPv6 outside, IGMP and MLD inside.
            {{addr("2001:db8:100::7"), 40000}, r6, {v4, v6}},
            {{addr("2001:db8:200::9"), 2268}, r6, {v6}},
        };
        u.groups = {
            {addr("232.1.1.1"), true},
            {addr("232.1.1.2"), true},
            {addr("232.255.0.3"), true},
            {addr("232.0.1.7"), true},
            {addr("239.1.1.1"), false},
            {addr("239.1.1.2"), false},
            {addr("224.1.2.3"), false},
            {addr("233.252.0.1"), false},
            {addr("ff3e::8000:1"), true},
            {addr("ff3e::8000:2"), true},
            {addr("ff35::1:3"), true},
            {addr("ff3e::4"), true},
            {addr("ff0e::1:1"), false},
            {addr("ff0e::1:2"), false},
            {addr("ff15::4"), false},
            {addr("ff3e:40:2001:db8::1"), false},  // ff3x but outside ff3x::/32: ASM
        };
        u.sources_v4 = {addr("10.0.0.1"), addr("10.0.0.2"), addr("192.0.2.3"),
                        addr("198.51.100.4")};
        u.sources_v6 = {addr("2001:db8::1"), addr("2001:db8::2"), addr("2001:db8:1::3"),
                        addr("2001:db8:ffff::4")};
        u.bad_v4 = addr("127.0.0.1");
        u.bad_v6 = addr("fe80::1");
        u.unnamed_v4 = addr("10.9.9.9");
        u.unnamed_v6 = addr("2001:db8:9::9");
        return u;
    }();
    return u;
}

IpAddress any_source(const IpAddress& group) {
    static const uint8_t zero[16] = {};
    return group.is_v4() ? IpAddress::v4(0) : IpAddress::v6_from_bytes(zero);
}

// ---------------------------------------------------------------------------------------------
// Operations: plain data, so that a failing sequence can be replayed and shrunk.

enum class OpKind : uint8_t { report, v1v2, teardown, advance };

struct RecordSpec {
    uint8_t type = 1;                // 1-6, or an unknown type the engine must skip
    size_t group = 0;                // index into universe().groups
    std::vector<IpAddress> sources;  // as sent: any order, may repeat, may hold a bad source
};

struct Op {
    OpKind kind = OpKind::advance;
    size_t gateway = 0;
    Family family = Family::ipv4;     // report, v1v2: the inner family
    std::vector<RecordSpec> records;  // report
    bool forged = false;              // report: MAC altered, the engine must ignore it
    size_t group = 0;                 // v1v2
    bool join = false;                // v1v2: Report (true) or Leave/Done (false)
    bool moved = false;               // teardown: sent from the gateway's new port
    int64_t advance_ms = 0;           // advance
};

const char* record_name(uint8_t type) {
    switch (type) {
        case 1:
            return "IS_IN";
        case 2:
            return "IS_EX";
        case 3:
            return "TO_IN";
        case 4:
            return "TO_EX";
        case 5:
            return "ALLOW";
        case 6:
            return "BLOCK";
        default:
            return "UNKNOWN";
    }
}

std::string describe(const Op& op) {
    const Universe& u = universe();
    std::ostringstream out;
    if (op.kind == OpKind::advance) {
        out << "advance " << op.advance_ms << " ms";
        return out.str();
    }
    out << "E" << op.gateway << " " << u.gateways[op.gateway].address.to_string() << " ";
    switch (op.kind) {
        case OpKind::report:
            out << (op.family == Family::ipv4 ? "IGMPv3" : "MLDv2") << " report"
                << (op.forged ? " (forged MAC)" : "") << " {";
            for (size_t i = 0; i < op.records.size(); ++i) {
                const RecordSpec& r = op.records[i];
                out << (i ? "; " : "") << record_name(r.type);
                if (r.type < 1 || r.type > 6) out << "(" << int{r.type} << ")";
                out << " " << u.groups[r.group].address.to_string() << " [";
                for (size_t j = 0; j < r.sources.size(); ++j)
                    out << (j ? " " : "") << r.sources[j].to_string();
                out << "]";
            }
            out << "}";
            break;
        case OpKind::v1v2:
            out << (op.family == Family::ipv4 ? (op.join ? "IGMPv2 Report" : "IGMPv2 Leave")
                                              : (op.join ? "MLDv1 Report" : "MLDv1 Done"))
                << " " << u.groups[op.group].address.to_string();
            break;
        case OpKind::teardown:
            out << "Teardown" << (op.moved ? " (from the new port)" : "");
            break;
        case OpKind::advance:
            break;
    }
    return out.str();
}

// ---------------------------------------------------------------------------------------------
// The reference model.

struct ModelGroup {
    bool exclude = false;
    bool older_host = false;  // an IGMPv2/MLDv1 Report was seen while the group existed
    std::set<IpAddress> sources;
};

struct ModelEndpoint {
    std::map<IpAddress, ModelGroup> groups;  // no entry = INCLUDE{}
    Time refreshed{};                        // last accepted Update
};

struct ModelCounters {
    uint64_t block_ignored_older_host = 0;
    uint64_t to_ex_sources_dropped = 0;
    uint64_t ssm_ignored = 0;
    uint64_t expired = 0;
    uint64_t torn_down = 0;
};

class Model {
  public:
    Model(size_t endpoints, Time timeout) : endpoints_(endpoints), timeout_(timeout) {}

    // An authentic Update arrived from e.
    void accepted_update(size_t e, Time now) { endpoints_[e].refreshed = now; }

    void record(size_t e, const RecordSpec& r) {
        const GroupSpec& g = universe().groups[r.group];
        if (r.type < 1 || r.type > 6) return;
        const auto type = static_cast<RecordType>(r.type);
        const bool exclude =
            type == RecordType::mode_is_exclude || type == RecordType::change_to_exclude;
        if (g.ssm && exclude) {
            ++counters_.ssm_ignored;
            return;
        }
        std::set<IpAddress> b;
        for (const IpAddress& s : r.sources) {
            if (!universe().is_bad_source(s)) b.insert(s);
        }
        apply(endpoints_[e], g.address, type, b);
    }

    void v1v2(size_t e, size_t group, bool join) {
        const GroupSpec& g = universe().groups[group];
        if (g.ssm) {
            ++counters_.ssm_ignored;
            return;
        }
        ModelEndpoint& ep = endpoints_[e];
        if (join) {
            ep.groups[g.address].older_host = true;
            apply(ep, g.address, RecordType::mode_is_exclude, {});
        } else {
            apply(ep, g.address, RecordType::change_to_include, {});
        }
    }

    void teardown(size_t e) {
        if (!endpoints_[e].groups.empty()) ++counters_.torn_down;
        endpoints_[e].groups.clear();
    }

    void advance(Time now) {
        for (ModelEndpoint& ep : endpoints_) {
            if (!ep.groups.empty() && now - ep.refreshed > timeout_) {
                ep.groups.clear();
                ++counters_.expired;
            }
        }
    }

    const ModelGroup* group(size_t e, const IpAddress& g) const {
        const auto it = endpoints_[e].groups.find(g);
        return it == endpoints_[e].groups.end() ? nullptr : &it->second;
    }

    bool receives(size_t e, const IpAddress& g, const IpAddress& s) const {
        const ModelGroup* mg = group(e, g);
        if (mg == nullptr) return false;
        const bool listed = mg->sources.count(s) > 0;
        return mg->exclude ? !listed : listed;
    }

    bool exists(size_t e) const { return !endpoints_[e].groups.empty(); }
    size_t group_count() const {
        size_t n = 0;
        for (const ModelEndpoint& ep : endpoints_)
            n += ep.groups.size();
        return n;
    }
    Time refreshed(size_t e) const { return endpoints_[e].refreshed; }
    size_t endpoints() const { return endpoints_.size(); }
    const ModelCounters& counters() const { return counters_; }

    std::string describe(size_t e, const IpAddress& g) const {
        const ModelGroup* mg = group(e, g);
        if (mg == nullptr) return "no state";
        std::string out = mg->exclude ? "EXCLUDE{" : "INCLUDE{";
        bool first = true;
        for (const IpAddress& s : mg->sources) {
            out += (first ? "" : " ") + s.to_string();
            first = false;
        }
        out += "}";
        if (mg->older_host) out += " (older-version host)";
        return out;
    }

  private:
    void apply(ModelEndpoint& ep, const IpAddress& address, RecordType type,
               const std::set<IpAddress>& b) {
        ModelGroup g = ep.groups.count(address) ? ep.groups[address] : ModelGroup{};
        std::set<IpAddress> next;
        switch (type) {
            case RecordType::mode_is_include:
            case RecordType::allow_new_sources:
                next = g.sources;
                for (const IpAddress& s : b) {
                    if (g.exclude) {
                        next.erase(s);  // EXCLUDE(Y−B)
                    } else {
                        next.insert(s);  // INCLUDE(A+B)
                    }
                }
                break;
            case RecordType::block_old_sources:
                if (g.older_host) {
                    ++counters_.block_ignored_older_host;
                    return;
                }
                next = g.sources;
                for (const IpAddress& s : b) {
                    if (g.exclude) {
                        next.insert(s);  // EXCLUDE(Y+B)
                    } else {
                        next.erase(s);  // INCLUDE(A−B)
                    }
                }
                break;
            case RecordType::change_to_include:
                g.exclude = false;
                next = b;  // INCLUDE(B)
                break;
            case RecordType::mode_is_exclude:
                for (const IpAddress& s : b) {
                    const bool in_a = g.sources.count(s) > 0;
                    // INCLUDE(A) → EXCLUDE(B−A); EXCLUDE(Y) → EXCLUDE(Y·B)
                    if (g.exclude == in_a) next.insert(s);
                }
                g.exclude = true;
                break;
            case RecordType::change_to_exclude:
                g.exclude = true;
                if (g.older_host) {
                    if (!b.empty()) ++counters_.to_ex_sources_dropped;
                } else {
                    next = b;  // EXCLUDE(B)
                }
                break;
        }
        g.sources = std::move(next);
        if (!g.exclude && g.sources.empty()) {
            ep.groups.erase(address);  // INCLUDE{}: no membership, compatibility mode forgotten
        } else {
            ep.groups[address] = std::move(g);
        }
    }

    std::vector<ModelEndpoint> endpoints_;
    Time timeout_;
    ModelCounters counters_;
};

// ---------------------------------------------------------------------------------------------
// The dataplane's view, rebuilt from the engine's output, with the edit stream's consistency.

std::string key_string(const FlowKey& k) {
    return "(" + (k.any_source() ? std::string("*") : k.source.to_string()) + "," +
           k.group.to_string() + ")";
}

struct Reply {
    UdpEndpoint from;
    UdpEndpoint to;
    std::vector<uint8_t> payload;
};

class DataplaneView : public EngineSink {
  public:
    void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) override {
        replies.push_back({from, to, std::vector<uint8_t>(payload.begin(), payload.end())});
    }

    void flow_edit(const FlowEdit& e) override {
        const std::string k = key_string(e.key);
        const auto it = flows.find(e.key);
        switch (e.op) {
            case FlowOp::create_flow:
                if (it != flows.end()) {
                    error("create_flow " + k + ": the flow exists");
                } else {
                    flows.emplace(e.key, std::set<EndpointId>{});
                }
                break;
            case FlowOp::delete_flow:
                if (it == flows.end()) {
                    error("delete_flow " + k + ": no such flow");
                } else {
                    flows.erase(it);
                }
                break;
            case FlowOp::add_tunnel:
                check_tunnel(e);
                tunnel_of[e.endpoint] = e.tunnel;  // ids are reused: the latest add names it
                if (it == flows.end()) {
                    error("add_tunnel " + k + " id " + std::to_string(e.endpoint) +
                          ": no such flow");
                } else if (!it->second.insert(e.endpoint).second) {
                    error("add_tunnel " + k + " id " + std::to_string(e.endpoint) +
                          ": already a member");
                }
                break;
            case FlowOp::remove_tunnel:
                if (it == flows.end()) {
                    error("remove_tunnel " + k + " id " + std::to_string(e.endpoint) +
                          ": no such flow");
                } else if (it->second.erase(e.endpoint) == 0) {
                    error("remove_tunnel " + k + " id " + std::to_string(e.endpoint) +
                          ": not a member");
                }
                break;
        }
        max_flows = std::max(max_flows, flows.size());
    }

    void upstream_change(const FlowKey& key, bool join) override {
        if (join && !joined.insert(key).second)
            error("upstream join " + key_string(key) + " twice");
        if (!join && joined.erase(key) == 0) {
            error("upstream leave " + key_string(key) + " without a join");
        }
    }

    std::string gateway_name(EndpointId id) const {
        const auto it = tunnel_of.find(id);
        if (it == tunnel_of.end()) return "id " + std::to_string(id) + " (never added)";
        for (size_t i = 0; i < universe().gateways.size(); ++i) {
            if (universe().gateways[i].address == it->second) return "E" + std::to_string(i);
        }
        return it->second.to_string();
    }

    std::map<FlowKey, std::set<EndpointId>> flows;
    std::map<EndpointId, UdpEndpoint> tunnel_of;
    std::set<FlowKey> joined;
    std::vector<Reply> replies;
    std::vector<std::string> errors;
    size_t max_flows = 0;

  private:
    void error(std::string text) { errors.push_back(std::move(text)); }

    void check_tunnel(const FlowEdit& e) {
        for (const GatewaySpec& g : universe().gateways) {
            if (g.address == e.tunnel) {
                if (e.relay != g.relay) {
                    error("add_tunnel " + key_string(e.key) + " for " + e.tunnel.to_string() +
                          ": relay " + e.relay.to_string() + ", its Updates went to " +
                          g.relay.to_string());
                }
                return;
            }
        }
        error("add_tunnel " + key_string(e.key) + ": tunnel " + e.tunnel.to_string() +
              " is no gateway endpoint");
    }
};

// ---------------------------------------------------------------------------------------------
// One engine, one model, and the checks between them.

EngineConfig differential_config(Seconds timeout) {
    EngineConfig c;
    c.relay_addresses = {relay_v4, relay_v6};
    c.membership_timeout = timeout;
    c.teardown = true;
    c.asm_enabled = true;
    c.limits.max_endpoints = 1'000;
    c.limits.max_endpoints_per_source_ip = 1'000;
    c.limits.max_groups_per_endpoint = 1'000;
    c.limits.max_sources_per_group = 1'000;
    c.limits.replies_per_second_per_source_ip = 1e9;
    c.limits.replies_per_second = 1e9;
    c.limits.reply_burst = 1e9;
    c.limits.reply_burst_per_source_ip = 1e9;
    return c;
}

constexpr Time start_time = std::chrono::seconds{1'000};

class Harness {
  public:
    explicit Harness(Seconds timeout)
        : config_(differential_config(timeout)),
          secrets_(now_),
          engine_(config_, secrets_, view_),
          model_(universe().gateways.size(), timeout) {
        engine_.advance(now_);
    }

    // Applies one operation to the engine and the model; returns the disagreements, or "".
    std::string step(const Op& op) {
        view_.errors.clear();
        view_.replies.clear();
        std::string problem;
        switch (op.kind) {
            case OpKind::report:
            case OpKind::v1v2:
                problem = update(op);
                break;
            case OpKind::teardown:
                problem = teardown(op);
                break;
            case OpKind::advance:
                now_ += milliseconds{op.advance_ms};
                engine_.advance(now_);
                model_.advance(now_);
                break;
        }
        if (!problem.empty()) return problem;
        std::string out;
        for (const std::string& e : view_.errors)
            out += "\n  edit stream: " + e;
        if (!view_.replies.empty()) out += "\n  unexpected reply to an Update or Teardown";
        return out + compare();
    }

    const Model& model() const { return model_; }
    const DataplaneView& view() const { return view_; }
    const RelayEngine& engine() const { return engine_; }
    Time now() const { return now_; }

  private:
    struct Handshake {
        ResponseMac mac{};
        uint32_t nonce = 0;
    };

    // Request from the gateway, Query back: the MAC and nonce its next message must carry.
    std::string handshake(size_t gateway, Family family, Handshake& out) {
        const GatewaySpec& g = universe().gateways[gateway];
        const uint32_t nonce = static_cast<uint32_t>(0x9e3779b9u * ++requests_ + 0x1234u);
        uint8_t request[request_size];
        const uint8_t flags = family == Family::ipv6 ? request_p_flag : 0;
        if (build_request(request, {nonce, flags}) != request_size)
            return "\n  build_request failed";
        view_.replies.clear();
        engine_.handle({g.address, g.relay, ByteView(request, request_size)}, now_);
        if (view_.replies.size() != 1) {
            return "\n  Request from " + g.address.to_string() + " got " +
                   std::to_string(view_.replies.size()) + " replies, expected one Query";
        }
        const Reply reply = view_.replies.front();
        view_.replies.clear();
        MembershipQuery q;
        if (parse_membership_query(reply.payload, q) != ParseError::ok || reply.to != g.address ||
            reply.from != g.relay || q.nonce != nonce) {
            return "\n  bad Query for the Request from " + g.address.to_string();
        }
        if (!q.gateway || *q.gateway != g.address) {
            return "\n  Query without the gateway fields of " + g.address.to_string();
        }
        out.mac = q.mac;
        out.nonce = q.nonce;
        return {};
    }

    std::string update(const Op& op) {
        const Universe& u = universe();
        const GatewaySpec& g = u.gateways[op.gateway];
        Handshake hs;
        if (std::string e = handshake(op.gateway, op.family, hs); !e.empty()) return e;
        std::array<uint8_t, 1024> inner{};
        size_t n = 0;
        if (op.kind == OpKind::report) {
            ReportBuilder report(inner, op.family);
            for (const RecordSpec& r : op.records) {
                if (!report.add_record(static_cast<RecordType>(r.type), u.groups[r.group].address,
                                       r.sources)) {
                    return "\n  ReportBuilder refused a record";
                }
            }
            n = report.finish();
        } else {
            const bool v4 = op.family == Family::ipv4;
            const ReportKind kind =
                v4 ? (op.join ? ReportKind::igmpv2_report : ReportKind::igmpv2_leave)
                   : (op.join ? ReportKind::mldv1_report : ReportKind::mldv1_done);
            n = build_v1v2_message(inner, kind, u.groups[op.group].address,
                                   v4 ? addr("10.255.0.1") : addr("fe80::2"));
        }
        if (n == 0) return "\n  could not build the report";
        ResponseMac mac = hs.mac;
        if (op.forged) mac[0] ^= 0x5a;
        std::array<uint8_t, 1100> msg{};
        const size_t m = build_membership_update(msg, mac, hs.nonce, ByteView(inner.data(), n));
        if (m == 0) return "\n  could not build the Update";
        engine_.handle({g.address, g.relay, ByteView(msg.data(), m)}, now_);
        if (op.forged) return {};
        model_.accepted_update(op.gateway, now_);
        if (op.kind == OpKind::report) {
            for (const RecordSpec& r : op.records)
                model_.record(op.gateway, r);
        } else {
            model_.v1v2(op.gateway, op.group, op.join);
        }
        return {};
    }

    std::string teardown(const Op& op) {
        const GatewaySpec& g = universe().gateways[op.gateway];
        Handshake hs;
        if (std::string e = handshake(op.gateway, Family::ipv4, hs); !e.empty()) return e;
        uint8_t msg[teardown_size];
        if (build_teardown(msg, {hs.mac, hs.nonce, g.address}) != teardown_size) {
            return "\n  could not build the Teardown";
        }
        UdpEndpoint from = g.address;
        if (op.moved) from.port = static_cast<uint16_t>(from.port + 1000);
        engine_.handle({from, g.relay, ByteView(msg, teardown_size)}, now_);
        model_.teardown(op.gateway);
        return {};
    }

    // Forwarding, flow set and upstream joins against the model.
    std::string compare() const {
        const Universe& u = universe();
        std::ostringstream out;
        int problems = 0;
        auto problem = [&]() -> std::ostream& {
            ++problems;
            return out << "\n  ";
        };
        std::set<FlowKey> want_flows;
        std::set<FlowKey> want_joins;
        for (const GroupSpec& gs : u.groups) {
            const IpAddress& g = gs.address;
            const FlowKey star{any_source(g), g};
            for (size_t e = 0; e < model_.endpoints(); ++e) {
                const ModelGroup* mg = model_.group(e, g);
                if (mg == nullptr) continue;
                if (mg->exclude) {
                    want_flows.insert(star);
                    want_joins.insert(star);
                }
                for (const IpAddress& s : mg->sources) {
                    want_flows.insert({s, g});
                    if (!mg->exclude) want_joins.insert({s, g});
                }
            }
            for (const IpAddress& s : u.checked_sources(g.family())) {
                auto flow = view_.flows.find({s, g});
                if (flow == view_.flows.end()) flow = view_.flows.find(star);
                for (size_t e = 0; e < model_.endpoints(); ++e) {
                    const bool want = model_.receives(e, g, s);
                    int copies = 0;
                    if (flow != view_.flows.end()) {
                        for (EndpointId id : flow->second) {
                            const auto t = view_.tunnel_of.find(id);
                            if (t != view_.tunnel_of.end() && t->second == u.gateways[e].address) {
                                ++copies;
                            }
                        }
                    }
                    if (copies == (want ? 1 : 0) || problems >= 10) continue;
                    problem() << "E" << e << " gets " << copies << " copies of " << s.to_string()
                              << " → " << g.to_string() << ", model says " << (want ? 1 : 0)
                              << " (model: " << model_.describe(e, g)
                              << "; dataplane: " << describe_flow(flow) << ")";
                }
            }
        }
        for (const auto& [key, members] : view_.flows) {
            if (!want_flows.count(key) && problems < 10) {
                problem() << "flow " << key_string(key) << " exists but nothing lists it"
                          << " (members " << describe_flow(view_.flows.find(key)) << ")";
            }
        }
        for (const FlowKey& key : want_flows) {
            if (!view_.flows.count(key) && problems < 10) {
                problem() << "flow " << key_string(key) << " missing";
            }
        }
        for (const FlowKey& key : view_.joined) {
            if (!want_joins.count(key) && problems < 10) {
                problem() << "upstream " << key_string(key) << " joined, no endpoint wants it";
            }
        }
        for (const FlowKey& key : want_joins) {
            if (!view_.joined.count(key) && problems < 10) {
                problem() << "upstream " << key_string(key) << " wanted but not joined";
            }
        }
        // An endpoint exists iff it holds a group; nothing is left behind.
        const MembershipDb& db = engine_.memberships();
        size_t live = 0;
        std::set<IpAddress> groups_held;
        for (size_t e = 0; e < model_.endpoints(); ++e) {
            live += model_.exists(e);
            for (const GroupSpec& gs : u.groups) {
                if (model_.group(e, gs.address) != nullptr) groups_held.insert(gs.address);
            }
            const bool known = db.find(u.gateways[e].address) != MembershipDb::no_endpoint;
            if (known != model_.exists(e) && problems < 10) {
                problem() << "E" << e << (known ? " has" : " has no") << " engine state, model "
                          << (model_.exists(e) ? "has state" : "has none");
            }
        }
        if (db.endpoint_count() != live || db.group_count() != groups_held.size() ||
            db.flow_count() != view_.flows.size()) {
            problem() << "engine counts " << db.endpoint_count() << " endpoints, "
                      << db.group_count() << " groups, " << db.flow_count() << " flows; expected "
                      << live << ", " << groups_held.size() << ", " << view_.flows.size();
        }
        check_flow_budget_accounting(problem);
        return out.str();
    }

    // The flows the model's endpoint e makes the table keep: an (S,G) per listed source, a (*,G)
    // per EXCLUDE group.
    std::set<FlowKey> flows_held(size_t e) const {
        std::set<FlowKey> out;
        for (const GroupSpec& gs : universe().groups) {
            const ModelGroup* g = model_.group(e, gs.address);
            if (g == nullptr) continue;
            for (const IpAddress& s : g->sources)
                out.insert({s, gs.address});
            if (g->exclude) out.insert({any_source_of(gs.address), gs.address});
        }
        return out;
    }

    // What the flow budgets count (limits.max_flows_per_endpoint / _per_source_ip): every
    // endpoint's flows, and the distinct flows of all endpoints of its address.
    template <typename Problem>
    void check_flow_budget_accounting(Problem& problem) const {
        const Universe& u = universe();
        const MembershipDb& db = engine_.memberships();
        for (size_t e = 0; e < model_.endpoints(); ++e) {
            const EndpointId id = db.find(u.gateways[e].address);
            if (id == MembershipDb::no_endpoint) continue;
            std::set<FlowKey> address;
            for (size_t x = 0; x < model_.endpoints(); ++x) {
                if (u.gateways[x].address.ip != u.gateways[e].address.ip) continue;
                const std::set<FlowKey> held = flows_held(x);
                address.insert(held.begin(), held.end());
            }
            const size_t own = flows_held(e).size();
            if (db.flows_of(id) != own || db.flows_of_address(id) != address.size()) {
                problem() << "E" << e << " holds " << db.flows_of(id) << " flows, its address "
                          << db.flows_of_address(id) << "; expected " << own << ", "
                          << address.size();
            }
        }
    }

    std::string describe_flow(std::map<FlowKey, std::set<EndpointId>>::const_iterator it) const {
        if (it == view_.flows.end()) return "no (S,G) or (*,G) flow";
        std::string out = key_string(it->first) + " {";
        bool first = true;
        for (EndpointId id : it->second) {
            out += (first ? "" : " ") + view_.gateway_name(id) + "#" + std::to_string(id);
            first = false;
        }
        return out + "}";
    }

    EngineConfig config_;
    Time now_ = start_time;
    SecretStore secrets_;
    DataplaneView view_;
    RelayEngine engine_;
    Model model_;
    uint32_t requests_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Random operations.

class OpGenerator {
  public:
    OpGenerator(uint64_t seed, Seconds timeout) : rng_(seed), timeout_ms_(timeout.count() * 1000) {}

    Op next(const Harness& h) {
        const Universe& u = universe();
        Op op;
        const int roll = uniform(0, 99);
        op.gateway = pick_index(u.gateways.size());
        const auto& families = u.gateways[op.gateway].inner_families;
        op.family = pick(families);
        if (roll < 44) {
            op.kind = OpKind::report;
            op.forged = uniform(0, 99) < 4;
            // Now and then a report without records: a refresh that changes nothing.
            const int records = uniform(0, 99) < 4 ? 0 : uniform(1, 3);
            for (int i = 0; i < records; ++i)
                op.records.push_back(record(op.family));
        } else if (roll < 58) {
            op.kind = OpKind::v1v2;
            op.group = pick_group(op.family);
            op.join = uniform(0, 99) < 60;
        } else if (roll < 63) {
            op.kind = OpKind::teardown;
            op.moved = uniform(0, 1) == 1;
        } else {
            op.kind = OpKind::advance;
            op.advance_ms = advance(h, roll);
        }
        return op;
    }

  private:
    int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
    size_t pick_index(size_t n) { return static_cast<size_t>(uniform(0, static_cast<int>(n) - 1)); }
    template <typename T>
    const T& pick(const std::vector<T>& v) {
        return v[pick_index(v.size())];
    }

    size_t pick_group(Family f) { return pick(universe().groups_of(f)); }

    RecordSpec record(Family f) {
        const Universe& u = universe();
        RecordSpec r;
        r.type = static_cast<uint8_t>(uniform(0, 99) < 3 ? (uniform(0, 1) ? 7 : 0) : uniform(1, 6));
        r.group = pick_group(f);
        for (const IpAddress& s : u.sources(f)) {
            if (uniform(0, 99) < 40) r.sources.push_back(s);
        }
        if (!r.sources.empty() && uniform(0, 99) < 15) {
            r.sources.push_back(r.sources[pick_index(r.sources.size())]);
        }
        if (uniform(0, 99) < 10) r.sources.push_back(f == Family::ipv4 ? u.bad_v4 : u.bad_v6);
        std::shuffle(r.sources.begin(), r.sources.end(), rng_);
        return r;
    }

    // Mostly short steps; sometimes exactly around some endpoint's expiry (one tick before, at,
    // one tick after); sometimes long pauses, beyond one turn of the engine's timer wheel.
    int64_t advance(const Harness& h, int roll) {
        const int64_t tick_ms = 100;
        if (roll < 96) return tick_ms * uniform(1, 100);
        if (roll < 99) {
            // Mostly the endpoint refreshed longest ago, which alone expires at the boundary.
            std::vector<size_t> live;
            for (size_t e = 0; e < h.model().endpoints(); ++e) {
                if (h.model().exists(e)) live.push_back(e);
            }
            std::sort(live.begin(), live.end(), [&](size_t a, size_t b) {
                return h.model().refreshed(a) < h.model().refreshed(b);
            });
            if (!live.empty()) {
                const size_t e = uniform(0, 3) ? live.front() : pick(live);
                const int64_t target_ms =
                    std::chrono::duration_cast<milliseconds>(h.model().refreshed(e)).count() +
                    timeout_ms_ + tick_ms * uniform(-1, 1);
                const int64_t now_ms = std::chrono::duration_cast<milliseconds>(h.now()).count();
                if (target_ms > now_ms) return target_ms - now_ms;
            }
            return tick_ms * uniform(1, 100);
        }
        return tick_ms * uniform(static_cast<int>(timeout_ms_ / tick_ms / 2),
                                 static_cast<int>(timeout_ms_ / tick_ms * 2));
    }

    std::mt19937_64 rng_;
    int64_t timeout_ms_;
};

// ---------------------------------------------------------------------------------------------
// Replay and shrinking.

// Runs `ops` from a fresh engine and model; returns the first disagreement ("" if none).
std::string replay(Seconds timeout, const std::vector<Op>& ops, size_t& failed_at) {
    Harness h(timeout);
    for (size_t i = 0; i < ops.size(); ++i) {
        std::string problem = h.step(ops[i]);
        if (!problem.empty()) {
            failed_at = i;
            return problem;
        }
    }
    return {};
}

// Greedy delta debugging: drops chunks of operations while the sequence still fails, then
// simplifies what is left (adjacent time steps merged, records and sources dropped).
// `budget` bounds the operations replayed in all (about 20 µs each).
std::vector<Op> shrink(Seconds timeout, std::vector<Op> ops, int64_t budget) {
    size_t failed_at = 0;
    auto still_fails = [&](std::vector<Op>& candidate) {
        budget -= static_cast<int64_t>(candidate.size());
        if (candidate.empty() || replay(timeout, candidate, failed_at).empty()) return false;
        candidate.resize(failed_at + 1);
        return true;
    };
    for (size_t chunk = std::max<size_t>(ops.size() / 2, 1); budget > 0;) {
        bool progress = false;
        for (size_t i = 0; i < ops.size() && budget > 0;) {
            std::vector<Op> candidate(ops.begin(), ops.begin() + static_cast<ptrdiff_t>(i));
            candidate.insert(candidate.end(),
                             ops.begin() + static_cast<ptrdiff_t>(std::min(i + chunk, ops.size())),
                             ops.end());
            if (still_fails(candidate)) {
                ops = std::move(candidate);
                progress = true;
            } else {
                i += chunk;
            }
        }
        if (!progress) {
            if (chunk == 1) break;
            chunk /= 2;
        }
    }
    for (bool progress = true; progress && budget > 0;) {
        progress = false;
        for (size_t i = 0; i + 1 < ops.size() && !progress; ++i) {
            if (ops[i].kind != OpKind::advance || ops[i + 1].kind != OpKind::advance) continue;
            std::vector<Op> candidate = ops;
            candidate[i].advance_ms += candidate[i + 1].advance_ms;
            candidate.erase(candidate.begin() + static_cast<ptrdiff_t>(i) + 1);
            if (still_fails(candidate)) {
                ops = std::move(candidate);
                progress = true;
            }
        }
        for (size_t i = 0; i < ops.size() && !progress; ++i) {
            for (size_t r = 0; r < ops[i].records.size() && !progress; ++r) {
                std::vector<Op> candidate = ops;
                auto& records = candidate[i].records;
                if (records.size() > 1) {
                    records.erase(records.begin() + static_cast<ptrdiff_t>(r));
                    if (still_fails(candidate)) {
                        ops = std::move(candidate);
                        progress = true;
                        break;
                    }
                }
                for (size_t s = 0; s < ops[i].records[r].sources.size() && !progress; ++s) {
                    candidate = ops;
                    auto& sources = candidate[i].records[r].sources;
                    sources.erase(sources.begin() + static_cast<ptrdiff_t>(s));
                    if (still_fails(candidate)) {
                        ops = std::move(candidate);
                        progress = true;
                    }
                }
            }
        }
    }
    return ops;
}

std::string failure_report(uint64_t seed, Seconds timeout, const std::vector<Op>& ops,
                           const std::string& problem, int64_t shrink_budget) {
    std::ostringstream out;
    out << "seed " << seed << " (membership_timeout " << timeout.count() << " s), step "
        << ops.size() - 1 << ": engine and model disagree:" << problem << "\nlast operations:";
    for (size_t i = ops.size() > 12 ? ops.size() - 12 : 0; i < ops.size(); ++i)
        out << "\n  #" << i << " " << describe(ops[i]);
    const std::vector<Op> small = shrink(timeout, ops, shrink_budget);
    size_t failed_at = 0;
    const std::string small_problem = replay(timeout, small, failed_at);
    out << "\nshrunk to " << small.size() << " operations (from a fresh engine):";
    for (size_t i = 0; i < small.size(); ++i)
        out << "\n  " << i << ". " << describe(small[i]);
    out << "\nwhich fail at the last one with:" << small_problem;
    return out.str();
}

TEST(Differential, RandomSequencesAgreeWithReferenceModel) {
    constexpr uint64_t seeds = 20;
    constexpr size_t steps = 2000;
    int failed_seeds = 0;
    ModelCounters total;
    uint64_t engine_expired = 0;
    size_t max_flows = 0;
    uint64_t group_steps = 0;  // sum over steps of the groups held: how much state there was
    for (uint64_t seed = 1; seed <= seeds && failed_seeds < 3; ++seed) {
        // Every third seed uses a timer longer than one turn of the engine's timer wheel.
        const Seconds timeout{seed % 3 == 0 ? 600 : 270};
        ASSERT_EQ(validate(differential_config(timeout)), "");
        OpGenerator gen(seed, timeout);
        Harness h(timeout);
        std::vector<Op> ops;
        for (size_t step = 0; step < steps; ++step) {
            ops.push_back(gen.next(h));
            const std::string problem = h.step(ops.back());
            if (!problem.empty()) {
                // The first failure is shrunk thoroughly, later ones briefly.
                ADD_FAILURE() << failure_report(seed, timeout, ops, problem,
                                                failed_seeds == 0 ? 1'000'000 : 100'000);
                ++failed_seeds;
                break;
            }
            group_steps += h.model().group_count();
        }
        const ModelCounters& c = h.model().counters();
        total.block_ignored_older_host += c.block_ignored_older_host;
        total.to_ex_sources_dropped += c.to_ex_sources_dropped;
        total.ssm_ignored += c.ssm_ignored;
        total.expired += c.expired;
        total.torn_down += c.torn_down;
        engine_expired += h.engine().expired_endpoints();
        max_flows = std::max(max_flows, h.view().max_flows);
    }
    std::printf(
        "[differential] expired %llu (engine %llu), torn down %llu, older-host BLOCK "
        "ignored %llu, TO_EX sources dropped %llu, SSM ignored %llu, max flows %zu, mean groups "
        "held %.1f\n",
        static_cast<unsigned long long>(total.expired),
        static_cast<unsigned long long>(engine_expired),
        static_cast<unsigned long long>(total.torn_down),
        static_cast<unsigned long long>(total.block_ignored_older_host),
        static_cast<unsigned long long>(total.to_ex_sources_dropped),
        static_cast<unsigned long long>(total.ssm_ignored), max_flows,
        static_cast<double>(group_steps) / (seeds * steps));
    if (failed_seeds > 0) return;
    // The sequences did reach the interesting cases.
    EXPECT_GT(total.expired, 0u);
    EXPECT_GT(total.torn_down, 0u);
    EXPECT_GT(total.block_ignored_older_host, 0u);
    EXPECT_GT(total.to_ex_sources_dropped, 0u);
    EXPECT_GT(total.ssm_ignored, 0u);
}

}  // namespace
}  // namespace amt
