// The stateless half of the relay protocol: Discovery → Advertisement and Request → Membership
// Query (RFC 7450 §5.3.3.2-3). Nothing is allocated and no per-gateway state is kept per Request
// (checklist §2.3): the Query's MAC binds the gateway's address, port and nonce to the relay's
// secret, and is checked again when the Update comes back. Workers each own one responder and
// call respond() once per burst, so the MACs of a burst's Requests are computed together. Every
// reply takes a token from the relay's one ReplyGuard, shared by all responders.
#pragma once

#include <atomic>
#include <memory>
#include <span>

#include "common/amt_messages.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/protocol_counters.hpp"
#include "controlplane/reply_guard.hpp"
#include "controlplane/reply_rate_limiter.hpp"
#include "controlplane/response_mac.hpp"
#include "controlplane/secret_store.hpp"

namespace amt {

// One AMT message (a UDP payload) with the outer addresses it arrived with.
struct Datagram {
    UdpEndpoint src;
    UdpEndpoint dst;
    ByteView payload;
};

// Where replies go. `from` is always the exact address:port the triggering message was sent to.
class ReplySink {
  public:
    virtual ~ReplySink() = default;
    virtual void send_reply(const UdpEndpoint& from, const UdpEndpoint& to, ByteView payload) = 0;
};

enum class MacVerdict : uint8_t { current_secret, previous_secret, mismatch };

class HandshakeResponder {
  public:
    // `guard` outlives the responder; the relay has one for all its responders.
    HandshakeResponder(const EngineConfig& config, const SecretStore& secrets, ReplyGuard& guard);

    // The owner's thread, between bursts: new flags or query parameters. Limits come from the
    // ReplyGuard (ReplyGuard::configure), which reaches every responder.
    void reconfigure(const EngineConfig& config);
    // Any thread: sets L in every Query while the relay refuses new endpoints (draining, full).
    void set_refusing_new_endpoints(bool refusing) {
        refusing_.store(refusing, std::memory_order_relaxed);
    }
    bool refusing_new_endpoints() const { return refusing_.load(std::memory_order_relaxed); }

    // Answers the Discovery and Request messages in `batch`; other types are skipped uncounted.
    void respond(std::span<const Datagram> batch, Time now, ReplySink& sink);
    void respond(const Datagram& d, Time now, ReplySink& sink) {
        respond(std::span(&d, 1), now, sink);
    }

    // Checks an Update's or Teardown's MAC against the current secret, then the previous one
    // while it is still honoured (checklist §2.4). Constant time per comparison.
    MacVerdict verify(const MacInput& in, const ResponseMac& mac, Time now);

    bool is_relay_address(const UdpEndpoint& dst) const;
    bool is_discovery_address(const UdpEndpoint& dst) const;
    ProtocolCounters& counters() { return counters_; }
    const ProtocolCounters& counters() const { return counters_; }

  private:
    struct PendingQuery {
        const Datagram* request;
        bool mld;
    };
    static constexpr size_t max_batch = 64;

    bool accept_reply_target(const Datagram& d, Time now);
    bool take_budget(const IpAddress& source, Time now);
    void reload_limits();
    void answer_discovery(const Datagram& d, Time now, ReplySink& sink);
    void send_queries(std::span<const PendingQuery> pending, ReplySink& sink);
    bool mac_matches(const ResponseMac& expected, const ResponseMac& got) const;
    void refresh_secrets();

    EngineConfig config_;
    const SecretStore& secrets_;
    uint64_t secret_generation_;
    SecretSnapshot snapshot_;
    std::unique_ptr<MacComputer> current_mac_;
    std::unique_ptr<MacComputer> previous_mac_;
    ReplyGuard& guard_;
    uint64_t guard_generation_ = 0;  // the limits limiter_ has
    ReplyRateLimiter limiter_;
    std::atomic<bool> refusing_{false};
    ProtocolCounters counters_;
};

}  // namespace amt
