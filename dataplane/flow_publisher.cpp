#include "dataplane/flow_publisher.hpp"

namespace amt {

FlowPublisher::FlowPublisher(FlowTable& table, const TunnelDefaults& defaults,
                             const NextHops& next_hops)
    : table_(table), defaults_(defaults), next_hops_(next_hops) {}

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
        case FlowOp::delete_flow:
            flows_.erase(edit.key);
            return;
        case FlowOp::add_tunnel: {
            Members& m = flows_[edit.key];
            if (m.position.find(edit.endpoint)) return;
            const MacAddress next_hop =
                next_hops_.of(edit.tunnel.ip.family()).mac().value_or(MacAddress{});
            m.position.set(edit.endpoint, static_cast<uint32_t>(m.tunnels.size()));
            m.tunnels.push_back(make_tunnel_header(edit.relay, edit.tunnel, defaults_.src_mac,
                                                   next_hop, defaults_.ttl, defaults_.pmtu,
                                                   edit.endpoint));
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
            m.position.erase(edit.endpoint);
            if (i + 1 != m.tunnels.size()) {
                m.tunnels[i] = m.tunnels.back();
                m.position.set(m.tunnels[i].endpoint_id, i);
            }
            m.tunnels.pop_back();
            return;
        }
    }
}

void FlowPublisher::next_hop_changed(Family family) {
    const std::optional<MacAddress> mac = next_hops_.of(family).mac();
    for (auto& [key, members] : flows_) {
        for (TunnelHeader& t : members.tunnels) {
            if (t.family == family && mac) std::copy(mac->begin(), mac->end(), t.bytes);
        }
        mark_dirty(key);
    }
}

size_t FlowPublisher::publish() {
    const bool v4_ready = next_hops_.v4.mac().has_value();
    const bool v6_ready = next_hops_.v6.mac().has_value();
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
        const std::vector<TunnelHeader>* tunnels = &f->second.tunnels;
        if (!v4_ready || !v6_ready) {
            ready.clear();
            for (const TunnelHeader& t : f->second.tunnels) {
                if (t.family == Family::ipv4 ? v4_ready : v6_ready) ready.push_back(t);
            }
            tunnels = &ready;
        }
        if (!table_.publish(key, GatewaySet::create(*tunnels))) {
            table_full = true;
            if (unpublished_.insert(key).second) ++failures_;
            continue;
        }
        unpublished_.erase(key);
        ++n;
    }
    dirty_.clear();
    if (n > 0 && edited) publish_latency_.observe(std::chrono::steady_clock::now() - first_dirty_);
    return n;
}

}  // namespace amt
