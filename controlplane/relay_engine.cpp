#include "controlplane/relay_engine.hpp"

#include "common/packet_headers.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace amt {

RelayEngine::RelayEngine(const EngineConfig& config, SecretStore& secrets, EngineSink& sink)
    : config_(config),
      secrets_(secrets),
      sink_(sink),
      guard_(config.limits),
      responder_(config, secrets, guard_),
      db_(sink, &guard_.known_gateways()) {}

void RelayEngine::handle(const Datagram& d, Time now) {
    handle_batch(std::span(&d, 1), now);
}

void RelayEngine::handle_batch(std::span<const Datagram> batch, Time now) {
    // Discovery and Request go to the responder in groups, so their MACs are computed together.
    std::array<Datagram, 64> handshakes;
    size_t n = 0;
    auto flush = [&] {
        responder_.respond(std::span(handshakes.data(), n), now, sink_);
        n = 0;
    };
    for (const Datagram& d : batch) {
        MessageType type;
        if (ParseError e = peek_message_type(d.payload, type); e != ParseError::ok) {
            counters_.malformed_input(e);
            continue;
        }
        switch (type) {
            case MessageType::relay_discovery:
            case MessageType::request:
                handshakes[n++] = d;
                if (n == handshakes.size()) flush();
                break;
            case MessageType::membership_update:
                counters_.received[static_cast<size_t>(type)].add();
                handle_update(d, now);
                break;
            case MessageType::teardown:
                counters_.received[static_cast<size_t>(type)].add();
                if (config_.teardown) {
                    handle_teardown(d, now);
                } else {
                    counters_.drop(DropReason::teardown_disabled);
                }
                break;
            default:  // Advertisement, Query, Data: never reflected (checklist §2.1)
                counters_.received[static_cast<size_t>(type)].add();
                counters_.drop(DropReason::unexpected_message_type);
                break;
        }
    }
    flush();
}

bool RelayEngine::authenticate(const MacInput& in, const ResponseMac& mac, EndpointId known,
                               Time now) {
    switch (responder_.verify(in, mac, now)) {
        case MacVerdict::current_secret:
            return true;
        case MacVerdict::previous_secret:
            counters_.mac_previous_secret.add();
            return true;
        case MacVerdict::mismatch:
            break;
    }
    // Sticky MAC (checklist §8.2): VLC repeats its first nonce+MAC forever.
    if (config_.sticky_mac && known != MembershipDb::no_endpoint) {
        const EndpointRecord& rec = db_.endpoint(known);
        if (rec.last_nonce == in.nonce && mac_equal(rec.last_mac, mac)) {
            counters_.mac_sticky.add();
            return true;
        }
    }
    counters_.mac_failures.add();
    counters_.drop(DropReason::mac_mismatch);
    return false;
}

bool RelayEngine::report_needs_state(const MembershipReport& r) const {
    switch (r.kind) {
        case ReportKind::igmpv2_leave:
        case ReportKind::mldv1_done:
            return false;
        case ReportKind::igmpv3_report:
        case ReportKind::mldv2_report:
            return r.num_records > 0;
        default:
            return true;
    }
}

EndpointId RelayEngine::admit_new_endpoint(const Datagram& d, Time now) {
    DropReason refused;
    if (draining_) {
        refused = DropReason::not_accepting_new_endpoints;
    } else if (db_.endpoint_count() >= config_.limits.max_endpoints) {
        refused = DropReason::endpoint_limit;
    } else if (db_.endpoints_from(d.src.ip) >= config_.limits.max_endpoints_per_source_ip) {
        refused = DropReason::source_ip_endpoint_limit;
    } else {
        return db_.create(d.src, d.dst, now, timeout());
    }
    counters_.drop(refused);
    return MembershipDb::no_endpoint;
}

