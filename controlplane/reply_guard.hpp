// What every HandshakeResponder consults before it answers, one object for the whole relay
// (issue 18, item 4): the control thread's RelayEngine owns it and every worker's responder holds
// a reference. Nothing here takes a lock; the workers only load atomics.
//
//  - ReplyBudget: the global token bucket over all addresses (limits.replies_per_second).
//  - KnownGateways: the addresses that hold an endpoint (a gateway that completed a handshake),
//    published by the control thread; they may take the budget's reserve, so during a spoofed
//    flood from unknown addresses established gateways still get their Queries.
//  - The per-address limits as last (re)loaded: each responder keeps its own per-address buckets
//    and picks new limits up at its next burst (SIGHUP reaches the workers).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/ip_address.hpp"
#include "controlplane/engine_config.hpp"
#include "controlplane/reply_budget.hpp"

namespace amt {

// A counting Bloom filter (two slots per address) over the source IPs that hold an endpoint.
// The control thread adds an address with its first endpoint and removes it with its last; any
// thread asks. A false positive only lets an unknown address into the reply reserve; there are
// no false negatives. The hash is keyed per process, so a flood cannot aim at occupied slots.
class KnownGateways {
  public:
    // Sized for `addresses` distinct gateway addresses: 4 slots each (false positives ≈ 15% when
    // every one of them is in, far fewer with the usual number of distinct addresses).
    explicit KnownGateways(size_t addresses);

    void add(const IpAddress& ip) { change(ip, 1); }      // control thread
    void remove(const IpAddress& ip) { change(ip, -1); }  // control thread
    bool contains(const IpAddress& ip) const;             // any thread
    size_t slots() const { return mask_ + 1; }

  private:
    struct Slots {
        size_t a, b;
    };
    Slots slots_of(const IpAddress& ip) const;
    void change(const IpAddress& ip, int delta);

    std::unique_ptr<std::atomic<uint32_t>[]> counts_;
    size_t mask_;
    uint64_t key_;
};

struct PerSourceReplyLimits {
    double per_second;
    double burst;
};

class ReplyGuard {
  public:
    explicit ReplyGuard(const RelayLimits& limits);
    // Control thread (start, SIGHUP). The global budget applies to the next reply; each
    // responder's per-address limits from its next burst.
    void configure(const RelayLimits& limits);

    ReplyBudget& budget() { return budget_; }
    KnownGateways& known_gateways() { return known_; }
    const KnownGateways& known_gateways() const { return known_; }

    // Bumped by every configure(); a responder that saw another value reloads per_source().
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
    PerSourceReplyLimits per_source() const {
        return {per_source_rate_.load(std::memory_order_relaxed),
                per_source_burst_.load(std::memory_order_relaxed)};
    }

  private:
    ReplyBudget budget_;
    KnownGateways known_;
    std::atomic<double> per_source_rate_{0};
    std::atomic<double> per_source_burst_{0};
    std::atomic<uint64_t> generation_{0};
};

}  // namespace amt
