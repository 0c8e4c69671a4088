#include "dataplane/neighbor_table.hpp"

#include <algorithm>

#include "common/checksum.hpp"
#include "dataplane/next_hops.hpp"

namespace amt {

namespace {

constexpr size_t arp_size = 28;
constexpr uint8_t icmpv6_ns = 135;
constexpr uint8_t icmpv6_na = 136;
constexpr uint8_t option_source_lladdr = 1;
constexpr uint8_t option_target_lladdr = 2;

bool usable(NeighborState s) {
    return s != NeighborState::incomplete && s != NeighborState::failed;
}

// A MAC a neighbour may have: unicast and not zero.
bool valid_unicast(const MacAddress& m) {
    return (m[0] & 0x01) == 0 && m != MacAddress{};
}

// The link-layer address option of `type` in ND options (RFC 4861 §4.6.1); nullopt if absent.
// false when the options are malformed (a zero length).
bool find_lladdr(ByteView options, uint8_t type, std::optional<MacAddress>& out) {
    while (options.size() >= 2) {
        const size_t len = size_t{options[1]} * 8;
        if (len == 0 || len > options.size()) return false;
        if (options[0] == type && len >= 8) {
            MacAddress m;
            std::memcpy(m.data(), options.data() + 2, 6);
            out = m;
        }
        options = options.subspan(len);
    }
    return true;
}

}  // namespace

NeighborTable::NeighborTable(const NeighborConfig& config, NeighborSink& sink)
    : config_(config), sink_(sink) {}

bool NeighborTable::on_link(const IpAddress& a) const {
    return std::any_of(config_.prefixes.begin(), config_.prefixes.end(),
                       [&](const IpPrefix& p) { return p.contains(a); });
}

NeighborTable::Entry* NeighborTable::find(const IpAddress& a) {
    const auto it = entries_.find(a);
    return it == entries_.end() ? nullptr : &it->second;
}

std::optional<MacAddress> NeighborTable::mac(const IpAddress& gateway) const {
    const auto it = entries_.find(gateway);
    if (it == entries_.end() || !usable(it->second.state)) return std::nullopt;
    return it->second.mac;
}

std::optional<NeighborState> NeighborTable::state(const IpAddress& gateway) const {
    const auto it = entries_.find(gateway);
    if (it == entries_.end()) return std::nullopt;
    return it->second.state;
}

void NeighborTable::hold(const IpAddress& gateway) {
    if (Entry* e = find(gateway)) {
        // A gateway that stopped answering is asked again at once when a tunnel needs it.
        if (e->users++ == 0 && e->state == NeighborState::failed) start_resolution(gateway, *e);
        return;
    }
    if (const auto w = waiting_.find(gateway); w != waiting_.end()) {
        ++w->second;
        return;
    }
    if (!create(gateway, 1)) {
        counters_.table_full.add();
        waiting_[gateway] = 1;
    }
}

void NeighborTable::release(const IpAddress& gateway) {
    if (Entry* e = find(gateway)) {
        if (e->users > 0) --e->users;
        return;
    }
    if (const auto w = waiting_.find(gateway); w != waiting_.end() && --w->second == 0)
        waiting_.erase(w);
}

// At the cap an unused entry makes room (the oldest); with every entry in use, nothing does.
bool NeighborTable::create(const IpAddress& gateway, uint32_t users) {
    if (entries_.size() >= config_.max_entries) {
        auto victim = entries_.end();
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->second.users == 0 &&
                (victim == entries_.end() || it->second.updated < victim->second.updated)) {
                victim = it;
            }
        }
        if (victim == entries_.end()) return false;
        entries_.erase(victim);
    }
    Entry& e = entries_[gateway];
    e.users = users;
    e.updated = now_;
    start_resolution(gateway, e);
    return true;
}

void NeighborTable::start_resolution(const IpAddress& gateway, Entry& e) {
    if (usable(e.state)) changes_.insert(gateway);
    e.state = NeighborState::incomplete;
    e.mac = {};
    e.probes = 1;
    e.deadline = now_ + config_.timers.retransmit;
    solicit(gateway, e, false);
}

const IpAddress* NeighborTable::source_for(const IpAddress& target) const {
    const IpAddress* any = nullptr;
    for (const IpAddress& a : config_.own_addresses) {
        if (a.family() != target.family()) continue;
        for (const IpPrefix& p : config_.prefixes) {
            if (p.contains(a) && p.contains(target)) return &a;
        }
        if (any == nullptr) any = &a;
    }
    return any;
}

