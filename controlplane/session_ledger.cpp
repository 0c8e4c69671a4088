#include "controlplane/session_ledger.hpp"

#include <algorithm>

namespace amt {

SessionLedger::SessionLedger(const FlowCountSource& counts, SessionSink& sink, Time active_timeout,
                             Time wall_offset)
    : counts_(counts), sink_(sink), active_timeout_(active_timeout), wall_offset_(wall_offset) {}

// A record is at most sweep_period() late: a tenth of the active timeout, 1 s to 60 s.
Time SessionLedger::sweep_period() const {
    return std::clamp<Time>(active_timeout_ / 10, std::chrono::seconds(1),
                            std::chrono::seconds(60));
}

void SessionLedger::flow_edit(const FlowEdit& edit, Time now) {
    switch (edit.op) {
        case FlowOp::create_flow:
            return;
        case FlowOp::add_tunnel:
            return begin(edit, now);
        case FlowOp::remove_tunnel: {
            const auto it = index_.find({edit.endpoint, edit.key});
            if (it == index_.end()) return;
            end(it->second, now, edit.why, counts_.flow_count(edit.key));
            return;
        }
        case FlowOp::delete_flow: {
            // The flow goes with all its members (an EXCLUDE member of an (S,G) gets no edit of
            // its own: its packets from S fall back to its (*,G) session).
            const auto m = members_.find(edit.key);
            if (m == members_.end()) return;
            const FlowCount count = counts_.flow_count(edit.key);
            const std::vector<uint32_t> ids = std::move(m->second);
            members_.erase(m);
            for (const uint32_t id : ids) {
                sessions_[id].position = none;  // its member list is gone already
                end(id, now, edit.why, count);
            }
            return;
        }
    }
}

void SessionLedger::begin(const FlowEdit& edit, Time now) {
    const Key key{edit.endpoint, edit.key};
    if (index_.contains(key)) return;
    uint32_t id;
    if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
    } else {
        id = static_cast<uint32_t>(sessions_.size());
        sessions_.emplace_back();
    }
    std::vector<uint32_t>& members = members_[edit.key];
    sessions_[id] = {.gateway = edit.tunnel,
                     .relay = edit.relay,
                     .flow = edit.key,
                     .endpoint = edit.endpoint,
                     .position = static_cast<uint32_t>(members.size()),
                     .start = now,
                     .base = counts_.flow_count(edit.key),
                     .in_use = true};
    members.push_back(id);
    index_.emplace(key, id);
}

void SessionLedger::report(Session& s, Time now, SessionEnd why, const FlowCount& count) {
    // A flow's counters only grow while it exists; a smaller value would be a new flow's.
    const uint64_t packets = count.packets >= s.base.packets ? count.packets - s.base.packets : 0;
    const uint64_t octets = count.octets >= s.base.octets ? count.octets - s.base.octets : 0;
    sink_.session_record({.gateway = s.gateway,
                          .relay = s.relay,
                          .flow = s.flow,
                          .start_ms = unix_ms(s.start + wall_offset_),
                          .end_ms = unix_ms(now + wall_offset_),
                          .packets = packets,
                          .octets = octets,
                          .reason = why});
    s.start = now;
    s.base = count;
}

void SessionLedger::unlink_member(uint32_t id) {
    Session& s = sessions_[id];
    if (s.position == none) return;
    const auto m = members_.find(s.flow);
    std::vector<uint32_t>& list = m->second;
    list[s.position] = list.back();
    sessions_[list.back()].position = s.position;
    list.pop_back();
    if (list.empty()) members_.erase(m);
    s.position = none;
}

void SessionLedger::end(uint32_t id, Time now, SessionEnd why, const FlowCount& count) {
    Session& s = sessions_[id];
    report(s, now, why, count);
    unlink_member(id);
    index_.erase({s.endpoint, s.flow});
    s.in_use = false;
    free_.push_back(id);
}

void SessionLedger::advance(Time now) {
    if (!swept_) {
        swept_ = true;
        last_sweep_ = now;
        return;
    }
    const Time elapsed = now - last_sweep_;
    if (elapsed <= Time{0} || sessions_.empty()) return;
    // This call's share of the table, so that all of it is looked at once per sweep_period().
    const size_t share = static_cast<size_t>(static_cast<double>(sessions_.size()) *
                                                 static_cast<double>(elapsed.count()) /
                                                 static_cast<double>(sweep_period().count()) +
                                             1);
    last_sweep_ = now;
    for (size_t n = 0; n < std::min(share, sessions_.size()); ++n) {
        if (cursor_ >= sessions_.size()) cursor_ = 0;
        Session& s = sessions_[cursor_++];
        if (s.in_use && now - s.start >= active_timeout_)
            report(s, now, SessionEnd::active, counts_.flow_count(s.flow));
    }
}

void SessionLedger::stop(Time now) {
    for (uint32_t id = 0; id < sessions_.size(); ++id) {
        if (sessions_[id].in_use)
            end(id, now, SessionEnd::relay_stop, counts_.flow_count(sessions_[id].flow));
    }
}

}  // namespace amt
