#include "gateway/channel_hub.hpp"

namespace amt {

void ChannelHub::pin(const ChannelSpec& c) {
    std::lock_guard lock(mutex_);
    channels_[c].pinned = true;
}

void ChannelHub::unpin(const ChannelSpec& c) {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(c);
    if (it != channels_.end()) it->second.pinned = false;
}

uint64_t ChannelHub::add_viewer(const ChannelSpec& c) {
    std::lock_guard lock(mutex_);
    Entry& e = channels_[c];
    const uint64_t id = next_viewer_++;
    e.cursors[id] = e.first_seq + e.ring.size();  // live: from the next datagram on
    return id;
}

void ChannelHub::remove_viewer(const ChannelSpec& c, uint64_t viewer) {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(c);
    if (it != channels_.end()) it->second.cursors.erase(viewer);
}

ChannelHub::Changes ChannelHub::reconcile() {
    Changes changes;
    std::lock_guard lock(mutex_);
    for (auto it = channels_.begin(); it != channels_.end();) {
        Entry& e = it->second;
        if (e.wanted() && !e.tunnel_open) {
            e.tunnel_open = true;
            changes.open.push_back(it->first);
        } else if (!e.wanted()) {
            if (e.tunnel_open) changes.leave.push_back(it->first);
            it = channels_.erase(it);
            continue;
        }
        ++it;
    }
    if (!changes.leave.empty()) data_arrived_.notify_all();
    return changes;
}

void ChannelHub::publish(const ChannelSpec& c, ByteView payload) {
    {
        std::lock_guard lock(mutex_);
        const auto it = channels_.find(c);
        if (it == channels_.end()) return;
        Entry& e = it->second;
        e.ring.emplace_back(payload.begin(), payload.end());
        if (e.ring.size() > ring_size_) {
            e.ring.pop_front();
            ++e.first_seq;
        }
    }
    data_arrived_.notify_all();
}

void ChannelHub::set_status(const ChannelSpec& c, const ChannelStatus& s) {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(c);
    if (it != channels_.end()) it->second.status = s;
}

bool ChannelHub::read(const ChannelSpec& c, uint64_t viewer, std::vector<uint8_t>& out,
                      std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    auto has_news = [&] {
        const auto it = channels_.find(c);
        if (closed_ || it == channels_.end()) return true;
        const auto cursor = it->second.cursors.find(viewer);
        return cursor == it->second.cursors.end() ||
               cursor->second < it->second.first_seq + it->second.ring.size();
    };
    data_arrived_.wait_for(lock, wait, has_news);
    const auto it = channels_.find(c);
    if (closed_ || it == channels_.end()) return false;
    Entry& e = it->second;
    const auto cursor = e.cursors.find(viewer);
    if (cursor == e.cursors.end()) return false;
    uint64_t& next = cursor->second;
    if (next < e.first_seq) next = e.first_seq;  // fell a whole ring behind: skip ahead
    for (; next < e.first_seq + e.ring.size(); ++next) {
        const auto& d = e.ring[next - e.first_seq];
        out.insert(out.end(), d.begin(), d.end());
    }
    return true;
}

std::vector<ChannelView> ChannelHub::snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<ChannelView> out;
    for (const auto& [spec, e] : channels_)
        out.push_back({spec, e.status, e.cursors.size(), e.pinned});
    return out;
}

size_t ChannelHub::viewers(const ChannelSpec& c) const {
    std::lock_guard lock(mutex_);
    const auto it = channels_.find(c);
    return it == channels_.end() ? 0 : it->second.cursors.size();
}

void ChannelHub::close_all() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    data_arrived_.notify_all();
}

}  // namespace amt

namespace amt {

std::string describe_problem(const ChannelStatus& s, const std::string& discovery,
                             bool relay_given, double no_data_after) {
    const std::string waited = std::to_string(static_cast<int>(s.seconds_in_state)) + " s";
    if (s.state == "discovering" && s.seconds_in_state >= 5) {
        return "No relay answered discovery at " + discovery + " for " + waited +
               ". Try a relay you know with --relay ADDR, or --driad to ask the source's DNS; "
               "check that this network lets UDP port 2268 out.";
    }
    if (s.state == "requesting" && s.seconds_in_state >= 5) {
        return "The relay " + s.relay + " has not answered for " + waited +
               (relay_given ? ": check the --relay address and that UDP port 2268 reaches it."
                            : ": it may have gone away; amtgw will discover another.");
    }
    if (s.relay_refuses) {
        return "The relay " + s.relay +
               " is draining or full (it set the L flag): it takes no new gateways. Try another "
               "relay with --relay ADDR.";
    }
    if (s.state == "joined" && s.seconds_since_data >= no_data_after) {
        return "Joined, but no data for " +
               std::to_string(static_cast<int>(s.seconds_since_data)) +
               " s: the source may be down, or not sending to this (S,G).";
    }
    if (s.data_seen && !s.mpeg_ts) {
        return "This stream is not MPEG-TS: the page cannot play it. The .ts URL still carries "
               "what the source sends (its UDP payloads).";
    }
    return {};
}

}  // namespace amt
