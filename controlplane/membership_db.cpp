#include "controlplane/membership_db.hpp"

#include <algorithm>
#include <optional>
#include <utility>

namespace amt {

IpAddress any_source_of(const IpAddress& group) {
    static const uint8_t zero[16] = {};
    return group.is_v4() ? IpAddress::v4(0) : IpAddress::v6_from_bytes(zero);
}

namespace {

bool lists(const GroupMembership* g, FilterMode mode, const IpAddress& s) {
    return g != nullptr && g->mode == mode &&
           std::binary_search(g->sources.begin(), g->sources.end(), s);
}

bool forwards(const GroupMembership* g, const IpAddress& s) {
    return g != nullptr && g->forwards(s);
}

bool excludes(const GroupMembership* g) {
    return g != nullptr && g->mode == FilterMode::exclude;
}

}  // namespace

MembershipDb::MembershipDb(MembershipSink& sink, KnownGateways* known)
    : sink_(sink), wheel_(wheel_slots, no_endpoint), known_(known) {}

EndpointId MembershipDb::find(const UdpEndpoint& address) const {
    const EndpointId id = address_index_.find(std::hash<UdpEndpoint>{}(address), [&](EndpointId e) {
        return endpoints_[e].address == address;
    });
    return id == IdIndex::none ? no_endpoint : id;
}

size_t MembershipDb::endpoints_from(const IpAddress& ip) const {
    const auto it = per_source_ip_.find(ip);
    return it == per_source_ip_.end() ? 0 : it->second.endpoints;
}

size_t MembershipDb::flows_of(EndpointId e) const {
    size_t n = 0;
    for (const GroupMembership& g : endpoints_[e].groups)
        n += g.sources.size() + (g.mode == FilterMode::exclude);
    return n;
}

size_t MembershipDb::flows_of_address(EndpointId e) const {
    const auto shared = shared_flows_.find(endpoints_[e].address.ip);
    return shared == shared_flows_.end() ? flows_of(e) : shared->second.size();
}

bool MembershipDb::holds(EndpointId e, const FlowKey& key) const {
    const GroupMembership* g = find_group(e, key.group);
    if (g == nullptr) return false;
    if (key.any_source()) return g->mode == FilterMode::exclude;
    return std::binary_search(g->sources.begin(), g->sources.end(), key.source);
}

bool MembershipDb::address_shares(EndpointId e, const FlowKey& key) const {
    const auto shared = shared_flows_.find(endpoints_[e].address.ip);
    if (shared == shared_flows_.end()) return false;
    const auto refs = shared->second.find(key);
    return refs != shared->second.end() && refs->second > (holds(e, key) ? 1u : 0u);
}

void MembershipDb::count_address_flows(const IpAddress& address, const GroupMembership& g,
                                       bool add) {
    auto& refs = shared_flows_[address];
    const auto count = [&](const FlowKey& key) {
        uint32_t& n = refs[key];
        n = add ? n + 1 : n - 1;
        if (n == 0) refs.erase(key);
    };
    for (const IpAddress& s : g.sources)
        count({s, g.group});
    if (g.mode == FilterMode::exclude) count({any_source_of(g.group), g.group});
}

void MembershipDb::reserve(size_t endpoints) {
    endpoints_.reserve(endpoints_.size() + endpoints);
    per_source_ip_.reserve(per_source_ip_.size() + endpoints);
}

EndpointId MembershipDb::create(const UdpEndpoint& address, const UdpEndpoint& relay, Time now,
                                Time timeout) {
    EndpointId id;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
    } else {
        id = static_cast<EndpointId>(endpoints_.size());
        endpoints_.emplace_back();
    }
    EndpointRecord& rec = endpoints_[id];
    rec.address = address;
    rec.relay = relay;
    rec.in_use = true;
    address_index_.insert(id, address_hash(id), [this](EndpointId e) { return address_hash(e); });
    AddressUse& use = per_source_ip_[address.ip];
    if (++use.endpoints == 1) {
        use.first = id;
        if (known_ != nullptr) known_->add(address.ip);
    } else if (!shared_flows_.contains(address.ip)) {
        // A second endpoint behind this address: from now on its flows are counted per flow.
        shared_flows_[address.ip];
        for (const GroupMembership& g : endpoints_[use.first].groups)
            count_address_flows(address.ip, g, true);
    }
    if (wheel_tick_ < 0) wheel_tick_ = now.count() / tick_ns;
    timer_link(id, (now + timeout).count() / tick_ns + 1);
    return id;
}

