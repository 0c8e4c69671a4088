#include "controlplane/handshake_responder.hpp"

#include <algorithm>
#include <array>

#include "common/packet_headers.hpp"

namespace amt {

namespace {
bool contains(const std::vector<IpAddress>& list, const IpAddress& a) {
    return std::find(list.begin(), list.end(), a) != list.end();
}
}  // namespace

HandshakeResponder::HandshakeResponder(const EngineConfig& config, const SecretStore& secrets,
                                       ReplyGuard& guard)
    : config_(config),
      secrets_(secrets),
      secret_generation_(secrets.generation()),
      snapshot_(secrets.snapshot()),
      current_mac_(std::make_unique<MacComputer>(config.mac_algorithm, snapshot_.current)),
      previous_mac_(std::make_unique<MacComputer>(config.mac_algorithm, snapshot_.previous)),
      guard_(guard) {
    reload_limits();
}

void HandshakeResponder::reconfigure(const EngineConfig& config) {
    if (config.mac_algorithm != config_.mac_algorithm) {
        // New algorithm: new key schedules. Outstanding Queries' MACs stop verifying, as after
        // a restart; gateways recover with their next Request.
        current_mac_ = std::make_unique<MacComputer>(config.mac_algorithm, snapshot_.current);
        previous_mac_ = std::make_unique<MacComputer>(config.mac_algorithm, snapshot_.previous);
    }
    config_ = config;
}

// Per burst: two loads when nothing changed. The buckets keep their tokens across a reload.
void HandshakeResponder::reload_limits() {
    const uint64_t g = guard_.generation();
    if (g == guard_generation_) return;
    const PerSourceReplyLimits l = guard_.per_source();
    limiter_.configure(l.per_second, l.burst);
    guard_generation_ = g;
}

// The global budget: unknown addresses stop where the reserve starts; only when that refuses
// is the known-gateway set asked (two loads), so a reply costs one CAS when there is no flood.
bool HandshakeResponder::take_budget(const IpAddress& source, Time now) {
    ReplyBudget& budget = guard_.budget();
    if (budget.take(now, false) != BudgetVerdict::refused) return true;
    if (!guard_.known_gateways().contains(source)) {
        counters_.drop(DropReason::reply_budget_exhausted);
        return false;
    }
    if (budget.take(now, true) != BudgetVerdict::refused) return true;
    counters_.drop(DropReason::reply_reserve_exhausted);
    return false;
}

void HandshakeResponder::refresh_secrets() {
    const uint64_t g = secrets_.generation();
    if (g == secret_generation_) return;
    snapshot_ = secrets_.snapshot();
    secret_generation_ = snapshot_.generation;
    current_mac_->set_secret(snapshot_.current);
    previous_mac_->set_secret(snapshot_.previous);
}

bool HandshakeResponder::is_relay_address(const UdpEndpoint& dst) const {
    return dst.port == amt_udp_port && contains(config_.relay_addresses, dst.ip);
}

bool HandshakeResponder::is_discovery_address(const UdpEndpoint& dst) const {
    return dst.port == amt_udp_port && (contains(config_.relay_addresses, dst.ip) ||
                                        contains(config_.discovery_addresses, dst.ip));
}

// Checks shared by both replies: never answer a martian, the relay itself, or a flooding source.
bool HandshakeResponder::accept_reply_target(const Datagram& d, Time now) {
    if (ParseError e = check_reply_source(d.src); e != ParseError::ok) {
        counters_.malformed_input(e);
        return false;
    }
    if (contains(config_.relay_addresses, d.src.ip) ||
        contains(config_.discovery_addresses, d.src.ip)) {
        counters_.drop(DropReason::source_is_relay_address);
        return false;
    }
    if (!limiter_.allow(d.src.ip, now)) {
        counters_.drop(DropReason::rate_limited);
        return false;
    }
    return take_budget(d.src.ip, now);
}

void HandshakeResponder::answer_discovery(const Datagram& d, Time now, ReplySink& sink) {
    Discovery disc;
    if (ParseError e = parse_discovery(d.payload, disc); e != ParseError::ok) {
        counters_.malformed_input(e);
        return;
    }
    if (!is_discovery_address(d.dst)) {
        counters_.drop(DropReason::not_for_relay_address);
        return;
    }
    // Advertise a unicast relay address of the family the Discovery came over (§5.3.3.2).
    const auto relay =
        std::find_if(config_.relay_addresses.begin(), config_.relay_addresses.end(),
                     [&](const IpAddress& a) { return a.family() == d.dst.ip.family(); });
    if (relay == config_.relay_addresses.end()) {
        counters_.drop(DropReason::no_relay_address_for_family);
        return;
    }
    if (!accept_reply_target(d, now)) return;
    uint8_t buf[advertisement_size_v6];
    const size_t n = build_advertisement(buf, {disc.nonce, *relay});
    counters_.sent[static_cast<size_t>(MessageType::relay_advertisement)].add();
    sink.send_reply(d.dst, d.src, ByteView(buf, n));
}

void HandshakeResponder::respond(std::span<const Datagram> batch, Time now, ReplySink& sink) {
    refresh_secrets();
    reload_limits();
    std::array<PendingQuery, max_batch> pending;
    size_t n = 0;
    for (const Datagram& d : batch) {
        MessageType type;
        if (ParseError e = peek_message_type(d.payload, type); e != ParseError::ok) {
            counters_.malformed_input(e);
            continue;
        }
        if (type != MessageType::relay_discovery && type != MessageType::request) continue;
        counters_.received[static_cast<size_t>(type)].add();
        if (type == MessageType::relay_discovery) {
            answer_discovery(d, now, sink);
            continue;
        }
        Request req;
        if (ParseError e = parse_request(d.payload, req); e != ParseError::ok) {
            counters_.malformed_input(e);
            continue;
        }
        if (!is_relay_address(d.dst)) {
            counters_.drop(DropReason::not_for_relay_address);
            continue;
        }
        if (!accept_reply_target(d, now)) continue;
        pending[n++] = {&d, req.rfc_p() || (config_.accept_linux_p_flag && req.linux_p())};
        if (n == pending.size()) {
            send_queries(std::span(pending.data(), n), sink);
            n = 0;
        }
    }
    send_queries(std::span(pending.data(), n), sink);
}

void HandshakeResponder::send_queries(std::span<const PendingQuery> pending, ReplySink& sink) {
    if (pending.empty()) return;
    std::array<MacInput, max_batch> inputs;
    std::array<ResponseMac, max_batch> macs;
    for (size_t i = 0; i < pending.size(); ++i) {
        inputs[i] = {pending[i].request->src, load_be32(pending[i].request->payload.data() + 4)};
    }
    current_mac_->compute_batch(std::span(inputs.data(), pending.size()),
                                std::span(macs.data(), pending.size()));
    const bool l_flag = refusing_new_endpoints();
    for (size_t i = 0; i < pending.size(); ++i) {
        const Datagram& d = *pending[i].request;
        QueryFields q{.l_flag = l_flag,
                      .mac = macs[i],
                      .nonce = inputs[i].nonce,
                      .query_family = pending[i].mld ? Family::ipv6 : Family::ipv4,
                      .query = config_.query_parameters()};
        if (config_.teardown) q.gateway = d.src;
        uint8_t buf[128];
        const size_t len = build_membership_query(buf, q);
        if (len == 0) continue;  // unencodable parameters: validate() keeps them out
        counters_.sent[static_cast<size_t>(MessageType::membership_query)].add();
        sink.send_reply(d.dst, d.src, ByteView(buf, len));
    }
}

bool HandshakeResponder::mac_matches(const ResponseMac& expected, const ResponseMac& got) const {
    if (!config_.cisco_mac_compat) return mac_equal(expected, got);
    // IOS-XE 3.16/3.17 echo the last two octets wrong (checklist §3.2): compare four.
    ResponseMac a = expected, b = got;
    a[4] = a[5] = b[4] = b[5] = 0;
    return mac_equal(a, b);
}

MacVerdict HandshakeResponder::verify(const MacInput& in, const ResponseMac& mac, Time now) {
    refresh_secrets();
    if (mac_matches(current_mac_->compute(in), mac)) return MacVerdict::current_secret;
    if (now < snapshot_.previous_valid_until && mac_matches(previous_mac_->compute(in), mac)) {
        return MacVerdict::previous_secret;
    }
    return MacVerdict::mismatch;
}

}  // namespace amt
