// One AMT tunnel seen from the gateway side (RFC 7450 §5.2), sans-I/O: datagrams from the relay
// and the time go in; datagrams to send and the received multicast packets come out. amtgw
// drives it with kernel UDP sockets; the tests drive it against the relay's own engine.
//
//   discovering ──Advertisement──► requesting ──Query──► joined ──(every QQIC:
//   Request/Query/Update)
//        ▲                                                  │
//        └──────────── no Query after retries ◄─────────────┘
//
// A joined session whose refresh Request goes unanswered (the relay restarted, died or moved)
// retransmits it with backoff capped at QQIC, keeping its membership meanwhile; after the retries
// a discovered relay is given up and discovery starts again, as in the requesting state (RFC 7450
// §5.2.3.5.3); a configured relay (--relay) is asked again at least every QQIC until it answers.
//
// A dead relay is noticed sooner than the next refresh (up to QQIC, 125 s by default): when data
// stops for data_timeout on a tunnel where it was flowing, the refresh cycle starts at once, and
// if its Request stays unanswered (2 retransmissions: 3-5 s) the relay is given up.
// A relay that answers is alive (the source went quiet) and is not asked again until data has
// flowed once more. A relay given up that later sends data anyway (it came back and restored our
// old tunnel from its state file) is told we left: its last nonce and MAC, a BLOCK of each channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"

namespace amt {

using GwTime = std::chrono::nanoseconds;

struct Channel {
    IpAddress source;  // unspecified: any source (ASM, (*,G))
    IpAddress group;
};

struct SessionConfig {
    std::vector<Channel> channels;
    std::optional<IpAddress> relay;  // skip discovery and send Requests here (RFC 8777 D=1)
    IpAddress discovery = *IpAddress::parse("192.52.193.1");
    bool teardown = true;  // send Teardown when the relay's G fields say we moved
    // No data for this long on a tunnel where it flowed: ask the relay at once (0: only at the
    // refresh). 4 s is RFC 8777 §3.3.4.1's first no-traffic timeout.
    std::chrono::nanoseconds data_timeout = std::chrono::seconds(4);
};

enum class SessionState : uint8_t { discovering, requesting, joined, stopped };
std::string_view to_string(SessionState s);

struct Outgoing {
    UdpEndpoint to;
    std::vector<uint8_t> payload;
};

class GatewaySession {
  public:
    // `random` must come from a CSPRNG (nonces, RFC 7450 §5.2.3.4.5).
    GatewaySession(const SessionConfig& config, std::function<uint32_t()> random);

    void start(GwTime now);
    void on_datagram(const UdpEndpoint& from, ByteView payload, GwTime now);
    void advance(GwTime now);
    // Leaves every channel (and tears the tunnel down when the relay asked for Teardown).
    void stop(GwTime now);

    std::vector<Outgoing> take_outgoing() { return std::exchange(outgoing_, {}); }
    // Every inner multicast datagram received for a joined channel, as the IP packet.
    std::function<void(ByteView ip_packet)> on_data;

    SessionState state() const { return state_; }
    const std::optional<IpAddress>& relay() const { return relay_; }
    uint8_t qqic() const { return qqic_; }
    bool relay_refuses_new_endpoints() const { return l_flag_; }
    uint64_t data_packets() const { return data_packets_; }
    uint64_t data_bytes() const { return data_bytes_; }
    uint64_t queries() const { return queries_; }
    // Data packets per configured channel, in SessionConfig::channels order.
    const std::vector<uint64_t>& channel_packets() const { return channel_packets_; }
    // What happened to the tunnel, in words, for the log (relay found, given up, ...).
    std::function<void(const std::string&)> on_event;
    uint64_t relays_given_up() const { return relays_given_up_; }
    uint64_t stale_leaves() const { return stale_leaves_; }

  private:
    struct FamilyHandshake {
        Family family;                            // IGMP (IPv4 groups) or MLD (IPv6 groups)
        uint32_t nonce = 0;                       // of the Request in flight
        std::optional<ResponseMac> mac;           // from the last Query
        uint32_t mac_nonce = 0;                   // the nonce that Query echoed (goes with the MAC)
        std::optional<UdpEndpoint> gateway_seen;  // G fields of the last Query
        bool reported = false;                    // the first report (ALLOW) was sent
        bool answered = false;                    // a Query answered this cycle's Request
    };

    void send(const UdpEndpoint& to, std::vector<uint8_t> payload);
    void send_discovery(GwTime now);
    void send_requests(GwTime now, int64_t backoff_cap_s = 120);
    std::vector<uint8_t> update_message(const FamilyHandshake& h, RecordType type) const;
    void send_update(FamilyHandshake& h, RecordType type);
    void send_teardown(const FamilyHandshake& h, const UdpEndpoint& old_gateway);
    void schedule_retry(GwTime now, int64_t cap_s = 120);
    void refresh_or_recover(GwTime now);
    void give_up_relay(GwTime now, const char* why);
    void leave_former_relay(const UdpEndpoint& from, GwTime now);
    void event(const std::string& what) {
        if (on_event) on_event(what);
    }
    UdpEndpoint relay_endpoint() const { return {*relay_, amt_udp_port}; }
    std::vector<Channel> channels_of(Family f) const;

    SessionConfig config_;
    std::function<uint32_t()> random_;
    SessionState state_ = SessionState::discovering;
    std::optional<IpAddress> relay_;
    uint32_t discovery_nonce_ = 0;
    std::vector<FamilyHandshake> handshakes_;
    std::vector<Outgoing> outgoing_;
    GwTime next_action_{};
    int retries_ = 0;
    uint8_t qqic_ = 125;
    bool l_flag_ = false;
    uint64_t data_packets_ = 0;
    uint64_t data_bytes_ = 0;
    uint64_t queries_ = 0;
    std::vector<uint64_t> channel_packets_;
    bool awaiting_query_ = false;  // joined, and this cycle's Request is not answered yet
    GwTime last_data_{};
    bool data_flowing_ = false;  // data arrived since the relay last answered a silence probe
    bool probing_ = false;       // this cycle was started by silence, not by the refresh timer
    // The relay given up last, with what it last accepted from us (to leave it if it comes back).
    std::optional<IpAddress> former_relay_;
    std::vector<FamilyHandshake> former_handshakes_;
    GwTime former_left_at_{};
    uint64_t relays_given_up_ = 0;
    uint64_t stale_leaves_ = 0;
};

}  // namespace amt
