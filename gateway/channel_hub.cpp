#include "gateway/channel_hub.hpp"

namespace amt {

namespace {

// A PSI section's payload after the pointer field, or empty (ISO/IEC 13818-1 2.4.4).
ByteView psi_section(const uint8_t* ts) {
    size_t off = 4;
    if (ts[3] & 0x20) off += 1 + ts[4];  // adaptation field
    if (off >= 188) return {};
    off += 1 + ts[off];  // pointer field
    if (off + 3 > 188) return {};
    const size_t length = 3 + (((ts[off + 1] & 0x0f) << 8) | ts[off + 2]);
    return ByteView(ts + off, std::min(length, 188 - off));
}

// Video stream types (MPEG-1/2, MPEG-4 part 2, H.264, H.265): their keyframes are start points.
bool is_video(uint8_t stream_type) {
    return stream_type == 0x01 || stream_type == 0x02 || stream_type == 0x10 ||
           stream_type == 0x1b || stream_type == 0x24;
}

}  // namespace

// Marks what a player needs to start: the PAT (PID 0, payload unit start) and a random access
// indicator in an adaptation field (ISO/IEC 13818-1 2.4.3.5) on a video PID (audio frames carry
// it too), learning the video PIDs from the PAT and PMT as they pass.
void ChannelHub::Entry::mark_ts(ByteView p, Datagram& d) {
    d.ts = !p.empty() && p.size() % 188 == 0;
    for (size_t off = 0; d.ts && off + 188 <= p.size(); off += 188) {
        const uint8_t* ts = p.data() + off;
        if (ts[0] != 0x47) {
            d.ts = false;
            return;
        }
        const uint16_t pid = static_cast<uint16_t>(((ts[1] & 0x1f) << 8) | ts[2]);
        const bool unit_start = ts[1] & 0x40;
        if (pid == 0 && unit_start) {
            d.pat = true;
            const ByteView pat = psi_section(ts);
            if (pat.size() >= 12 && pat[0] == 0x00) {
                pmt_pid = static_cast<uint16_t>(((pat[10] & 0x1f) << 8) | pat[11]);
            }
        } else if (pid == pmt_pid && unit_start) {
            const ByteView pmt = psi_section(ts);
            if (pmt.size() < 12 || pmt[0] != 0x02) continue;
            video_pids.clear();
            size_t es = 12 + (((pmt[10] & 0x0f) << 8) | pmt[11]);
            while (es + 5 <= pmt.size() - std::min<size_t>(4, pmt.size())) {  // before the CRC
                if (is_video(pmt[es])) {
                    video_pids.push_back(
                        static_cast<uint16_t>(((pmt[es + 1] & 0x1f) << 8) | pmt[es + 2]));
                }
                es += 5 + (((pmt[es + 3] & 0x0f) << 8) | pmt[es + 4]);
            }
        }
        const bool rai = (ts[3] & 0x20) && ts[4] > 0 && (ts[5] & 0x40);
        if (rai && (video_pids.empty() ||
                    std::find(video_pids.begin(), video_pids.end(), pid) != video_pids.end())) {
            d.rai = true;
        }
    }
}

uint64_t ChannelHub::Entry::start_for_new_viewer() const {
    const uint64_t live = first_seq + ring.size();
    size_t i = ring.size();
    while (i > 0 && !ring[i - 1].rai)
        --i;
    if (i == 0) return live;  // no keyframe kept (or not MPEG-TS): from the next datagram on
    --i;
    while (true) {
        if (ring[i].pat) return first_seq + i;
        if (i == 0) return live;
        --i;
    }
}

bool ChannelHub::Entry::settle(Cursor& c, size_t ring_size) const {
    const uint64_t live = first_seq + ring.size();
    if (c.waiting) {
        if (c.next < first_seq) c.next = first_seq;
        const uint64_t start = start_for_new_viewer();
        bool give_up = live - c.next >= ring_size / 2;
        for (uint64_t i = c.next; i < live && !give_up; ++i)
            give_up = !ring[i - first_seq].ts;
        if (start != live) {
            c.next = start;
        } else if (!give_up) {
            return false;
        }
        c.waiting = false;
    }
    return c.next < live;
}

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
    const uint64_t live = e.first_seq + e.ring.size();
    const uint64_t start = e.start_for_new_viewer();
    e.cursors[id] = {start, start == live};
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
        Entry::Datagram& d = e.ring.emplace_back();
        d.bytes.assign(payload.begin(), payload.end());
        e.mark_ts(payload, d);
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
        return cursor == it->second.cursors.end() || it->second.settle(cursor->second, ring_size_);
    };
    data_arrived_.wait_for(lock, wait, has_news);
    const auto it = channels_.find(c);
    if (closed_ || it == channels_.end()) return false;
    Entry& e = it->second;
    const auto cursor = e.cursors.find(viewer);
    if (cursor == e.cursors.end()) return false;
    if (!e.settle(cursor->second, ring_size_)) return true;
    uint64_t& next = cursor->second.next;
    if (next < e.first_seq) next = e.first_seq;  // fell a whole ring behind: skip ahead
    for (; next < e.first_seq + e.ring.size(); ++next) {
        const auto& d = e.ring[next - e.first_seq].bytes;
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

std::string describe_problem(const ChannelStatus& s, const std::string& discovery, bool relay_given,
                             double no_data_after) {
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
        return "Joined, but no data for " + std::to_string(static_cast<int>(s.seconds_since_data)) +
               " s: the source may be down, or not sending to this (S,G).";
    }
    if (s.data_seen && !s.mpeg_ts) {
        return "This stream is not MPEG-TS: the page cannot play it. The .ts URL still carries "
               "what the source sends (its UDP payloads).";
    }
    return {};
}

}  // namespace amt
