#include "controlplane/upstream_proxy.hpp"

#include <algorithm>

namespace amt {

IpAddress mld_report_source(const std::vector<IpAddress>& upstream_addresses,
                            const std::array<uint8_t, 6>& port_mac) {
    for (const IpAddress& a : upstream_addresses) {
        if (a.is_v6() && a.is_link_local_unicast()) return a;
    }
    uint8_t ll[16] = {0xfe, 0x80};
    ll[8] = port_mac[0] ^ 0x02;  // the universal/local bit inverted
    ll[9] = port_mac[1];
    ll[10] = port_mac[2];
    ll[11] = 0xff;
    ll[12] = 0xfe;
    ll[13] = port_mac[3];
    ll[14] = port_mac[4];
    ll[15] = port_mac[5];
    return IpAddress::v6_from_bytes(ll);
}

UpstreamProxy::UpstreamProxy(const UpstreamConfig& config, UpstreamSink& sink)
    : config_(config), sink_(sink) {
    if (!config_.source_v6.is_v6()) {
        static const uint8_t zero[16] = {};
        config_.source_v6 = IpAddress::v6_from_bytes(zero);
    }
}

bool UpstreamProxy::joined(const FlowKey& key) const {
    const auto it = groups_.find(key.group);
    if (it == groups_.end()) return false;
    return key.any_source() ? it->second.exclude : it->second.sources.count(key.source) > 0;
}

void UpstreamProxy::change(const FlowKey& key, bool join, Time now) {
    GroupState& g = groups_[key.group];
    const bool was_exclude = g.exclude;
    std::vector<IpAddress> one{key.source};
    if (key.any_source()) {
        g.exclude = join;
    } else if (join) {
        g.sources.insert(key.source);
    } else {
        g.sources.erase(key.source);
    }
    // What the change means on the wire (RFC 3376 §5.1): a filter-mode change, or a source-list
    // change while in INCLUDE mode. (S,G) changes under EXCLUDE{} change nothing upstream.
    if (g.exclude != was_exclude) {
        if (g.exclude) {
            schedule({RecordType::change_to_exclude, key.group, {}}, now);
        } else {
            schedule({RecordType::change_to_include, key.group,
                      std::vector<IpAddress>(g.sources.begin(), g.sources.end())},
                     now);
        }
    } else if (!g.exclude && !key.any_source()) {
        if (mode_change_pending(key.group)) {
            // While a filter-mode change is still being repeated, every report carries it with
            // the current state instead (RFC 3376 §5.1, RFC 3810 §6.1).
            schedule({RecordType::change_to_include, key.group,
                      std::vector<IpAddress>(g.sources.begin(), g.sources.end())},
                     now);
        } else {
            schedule({join ? RecordType::allow_new_sources : RecordType::block_old_sources,
                      key.group, one},
                     now);
        }
    }
    if (!g.exclude && g.sources.empty()) groups_.erase(key.group);
}

bool UpstreamProxy::mode_change_pending(const IpAddress& group) const {
    return std::any_of(retransmissions_.begin(), retransmissions_.end(), [&](const auto& r) {
        return r.record.group == group && (r.record.type == RecordType::change_to_include ||
                                           r.record.type == RecordType::change_to_exclude);
    });
}

void UpstreamProxy::schedule(Record record, Time now) {
    // A newer change supersedes pending repeats of older ones for the same group: all of them
    // after a filter-mode change, those naming the same sources after a source-list change.
    const bool mode_change = record.type == RecordType::change_to_exclude ||
                             record.type == RecordType::change_to_include;
    std::erase_if(retransmissions_, [&](const Retransmission& r) {
        return r.record.group == record.group &&
               (mode_change || r.record.sources == record.sources);
    });
    send_records(record.group.family(), {record});
    if (config_.robustness > 1) {
        retransmissions_.push_back(
            {std::move(record), config_.robustness - 1, now + config_.unsolicited_report_interval});
    }
}

UpstreamProxy::Record UpstreamProxy::current_state(const IpAddress& group,
                                                   const GroupState& g) const {
    if (g.exclude) return {RecordType::mode_is_exclude, group, {}};
    return {RecordType::mode_is_include, group,
            std::vector<IpAddress>(g.sources.begin(), g.sources.end())};
}

void UpstreamProxy::send_records(Family family, const std::vector<Record>& records) {
    // Records are packed into as few reports as fit a 1500-octet datagram.
    std::vector<uint8_t> buf(1500);
    const IpAddress& src = family == Family::ipv4 ? config_.source_v4 : config_.source_v6;
    auto builder = std::make_unique<ReportBuilder>(buf, family, src);
    size_t in_report = 0;
    auto flush = [&] {
        if (in_report == 0) return;
        const size_t n = builder->finish();
        sink_.send_upstream(family, ByteView(buf.data(), n));
        ++reports_sent_;
        builder = std::make_unique<ReportBuilder>(buf, family, src);
        in_report = 0;
    };
    // A record with more sources than one report holds is split into records of the same type
    // (RFC 3376 §4.2.16); only INCLUDE-side records carry sources here, so that is always valid.
    const size_t addr = family == Family::ipv4 ? 4 : 16;
    const size_t header = family == Family::ipv4 ? 24 + 8 : 48 + 8;
    const size_t per_record = (buf.size() - header - 4 - addr) / addr;
    for (const Record& r : records) {
        if (r.group.family() != family) continue;
        for (size_t first = 0; first == 0 || first < r.sources.size(); first += per_record) {
            const size_t n = std::min(per_record, r.sources.size() - first);
            const std::span<const IpAddress> chunk(r.sources.data() + first, n);
            if (!builder->add_record(r.type, r.group, chunk)) {
                flush();
                builder->add_record(r.type, r.group, chunk);
            }
            ++in_report;
            if (r.sources.empty()) break;
        }
    }
    flush();
}

Time UpstreamProxy::random_delay(const RouterQuery& q) {
    // IGMP codes are tenths of a second, MLD codes milliseconds; IGMPv3 and MLDv2 use a float
    // form for large values (RFC 3376 §4.1.1, RFC 3810 §5.1.3), IGMPv2 and MLDv1 do not.
    const bool v4 = q.family == Family::ipv4;
    const bool newest = v4 ? q.version == 3 : q.version == 2;
    const uint32_t code = q.max_resp_code;
    uint32_t value = code;
    if (newest && v4 && code >= 128) {
        value = ((code & 0x0fu) | 0x10u) << (((code >> 4) & 0x07u) + 3);
    } else if (newest && !v4 && code >= 32768) {
        value = ((code & 0x0fffu) | 0x1000u) << (((code >> 12) & 0x07u) + 3);
    }
    const auto max = v4 ? Time(std::chrono::milliseconds(100) * value)
                        : Time(std::chrono::milliseconds(1) * value);
    if (max.count() <= 0) return Time{0};
    std::uniform_int_distribution<int64_t> d(0, max.count());
    return Time{d(rng_)};
}

ParseError UpstreamProxy::handle_query(ByteView datagram, Time now) {
    RouterQuery q;
    if (ParseError e = parse_router_query(datagram, q); e != ParseError::ok) return e;
    const Time due = now + random_delay(q);
    if (q.group.is_unspecified()) {
        auto [it, fresh] = general_due_.try_emplace(q.family, due);
        if (!fresh) it->second = std::min(it->second, due);
        return ParseError::ok;
    }
    if (groups_.count(q.group) == 0) return ParseError::ok;  // not ours (RFC 3376 §5.2)
    auto [it, fresh] = group_due_.try_emplace(q.group, due);
    if (!fresh) it->second = std::min(it->second, due);
    return ParseError::ok;
}

void UpstreamProxy::advance(Time now) {
    // Repeats of state-change reports.
    std::map<Family, std::vector<Record>> repeats;
    for (Retransmission& r : retransmissions_) {
        if (r.due > now) continue;
        repeats[r.record.group.family()].push_back(r.record);
        --r.remaining;
        r.due = now + config_.unsolicited_report_interval;
    }
    std::erase_if(retransmissions_, [](const Retransmission& r) { return r.remaining <= 0; });
    for (const auto& [family, records] : repeats)
        send_records(family, records);

    // Answers to general queries: the current state of every group of the family.
    for (auto it = general_due_.begin(); it != general_due_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        std::vector<Record> state;
        for (const auto& [group, g] : groups_) {
            if (group.family() == it->first) state.push_back(current_state(group, g));
        }
        send_records(it->first, state);
        it = general_due_.erase(it);
    }
    // Answers to group-specific queries.
    for (auto it = group_due_.begin(); it != group_due_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        if (const auto g = groups_.find(it->first); g != groups_.end()) {
            send_records(it->first.family(), {current_state(g->first, g->second)});
        }
        it = group_due_.erase(it);
    }
}

void UpstreamProxy::leave_all() {
    std::map<Family, std::vector<Record>> leaves;
    for (const auto& [group, g] : groups_) {
        leaves[group.family()].push_back(
            g.exclude ? Record{RecordType::change_to_include, group, {}}
                      : Record{RecordType::block_old_sources, group,
                               std::vector<IpAddress>(g.sources.begin(), g.sources.end())});
    }
    for (const auto& [family, records] : leaves)
        send_records(family, records);
    groups_.clear();
    retransmissions_.clear();
    general_due_.clear();
    group_due_.clear();
}

}  // namespace amt