void RelayEngine::handle_update(const Datagram& d, Time now) {
    if (!responder_.is_relay_address(d.dst)) {
        counters_.drop(DropReason::not_for_relay_address);
        return;
    }
    MembershipUpdate update;
    MembershipReport report;
    ParseError e = parse_membership_update(d.payload, update);
    if (e == ParseError::ok) e = parse_membership_report(update.encapsulated, report);
    if (e == ParseError::ok) e = check_reply_source(d.src);  // Data must never go there
    if (e != ParseError::ok) {
        counters_.malformed_input(e);
        return;
    }
    EndpointId endpoint = db_.find(d.src);
    if (endpoint == MembershipDb::no_endpoint && !report_needs_state(report)) {
        counters_.drop(DropReason::empty_report_unknown_endpoint);
        return;
    }
    if (!authenticate({d.src, update.nonce}, update.mac, endpoint, now)) return;
    if (endpoint == MembershipDb::no_endpoint) {
        endpoint = admit_new_endpoint(d, now);
        if (endpoint == MembershipDb::no_endpoint) return;
    }
    db_.refresh(endpoint, now, timeout(), update.nonce, update.mac);
    count_anomalies(report, d.src);
    apply_report(endpoint, report);
    db_.remove_if_empty(endpoint);
    update_capacity_flag();
}

void RelayEngine::handle_teardown(const Datagram& d, Time now) {
    if (!responder_.is_relay_address(d.dst)) {
        counters_.drop(DropReason::not_for_relay_address);
        return;
    }
    Teardown td;
    if (ParseError e = parse_teardown(d.payload, td); e != ParseError::ok) {
        counters_.malformed_input(e);
        return;
    }
    // The MAC is over the old endpoint named in the message, not the outer source (§2.9).
    const EndpointId endpoint = db_.find(td.gateway);
    if (!authenticate({td.gateway, td.nonce}, td.mac, endpoint, now)) return;
    if (endpoint == MembershipDb::no_endpoint) {
        counters_.drop(DropReason::teardown_unknown_endpoint);
        return;
    }
    db_.remove(endpoint, SessionEnd::teardown);
    update_capacity_flag();
}

// Checklist §8.4: odd but harmless inner headers are accepted, counted and (by the daemon's
// summary, at a bounded rate) logged with the last endpoint that sent each.
void RelayEngine::count_anomalies(const MembershipReport& report, const UdpEndpoint& from) {
    const uint8_t found = inner_anomalies(report);
    for (size_t i = 0; i < inner_anomaly_count; ++i) {
        if ((found & (1u << i)) == 0) continue;
        counters_.anomalies[i].add();
        last_anomaly_from_[i] = from;
    }
}

void RelayEngine::apply_report(EndpointId e, const MembershipReport& report) {
    if (!report.is_state_report()) {
        apply_v1v2(e, report);
        return;
    }
    GroupRecord record;
    for (RecordIterator it = report.records(); it.next(record);)
        apply_v3_record(e, record);
}

bool RelayEngine::group_allowed(const IpAddress& group, bool v1v2, bool exclude) {
    if (check_group_address(group) != ParseError::ok) {
        counters_.drop(DropReason::bad_group_address);
        return false;
    }
    if (group.is_ssm() && (v1v2 || exclude)) {
        counters_.drop(v1v2 ? DropReason::ssm_v1v2_ignored : DropReason::ssm_exclude_ignored);
        return false;
    }
    if (!group.is_ssm() && !config_.asm_enabled) {
        counters_.drop(DropReason::asm_disabled);
        return false;
    }
    return true;
}

// A record is counted under one reason at most (issue 18, item 5): the whole record ignored
// (group_limit) before part of it (the flow budgets, then source_limit, then `partly_ignored`:
// bad sources).
void RelayEngine::apply_change(EndpointId e, const IpAddress& group, RecordType type,
                               std::span<const IpAddress> sources, bool older_version_host,
                               std::optional<DropReason> partly_ignored) {
    const GroupMembership* current = db_.find_group(e, group);
    GroupMembership next = current ? *current : GroupMembership{.group = group};
    next.older_version_host |= older_version_host;
    if (!apply_record(next, type, sources, config_.limits.max_sources_per_group)) {
        partly_ignored = DropReason::source_limit;
    }
    if (current == nullptr && !next.empty() &&
        db_.endpoint(e).groups.size() >= config_.limits.max_groups_per_endpoint) {
        counters_.drop(DropReason::group_limit);
        return;
    }
    const bool fits = fits_flow_budgets(e, current, next);  // counts its own reason if not
    if (fits && partly_ignored) counters_.drop(*partly_ignored);
    if (!fits && (current ? *current == next : next.empty())) return;
    db_.set_group(e, next);
}