// INCOMPLETE asks the link (broadcast / solicited-node group); PROBE asks the cached MAC.
void NeighborTable::solicit(const IpAddress& gateway, const Entry& e, bool unicast) {
    const IpAddress* own = source_for(gateway);
    if (own == nullptr) return;
    uint8_t frame[128];
    const std::optional<MacAddress> to = unicast ? std::optional(e.mac) : std::nullopt;
    size_t n;
    NeighborMessage type;
    if (gateway.is_v4()) {
        n = build_arp_request(frame, config_.mac, *own, gateway, to);
        type = NeighborMessage::arp_request;
    } else {
        n = build_neighbor_solicitation(frame, config_.mac, *own, gateway, to);
        type = NeighborMessage::neighbor_solicitation;
    }
    if (n == 0) return;
    counters_.messages[static_cast<size_t>(type)][1].add();
    sink_.send_neighbor_frame(ByteView(frame, n));
}

void NeighborTable::set_reachable(Entry& e) {
    // Randomised like the kernel's reachable_time, so that many gateways resolved together are
    // not all probed in the same second.
    const auto base = config_.timers.reachable.count();
    std::uniform_int_distribution<int64_t> spread(base / 2, base + base / 2);
    e.state = NeighborState::reachable;
    e.deadline = now_ + Time(spread(random_));
    e.probes = 0;
}

void NeighborTable::update(const IpAddress& gateway, Entry& e, const MacAddress& mac,
                           bool confirmed, bool override) {
    const bool had_mac = usable(e.state);
    const bool same = had_mac && e.mac == mac;
    if (had_mac && !same && !override) {
        // RFC 4861 §7.2.5: a different MAC without Override only makes a REACHABLE entry doubt.
        if (e.state == NeighborState::reachable) e.state = NeighborState::stale;
        return;
    }
    if (!same) {
        e.mac = mac;
        changes_.insert(gateway);
        e.updated = now_;
        if (confirmed) {
            set_reachable(e);
        } else {
            e.state = NeighborState::stale;
        }
        return;
    }
    if (confirmed) {
        e.updated = now_;
        set_reachable(e);
    }
    // The same MAC, unconfirmed: the state stays (the kernel's neigh_update does the same).
}

bool NeighborTable::is_neighbor_message(ByteView frame) {
    EthernetHeader eth;
    if (parse_ethernet(frame, eth) != ParseError::ok) return false;
    if (eth.ethertype == ethertype_arp) return true;
    const ByteView ip = frame.subspan(eth.size);
    return eth.ethertype == ethertype_ipv6 && ip.size() > ipv6_header_size &&
           ip[6] == ip_proto_icmpv6 &&
           (ip[ipv6_header_size] == icmpv6_ns || ip[ipv6_header_size] == icmpv6_na);
}

void NeighborTable::receive(ByteView frame, Time now) {
    now_ = now;
    EthernetHeader eth;
    if (parse_ethernet(frame, eth) != ParseError::ok || eth.vlan_tci != 0) return;
    if (eth.ethertype == ethertype_arp) {
        receive_arp(eth, frame.subspan(eth.size));
    } else if (eth.ethertype == ethertype_ipv6) {
        receive_nd(eth, frame.subspan(eth.size));
    }
}

// The kernel's arp_process for an existing entry: any ARP from it carries its MAC; a reply sent
// to us confirms (REACHABLE), anything else only says STALE. Within locktime of the last change a
// different MAC in a reply does not win (two answers to one request), a gratuitous ARP always does.
void NeighborTable::receive_arp(const EthernetHeader& eth, ByteView arp) {
    if (arp.size() < arp_size || load_be16(arp.data()) != 1 ||
        load_be16(arp.data() + 2) != ethertype_ipv4 || arp[4] != 6 || arp[5] != 4) {
        return;
    }
    const uint16_t op = load_be16(arp.data() + 6);
    if (op != 1 && op != 2) return;
    counters_
        .messages[static_cast<size_t>(op == 1 ? NeighborMessage::arp_request
                                              : NeighborMessage::arp_reply)][0]
        .add();
    MacAddress sender;
    std::memcpy(sender.data(), arp.data() + 8, 6);
    const IpAddress sender_ip = IpAddress::v4_from_bytes(arp.data() + 14);
    const IpAddress target_ip = IpAddress::v4_from_bytes(arp.data() + 24);
    Entry* e = find(sender_ip);
    if (e == nullptr || !valid_unicast(sender)) return;
    const bool gratuitous = sender_ip == target_ip;
    const bool to_us = op == 2 && eth.dst == config_.mac;
    const bool override =
        gratuitous || now_ - e->updated >= config_.timers.locktime || !usable(e->state);
    update(sender_ip, *e, sender, to_us, override);
}

