// The channels amtgw --http serves, shared between the tunnel loop (one thread) and the HTTP
// server's threads. A channel is wanted while the command line (or the page's Join) pins it or at
// least one viewer reads its stream; the tunnel loop asks reconcile() which tunnels to open and
// which to leave, so several viewers of one channel share one tunnel and the last one out leaves.
// Each channel keeps its last datagrams in a ring; a viewer reads from its own cursor and, when it
// falls behind by a whole ring, skips ahead to the oldest datagram kept. A new viewer of an
// MPEG-TS channel starts at the last PAT before the last random access point (a keyframe), or
// waits for the next one, so a player decodes from its first bytes.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/packet_headers.hpp"
#include "gateway/channel_url.hpp"

namespace amt {

// What the tunnel loop knows about a channel, for the page and /status.json.
struct ChannelStatus {
    std::string state = "starting";  // discovering, requesting, joined (GatewaySession)
    std::string relay;               // empty until one answered
    uint64_t packets = 0;
    uint64_t bytes = 0;
    double mbit_per_s = 0;
    uint64_t ts_errors = 0;  // MPEG-TS continuity errors
    bool data_seen = false;
    bool mpeg_ts = true;            // every payload so far was whole 188-byte TS packets
    bool relay_refuses = false;     // L flag: the relay is draining or full
    double seconds_in_state = 0;    // how long it has been discovering/requesting
    double seconds_since_data = 0;  // since the last datagram (or since joining)
    std::string problem;            // a sentence for a person, empty when all is well
};

struct ChannelView {
    ChannelSpec spec;
    ChannelStatus status;
    size_t viewers = 0;
    bool pinned = false;
};

class ChannelHub {
  public:
    explicit ChannelHub(size_t ring_datagrams = 2048) : ring_size_(ring_datagrams) {}

    // The command line's own joins and the page's Join: kept until unpin().
    void pin(const ChannelSpec& c);
    void unpin(const ChannelSpec& c);
    // A reader of the channel's stream; returns its id. The tunnel opens on the next reconcile().
    uint64_t add_viewer(const ChannelSpec& c);
    void remove_viewer(const ChannelSpec& c, uint64_t viewer);

    struct Changes {
        std::vector<ChannelSpec> open;   // wanted, no tunnel yet
        std::vector<ChannelSpec> leave;  // tunnel open, nobody wants it any more
    };
    // For the tunnel loop: what to open and what to leave. A left channel is forgotten.
    Changes reconcile();

    // The tunnel loop hands on every datagram's UDP payload.
    void publish(const ChannelSpec& c, ByteView payload);
    void set_status(const ChannelSpec& c, const ChannelStatus& s);

    // Appends what the viewer has not read yet to `out`, waiting up to `wait` for some.
    // False when the channel is gone (left): the viewer should end its response.
    bool read(const ChannelSpec& c, uint64_t viewer, std::vector<uint8_t>& out,
              std::chrono::milliseconds wait);

    std::vector<ChannelView> snapshot() const;
    size_t viewers(const ChannelSpec& c) const;
    // Ends every reader (amtgw is stopping).
    void close_all();

  private:
    struct Entry {
        bool pinned = false;
        bool tunnel_open = false;
        struct Cursor {
            uint64_t next = 0;     // the next datagram's sequence number
            bool waiting = false;  // for a keyframe to start at
        };
        std::map<uint64_t, Cursor> cursors;  // by viewer id
        struct Datagram {
            std::vector<uint8_t> bytes;
            bool pat = false;  // carries the start of a PAT (PID 0)
            bool rai = false;  // carries a TS random access indicator (a keyframe)
            bool ts = true;    // whole MPEG-TS packets
        };
        std::deque<Datagram> ring;
        uint16_t pmt_pid = 0x2000;         // from the PAT; 0x2000: none seen yet
        std::vector<uint16_t> video_pids;  // from the PMT: their keyframes are start points
        void mark_ts(ByteView p, Datagram& d);
        uint64_t first_seq = 0;  // sequence number of ring.front()
        ChannelStatus status;
        bool wanted() const { return pinned || !cursors.empty(); }
        uint64_t start_for_new_viewer() const;
        // A waiting viewer starts once a keyframe is kept, or at once when the stream is not
        // MPEG-TS or half a ring went by without one. True when it has something to read.
        bool settle(Cursor& c, size_t ring_size) const;
    };

    const size_t ring_size_;
    mutable std::mutex mutex_;
    std::condition_variable data_arrived_;
    std::map<ChannelSpec, Entry> channels_;
    uint64_t next_viewer_ = 1;
    bool closed_ = false;
};

}  // namespace amt

namespace amt {

// What a person should know about a channel, or "" when all is well. `discovery` is the address
// discovery goes to, `relay_given` whether --relay named the relay; no_data_after in seconds.
std::string describe_problem(const ChannelStatus& s, const std::string& discovery, bool relay_given,
                             double no_data_after);

}  // namespace amt