namespace {

// What an endpoint and its address hold while one change is weighed against the flow budgets.
class FlowBudget {
  public:
    FlowBudget(const MembershipDb& db, EndpointId e, const RelayLimits& limits)
        : db_(db),
          e_(e),
          limits_(limits),
          endpoint_flows_(db.flows_of(e)),
          address_flows_(db.flows_of_address(e)) {}

    // A flow e held and no longer will: its address keeps it if another endpoint there holds it.
    void give_up(const FlowKey& key) {
        --endpoint_flows_;
        if (!db_.address_shares(e_, key)) --address_flows_;
    }
    // A flow e does not hold yet: taken if both budgets have room.
    bool take(const FlowKey& key) {
        const bool shared = db_.address_shares(e_, key);
        if (endpoint_flows_ >= limits_.max_flows_per_endpoint) {
            refused_ = DropReason::endpoint_flow_limit;
            return false;
        }
        if (!shared && address_flows_ >= limits_.max_flows_per_source_ip) {
            refused_ = DropReason::source_ip_flow_limit;
            return false;
        }
        ++endpoint_flows_;
        if (!shared) ++address_flows_;
        return true;
    }
    const std::optional<DropReason>& refused() const { return refused_; }

  private:
    const MembershipDb& db_;
    EndpointId e_;
    const RelayLimits& limits_;
    size_t endpoint_flows_;
    size_t address_flows_;
    std::optional<DropReason> refused_;
};

bool lists(const GroupMembership& g, const IpAddress& s) {
    return std::binary_search(g.sources.begin(), g.sources.end(), s);
}

}  // namespace

// The flow budgets (issue 18): without them one address could fill the flow table and every
// later join would find it full. Flows e gives up count first, so a change that only removes
// always fits. New sources of an INCLUDE list that do not fit are ignored, as sources beyond
// max_sources_per_group are; a change to EXCLUDE that does not fit (its (*,G) and every newly
// blocked source) is refused whole, since dropping a blocked source would forward it. Returns
// false when something was cut; `next` then holds what fits.
bool RelayEngine::fits_flow_budgets(EndpointId e, const GroupMembership* current,
                                    GroupMembership& next) {
    const GroupMembership before = current ? *current : GroupMembership{.group = next.group};
    const FlowKey any_source{any_source_of(next.group), next.group};
    FlowBudget budget(db_, e, config_.limits);
    for (const IpAddress& s : before.sources) {
        if (!lists(next, s)) budget.give_up({s, next.group});
    }
    if (before.mode == FilterMode::exclude && next.mode == FilterMode::include)
        budget.give_up(any_source);
    if (next.mode == FilterMode::exclude) {
        bool fits = before.mode == FilterMode::exclude || budget.take(any_source);
        for (const IpAddress& s : next.sources) {
            if (fits && !lists(before, s)) fits = budget.take({s, next.group});
        }
        if (!fits) next = before;
    } else {
        std::erase_if(next.sources, [&](const IpAddress& s) {
            return !lists(before, s) && !budget.take({s, next.group});
        });
    }
    if (!budget.refused()) return true;
    counters_.drop(*budget.refused());
    flow_refusal_ = {db_.endpoint(e).address, next.group, *budget.refused(),
                     flow_refusal_.total + 1};
    return false;
}

void RelayEngine::apply_v1v2(EndpointId e, const MembershipReport& report) {
    if (!group_allowed(report.group, true, false)) return;
    const bool join =
        report.kind == ReportKind::igmpv2_report || report.kind == ReportKind::mldv1_report;
    // IGMPv2/MLDv1 Report = IS_EX{}, Leave/Done = TO_IN{} (3376 §7.3.2, 3810 §8.3.2).
    apply_change(e, report.group,
                 join ? RecordType::mode_is_exclude : RecordType::change_to_include, {}, join);
}