// RFC 4861 §7.2.3 (an NS with a source link-layer address) and §7.2.5 (an NA).
void NeighborTable::receive_nd(const EthernetHeader&, ByteView ip) {
    if (ip.size() < ipv6_header_size + 24 || ip[6] != ip_proto_icmpv6 || ip[7] != 255) return;
    const size_t length = load_be16(ip.data() + 4);
    if (length < 24 || ipv6_header_size + length > ip.size()) return;
    const ByteView icmp = ip.subspan(ipv6_header_size, length);
    const IpAddress src = IpAddress::v6_from_bytes(ip.data() + 8);
    const IpAddress dst = IpAddress::v6_from_bytes(ip.data() + 24);
    const uint32_t pseudo = pseudo_header_sum(src, dst, ip_proto_icmpv6, length);
    if (icmp[1] != 0 || !checksum_verifies(checksum_add(icmp, pseudo))) return;
    const IpAddress target = IpAddress::v6_from_bytes(icmp.data() + 8);
    if (target.is_multicast()) return;
    std::optional<MacAddress> lladdr;
    if (icmp[0] == icmpv6_ns) {
        counters_.messages[static_cast<size_t>(NeighborMessage::neighbor_solicitation)][0].add();
        if (!find_lladdr(icmp.subspan(24), option_source_lladdr, lladdr)) return;
        Entry* e = find(src);
        if (e == nullptr || src.is_unspecified() || !lladdr || !valid_unicast(*lladdr)) return;
        update(src, *e, *lladdr, false, true);
        return;
    }
    if (icmp[0] != icmpv6_na) return;
    counters_.messages[static_cast<size_t>(NeighborMessage::neighbor_advertisement)][0].add();
    const bool solicited = (icmp[4] & 0x40) != 0;
    const bool override = (icmp[4] & 0x20) != 0;
    if (solicited && dst.is_multicast()) return;
    if (!find_lladdr(icmp.subspan(24), option_target_lladdr, lladdr)) return;
    Entry* e = find(target);
    if (e == nullptr || (lladdr && !valid_unicast(*lladdr))) return;
    if (!lladdr) {
        // No address: only a confirmation of the one we have (never resolves INCOMPLETE).
        if (usable(e->state) && solicited) update(target, *e, e->mac, true, false);
        return;
    }
    update(target, *e, *lladdr, solicited, override || !usable(e->state));
}

void NeighborTable::advance(Time now) {
    now_ = now;
    const NeighborTimers& t = config_.timers;
    std::array<uint64_t, neighbor_state_count> states{};
    for (auto it = entries_.begin(); it != entries_.end();) {
        const IpAddress& ip = it->first;
        Entry& e = it->second;
        const bool due = now >= e.deadline;
        switch (e.state) {
            case NeighborState::incomplete:
            case NeighborState::probe: {
                if (!due) break;
                const bool unicast = e.state == NeighborState::probe;
                if (e.probes < (unicast ? t.unicast_solicits : t.multicast_solicits)) {
                    ++e.probes;
                    e.deadline = now + t.retransmit;
                    solicit(ip, e, unicast);
                    break;
                }
                // Unanswered: nothing goes to this gateway until it answers again.
                if (unicast) changes_.insert(ip);
                e.state = NeighborState::failed;
                e.mac = {};
                e.updated = now;
                e.deadline = now + t.failed_retry;
                break;
            }
            case NeighborState::reachable:
                if (due) e.state = NeighborState::stale;
                break;
            case NeighborState::delay:
                if (!due) break;
                e.state = NeighborState::probe;
                e.probes = 1;
                e.deadline = now + t.retransmit;
                solicit(ip, e, true);
                break;
            case NeighborState::stale:
            case NeighborState::failed:
            case NeighborState::count_:
                break;
        }
        // In use, the kernel would be sending to it: STALE goes to DELAY, FAILED asks again.
        if (e.users > 0 && e.state == NeighborState::stale) {
            e.state = NeighborState::delay;
            e.deadline = now + t.delay_first_probe;
        } else if (e.users > 0 && e.state == NeighborState::failed && now >= e.deadline) {
            start_resolution(ip, e);
        } else if (e.users == 0 &&
                   (e.state == NeighborState::stale || e.state == NeighborState::failed) &&
                   now - e.updated >= t.gc_stale) {
            it = entries_.erase(it);
            continue;
        }
        ++states[static_cast<size_t>(e.state)];
        ++it;
    }
    // Gateways refused at the cap get an entry once one is free.
    for (auto w = waiting_.begin(); w != waiting_.end() && create(w->first, w->second);) {
        ++states[static_cast<size_t>(NeighborState::incomplete)];
        w = waiting_.erase(w);
    }
    for (size_t i = 0; i < neighbor_state_count; ++i)
        counters_.states[i].store(states[i], std::memory_order_relaxed);
}

std::vector<IpAddress> NeighborTable::take_changes() {
    std::vector<IpAddress> out(changes_.begin(), changes_.end());
    changes_.clear();
    return out;
}

}  // namespace amt
