#include "dataplane/flow_publisher.hpp"

#include <algorithm>

namespace amt {

FlowPublisher::FlowPublisher(FlowTable& table, const TunnelDefaults& defaults,
                             const NextHops& next_hops, NeighborTable* neighbors)
    : table_(table), defaults_(defaults), next_hops_(next_hops), neighbors_(neighbors) {}

// Zero (withheld until resolved) when the gateway's or the next hop's MAC is not known yet.
MacAddress FlowPublisher::destination_mac(const IpAddress& gateway, const FlowKey& key) {
    if (neighbors_ == nullptr || !neighbors_->on_link(gateway))
        return next_hops_.of(gateway.family()).mac().value_or(MacAddress{});
    neighbors_->hold(gateway);
    ++on_link_[gateway][key];
    return neighbors_->mac(gateway).value_or(MacAddress{});
}

void FlowPublisher::forget_tunnel(const TunnelHeader& t, const FlowKey& key) {
    if (neighbors_ == nullptr) return;
    const auto g = on_link_.find(t.destination());
    if (g == on_link_.end()) return;
    neighbors_->release(g->first);
    const auto f = g->second.find(key);
    if (f != g->second.end() && --f->second == 0) g->second.erase(f);
    if (g->second.empty()) on_link_.erase(g);
}

void FlowPublisher::mark_dirty(const FlowKey& key) {
    if (dirty_.empty()) first_dirty_ = std::chrono::steady_clock::now();
    dirty_.insert(key);
}

void FlowPublisher::apply(const FlowEdit& edit) {
    mark_dirty(edit.key);
    switch (edit.op) {
        case FlowOp::create_flow:
            flows_.try_emplace(edit.key);
            return;
        case FlowOp::delete_flow: {
            const auto f = flows_.find(edit.key);
            if (f == flows_.end()) return;
            f->second.tunnels.for_each([&](const TunnelHeader& t) { forget_tunnel(t, edit.key); });
            // Its chunks go with its published set, which publish() removes from the table.
            f->second.tunnels.release();
            flows_.erase(f);
            return;
        }
        case FlowOp::add_tunnel: {
            Members& m = flows_[edit.key];
            if (m.position.find(edit.endpoint)) return;
            const MacAddress next_hop = destination_mac(edit.tunnel.ip, edit.key);
            m.position.set(edit.endpoint, m.tunnels.size());
            m.tunnels.push_back(make_tunnel_header(edit.relay, edit.tunnel, defaults_.src_mac,
                                                   next_hop, defaults_.ttl, defaults_.pmtu,
                                                   edit.endpoint));
            if (next_hop == MacAddress{}) ++m.unresolved;
            return;
        }
        case FlowOp::remove_tunnel: {
            const auto f = flows_.find(edit.key);
            if (f == flows_.end()) return;
            Members& m = f->second;
            const std::optional<uint32_t> p = m.position.find(edit.endpoint);
            if (!p) return;
            // Swap-remove keeps removal O(1); the order of tunnels in a set carries no meaning.
            const uint32_t i = *p;
            forget_tunnel(m.tunnels[i], edit.key);
            if (!m.tunnels[i].resolved()) --m.unresolved;
            m.position.erase(edit.endpoint);
            m.tunnels.swap_remove(i);
            if (i < m.tunnels.size()) m.position.set(m.tunnels[i].endpoint_id, i);
            return;
        }
    }
}

void FlowPublisher::give_counter_slot(Members& m) {
    FlowCounters* counters = table_.counters();
    if (counters == nullptr || m.counter_slot != FlowCounters::no_slot) return;
    m.counter_slot = counters->allocate();
    if (m.counter_slot != FlowCounters::no_slot) m.counter_origin = counters->read(m.counter_slot);
}

FlowCount FlowPublisher::flow_count(const FlowKey& key) const {
    const FlowCounters* counters = table_.counters();
    const auto f = flows_.find(key);
    if (counters == nullptr || f == flows_.end() || f->second.counter_slot == FlowCounters::no_slot)
        return {};
    const FlowCount now = counters->read(f->second.counter_slot);
    return {now.packets - f->second.counter_origin.packets,
            now.octets - f->second.counter_origin.octets};
}

template <typename Match>
void FlowPublisher::set_destination_mac(Members& m, const MacAddress& mac, Match&& matches) {
    m.unresolved = 0;
    for (uint32_t i = 0; i < m.tunnels.size(); ++i) {
        const TunnelHeader& t = m.tunnels[i];
        if (matches(t) && !std::equal(mac.begin(), mac.end(), t.bytes))
            std::copy(mac.begin(), mac.end(), m.tunnels.writable(i).bytes);
        if (!m.tunnels[i].resolved()) ++m.unresolved;
    }
}

void FlowPublisher::next_hop_changed(Family family) {
    const std::optional<MacAddress> mac = next_hops_.of(family).mac();
    for (auto& [key, members] : flows_) {
        if (mac) {
            set_destination_mac(members, *mac, [&](const TunnelHeader& t) {
                return t.family == family &&
                       (on_link_.empty() || on_link_.count(t.destination()) == 0);
            });
        }
        mark_dirty(key);
    }
}

void FlowPublisher::neighbor_changed(const IpAddress& gateway) {
    const auto g = on_link_.find(gateway);
    if (g == on_link_.end()) return;
    const MacAddress mac = neighbors_->mac(gateway).value_or(MacAddress{});
    for (const auto& [key, tunnels] : g->second) {
        const auto f = flows_.find(key);
        if (f == flows_.end()) continue;
        set_destination_mac(f->second, mac,
                            [&](const TunnelHeader& t) { return t.destination() == gateway; });
        mark_dirty(key);
    }
}

size_t FlowPublisher::publish() {
    std::vector<TunnelHeader> ready;
    size_t n = 0;
    const bool edited = !dirty_.empty();
    // Deleted flows' slots are free again: what found the table full is tried once more.
    if (retry_due()) {
        freed_seen_ = table_.freed_slots();
        dirty_.insert(unpublished_.begin(), unpublished_.end());
    }
    bool table_full = false;
    for (const FlowKey& key : dirty_) {
        const auto f = flows_.find(key);
        if (f == flows_.end()) {
            table_.remove(key);
            unpublished_.erase(key);
            ++n;
            continue;
        }
        // Once one insert failed, the others waiting would too: they wait for the next free slot.
        if (table_full && unpublished_.contains(key)) continue;
        // Nothing leaves toward an unknown MAC: unresolved tunnels are kept but not published
        // (a flat copy of the others, until they resolve).
        Members& m = f->second;
        GatewaySetPtr set(nullptr, &GatewaySet::destroy);
        if (m.unresolved == 0) {
            set = m.tunnels.make_set();
        } else {
            ready.clear();
            m.tunnels.for_each([&](const TunnelHeader& t) {
                if (t.resolved()) ready.push_back(t);
            });
            set = GatewaySet::create(ready, m.unresolved);
        }
        give_counter_slot(m);
        set->set_counter_slot(m.counter_slot);
        GatewaySet* const published = set.get();
        if (!table_.publish(key, std::move(set))) {
            // Never seen by a worker: the slot can go back at once.
            if (FlowCounters* counters = table_.counters(); counters != nullptr) {
                counters->release(m.counter_slot);
                m.counter_slot = FlowCounters::no_slot;
            }
            table_full = true;
            if (unpublished_.insert(key).second) ++failures_;
            continue;
        }
        m.tunnels.published(published);
        unpublished_.erase(key);
        ++n;
    }
    dirty_.clear();
    if (n > 0 && edited) publish_latency_.observe(std::chrono::steady_clock::now() - first_dirty_);
    return n;
}

}  // namespace amt