void RelayEngine::apply_v3_record(EndpointId e, const GroupRecord& record) {
    if (!is_known_record_type(record.type)) {
        counters_.drop(DropReason::unknown_record_type);
        return;
    }
    const auto type = static_cast<RecordType>(record.type);
    const bool exclude =
        type == RecordType::mode_is_exclude || type == RecordType::change_to_exclude;
    if (!group_allowed(record.group, false, exclude)) return;
    std::vector<IpAddress> sources;
    sources.reserve(record.num_sources);
    bool bad_source = false;
    for (size_t i = 0; i < record.num_sources; ++i) {
        const IpAddress s = record.source(i);
        if (check_source_address(s) == ParseError::ok) {
            sources.push_back(s);
        } else {
            bad_source = true;
        }
    }
    std::sort(sources.begin(), sources.end());
    sources.erase(std::unique(sources.begin(), sources.end()), sources.end());
    apply_change(e, record.group, type, sources, false,
                 bad_source ? std::optional(DropReason::bad_source_address) : std::nullopt);
}

void RelayEngine::update_capacity_flag() {
    responder_.set_refusing_new_endpoints(draining_ ||
                                          db_.endpoint_count() >= config_.limits.max_endpoints);
}

void RelayEngine::advance(Time now) {
    if (secrets_.rotate_if_due(now, config_.secret_rotation, config_.previous_secret_window())) {
        ++rotations_;
    }
    expired_ += db_.expire(now);
    update_capacity_flag();
}

void RelayEngine::reconfigure(const EngineConfig& config) {
    // The query source comes from the port, not the file: a reload keeps it.
    const IpAddress query_source = config_.query_source_v6;
    config_ = config;
    config_.query_source_v6 = query_source;
    guard_.configure(config_.limits);
    responder_.reconfigure(config_);
    update_capacity_flag();
}

void RelayEngine::rotate_secret(Time now) {
    secrets_.rotate(now, config_.previous_secret_window());
    ++rotations_;
}

void RelayEngine::set_draining(bool draining) {
    draining_ = draining;
    update_capacity_flag();
}

}  // namespace amt

namespace amt {

void RelayEngine::save_state(Time now, RelayState& out) const {
    out.relay_addresses = config_.relay_addresses;
    out.secrets = secrets_.save(now);
    out.endpoints.clear();
    out.endpoints.reserve(db_.endpoint_count());
    db_.for_each_endpoint([&](const EndpointRecord& r) {
        out.endpoints.push_back({.address = r.address,
                                 .relay = r.relay,
                                 .last_nonce = r.last_nonce,
                                 .last_mac = r.last_mac,
                                 .remaining = std::max(Time{0}, MembershipDb::expiry(r) - now),
                                 .groups = r.groups});
    });
}

size_t RelayEngine::restore_state(const RelayState& state, Time now) {
    secrets_.restore(state.secrets, now);
    const auto is_relay_address = [&](const IpAddress& a) {
        return std::find(config_.relay_addresses.begin(), config_.relay_addresses.end(), a) !=
               config_.relay_addresses.end();
    };
    size_t restored = 0;
    db_.reserve(std::min<size_t>(state.endpoints.size(), config_.limits.max_endpoints));
    for (const SavedEndpoint& e : state.endpoints) {
        // What today's configuration would not have admitted stays out (limits may have been
        // lowered, ASM switched off); a saved endpoint is otherwise taken as it was.
        if (e.remaining <= Time{0} || !is_relay_address(e.relay.ip) ||
            db_.endpoint_count() >= config_.limits.max_endpoints ||
            db_.find(e.address) != MembershipDb::no_endpoint) {
            continue;
        }
        const Time remaining = std::min<Time>(e.remaining, timeout());
        const EndpointId id = db_.create(e.address, e.relay, now, remaining);
        db_.refresh(id, now, remaining, e.last_nonce, e.last_mac);
        size_t groups = 0;
        for (const GroupMembership& g : e.groups) {
            if (groups == config_.limits.max_groups_per_endpoint ||
                g.sources.size() > config_.limits.max_sources_per_group ||
                !group_allowed(g.group, g.older_version_host, g.mode == FilterMode::exclude)) {
                continue;
            }
            GroupMembership fitted = g;
            if (!fits_flow_budgets(id, nullptr, fitted) && fitted.empty()) continue;
            db_.set_group(id, fitted);
            ++groups;
        }
        if (groups == 0) {
            db_.remove(id, SessionEnd::leave);  // held no group: nothing to account
            continue;
        }
        ++restored;
    }
    update_capacity_flag();
    return restored;
}

}  // namespace amt