const GroupMembership* MembershipDb::find_group(EndpointId e, const IpAddress& group) const {
    const auto& groups = endpoints_[e].groups;
    const auto it = std::find_if(groups.begin(), groups.end(),
                                 [&](const GroupMembership& g) { return g.group == group; });
    return it == groups.end() ? nullptr : &*it;
}

GroupMembership* MembershipDb::find_group(EndpointId e, const IpAddress& group) {
    return const_cast<GroupMembership*>(std::as_const(*this).find_group(e, group));
}

void MembershipDb::set_group(EndpointId e, const GroupMembership& next) {
    auto& groups = endpoints_[e].groups;
    GroupMembership* current = find_group(e, next.group);
    if (current == nullptr && next.empty()) return;
    std::optional<GroupMembership> before;
    if (current != nullptr) before = *current;
    const GroupMembership* after = nullptr;
    if (next.empty()) {
        groups.erase(groups.begin() + (current - groups.data()));
    } else if (current != nullptr) {
        *current = next;
        after = current;
    } else {
        groups.push_back(next);
        after = &groups.back();
    }
    update_merged_view(e, before ? &*before : nullptr, after);
}

bool MembershipDb::member_of(EndpointId x, const IpAddress& group, const IpAddress& source) {
    return forwards(find_group(x, group), source);
}

void MembershipDb::emit_tunnel(FlowOp op, const FlowKey& key, EndpointId e) {
    const EndpointRecord& rec = endpoints_[e];
    sink_.flow_edit({op, key, e, rec.address, rec.relay, ending_});
}

void MembershipDb::emit_flow(FlowOp op, const FlowKey& key) {
    if (op == FlowOp::create_flow) {
        ++flow_count_;
    } else {
        --flow_count_;
    }
    sink_.flow_edit({.op = op, .key = key, .why = ending_});
}

void MembershipDb::update_merged_view(EndpointId e, const GroupMembership* before,
                                      const GroupMembership* after) {
    const IpAddress& group = before ? before->group : after->group;
    if (const IpAddress& address = endpoints_[e].address.ip; shared_flows_.contains(address)) {
        if (before) count_address_flows(address, *before, false);
        if (after) count_address_flows(address, *after, true);
    }
    GroupView& view = groups_[group];
    update_sources(e, view, group, before, after);
    update_any_source(e, view, group, before, after);
    if (view.sources.empty() && view.excluders.empty()) groups_.erase(group);
}

void MembershipDb::update_sources(EndpointId e, GroupView& view, const IpAddress& group,
                                  const GroupMembership* before, const GroupMembership* after) {
    // The (S,G) flows e's change can touch: the sources e lists before and after, and, when e is
    // in EXCLUDE mode (a member of every (S,G) it does not block), every flow of the group.
    std::vector<IpAddress> touched;
    if (before) touched = before->sources;
    if (after) touched.insert(touched.end(), after->sources.begin(), after->sources.end());
    if (excludes(before) || excludes(after)) {
        for (const auto& [s, refs] : view.sources)
            touched.push_back(s);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());

    for (const IpAddress& s : touched) {
        SourceRefs& refs = view.sources[s];
        const bool was_flow = refs.is_flow();
        const uint32_t includers_before = refs.includers;
        refs.includers += lists(after, FilterMode::include, s);
        refs.includers -= lists(before, FilterMode::include, s);
        refs.blockers += lists(after, FilterMode::exclude, s);
        refs.blockers -= lists(before, FilterMode::exclude, s);
        const bool is_flow = refs.is_flow();
        const FlowKey key{s, group};

        if (includers_before == 0 && refs.includers > 0) sink_.upstream_change(key, true);
        if (includers_before > 0 && refs.includers == 0) sink_.upstream_change(key, false);

        if (!was_flow && is_flow) {
            emit_flow(FlowOp::create_flow, key);
            for (EndpointId x : view.excluders) {
                if (x != e && member_of(x, group, s)) emit_tunnel(FlowOp::add_tunnel, key, x);
            }
            if (forwards(after, s)) emit_tunnel(FlowOp::add_tunnel, key, e);
        } else if (was_flow && !is_flow) {
            emit_flow(FlowOp::delete_flow, key);
        } else if (was_flow && is_flow && forwards(before, s) != forwards(after, s)) {
            emit_tunnel(forwards(after, s) ? FlowOp::add_tunnel : FlowOp::remove_tunnel, key, e);
        }
        if (!is_flow) view.sources.erase(s);
    }
}

