#include "dataplane/flow_publisher.hpp"

namespace amt {

void FlowPublisher::apply(const FlowEdit& edit) {
    dirty_.insert(edit.key);
    switch (edit.op) {
        case FlowOp::create_flow:
            flows_.try_emplace(edit.key);
            return;
        case FlowOp::delete_flow:
            flows_.erase(edit.key);
            return;
        case FlowOp::add_tunnel: {
            Members& m = flows_[edit.key];
            if (m.position.count(edit.endpoint) != 0) return;
            const MacAddress& next_hop =
                edit.tunnel.ip.is_v4() ? defaults_.next_hop_v4 : defaults_.next_hop_v6;
            m.position[edit.endpoint] = static_cast<uint32_t>(m.tunnels.size());
            m.tunnels.push_back(make_tunnel_header(edit.relay, edit.tunnel, defaults_.src_mac,
                                                   next_hop, defaults_.ttl, defaults_.pmtu,
                                                   edit.endpoint));
            return;
        }
        case FlowOp::remove_tunnel: {
            const auto f = flows_.find(edit.key);
            if (f == flows_.end()) return;
            Members& m = f->second;
            const auto p = m.position.find(edit.endpoint);
            if (p == m.position.end()) return;
            // Swap-remove keeps removal O(1); the order of tunnels in a set carries no meaning.
            const uint32_t i = p->second;
            m.position.erase(p);
            if (i + 1 != m.tunnels.size()) {
                m.tunnels[i] = m.tunnels.back();
                m.position[m.tunnels[i].endpoint_id] = i;
            }
            m.tunnels.pop_back();
            return;
        }
    }
}

size_t FlowPublisher::publish() {
    size_t n = 0;
    for (const FlowKey& key : dirty_) {
        const auto f = flows_.find(key);
        if (f == flows_.end()) {
            table_.remove(key);
        } else if (!table_.publish(key, GatewaySet::create(f->second.tunnels))) {
            ++failures_;  // table full: the flow stays unpublished until the next change
            continue;
        }
        ++n;
    }
    dirty_.clear();
    return n;
}

}  // namespace amt