void MembershipDb::update_any_source(EndpointId e, GroupView& view, const IpAddress& group,
                                     const GroupMembership* before, const GroupMembership* after) {
    if (excludes(before) == excludes(after)) return;
    const FlowKey key{any_source_of(group), group};
    if (excludes(after)) {
        if (view.excluders.empty()) {
            emit_flow(FlowOp::create_flow, key);
            sink_.upstream_change(key, true);
        }
        view.excluders.insert(e);
        emit_tunnel(FlowOp::add_tunnel, key, e);
        return;
    }
    view.excluders.erase(e);
    if (view.excluders.empty()) {
        emit_flow(FlowOp::delete_flow, key);
        sink_.upstream_change(key, false);
    } else {
        emit_tunnel(FlowOp::remove_tunnel, key, e);
    }
}

void MembershipDb::refresh(EndpointId e, Time now, Time timeout, uint32_t nonce,
                           const ResponseMac& mac) {
    EndpointRecord& rec = endpoints_[e];
    rec.last_nonce = nonce;
    rec.last_mac = mac;
    timer_unlink(e);
    timer_link(e, (now + timeout).count() / tick_ns + 1);
}

void MembershipDb::remove(EndpointId e, SessionEnd why) {
    ending_ = why;
    while (!endpoints_[e].groups.empty()) {
        GroupMembership leave;
        leave.group = endpoints_[e].groups.back().group;
        set_group(e, leave);
    }
    ending_ = SessionEnd::leave;
    release(e);
}

void MembershipDb::remove_if_empty(EndpointId e) {
    if (endpoints_[e].groups.empty()) release(e);
}

void MembershipDb::release(EndpointId e) {
    EndpointRecord& rec = endpoints_[e];
    timer_unlink(e);
    address_index_.erase(e, address_hash(e), [this](EndpointId x) { return address_hash(x); });
    if (auto it = per_source_ip_.find(rec.address.ip); it != per_source_ip_.end()) {
        if (--it->second.endpoints == 0) {
            if (known_ != nullptr) known_->remove(rec.address.ip);
            per_source_ip_.erase(it);
            shared_flows_.erase(rec.address.ip);
        }
    }
    rec.in_use = false;
    std::vector<GroupMembership>().swap(rec.groups);
    free_ids_.push_back(e);
}

void MembershipDb::timer_link(EndpointId e, int64_t tick) {
    EndpointRecord& rec = endpoints_[e];
    // Never behind the wheel's hand: such an entry would wait a whole turn.
    rec.expires_tick = std::max(tick, wheel_tick_ + 1);
    const size_t slot = static_cast<size_t>(rec.expires_tick) % wheel_slots;
    rec.timer_prev = no_endpoint;
    rec.timer_next = wheel_[slot];
    if (rec.timer_next != no_endpoint) endpoints_[rec.timer_next].timer_prev = e;
    wheel_[slot] = e;
}

void MembershipDb::timer_unlink(EndpointId e) {
    EndpointRecord& rec = endpoints_[e];
    if (rec.timer_prev != no_endpoint) {
        endpoints_[rec.timer_prev].timer_next = rec.timer_next;
    } else {
        wheel_[static_cast<size_t>(rec.expires_tick) % wheel_slots] = rec.timer_next;
    }
    if (rec.timer_next != no_endpoint) endpoints_[rec.timer_next].timer_prev = rec.timer_prev;
    rec.timer_prev = rec.timer_next = no_endpoint;
}

size_t MembershipDb::expire(Time now) {
    const int64_t now_tick = now.count() / tick_ns;
    if (wheel_tick_ < 0) {
        wheel_tick_ = now_tick;
        return 0;
    }
    size_t expired = 0;
    // After a long pause, one pass over every slot is enough.
    const int64_t first =
        std::max(wheel_tick_ + 1, now_tick - static_cast<int64_t>(wheel_slots) + 1);
    for (int64_t t = first; t <= now_tick; ++t) {
        EndpointId e = wheel_[static_cast<size_t>(t) % wheel_slots];
        while (e != no_endpoint) {
            const EndpointId next = endpoints_[e].timer_next;
            if (endpoints_[e].expires_tick <= now_tick) {
                remove(e, SessionEnd::expiry);
                ++expired;
            }
            e = next;
        }
    }
    wheel_tick_ = std::max(wheel_tick_, now_tick);
    return expired;
}

void MembershipDb::for_each_endpoint(const std::function<void(const EndpointRecord&)>& fn) const {
    for (const EndpointRecord& rec : endpoints_) {
        if (rec.in_use) fn(rec);
    }
}

}  // namespace amt
