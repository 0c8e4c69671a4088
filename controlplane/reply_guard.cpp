#include "controlplane/reply_guard.hpp"

#include <algorithm>
#include <bit>
#include <random>

namespace amt {

namespace {
uint64_t mix(uint64_t x) {  // splitmix64's finaliser: two independent slot indices from one hash
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
}  // namespace

KnownGateways::KnownGateways(size_t addresses)
    : mask_(std::bit_ceil(std::clamp<size_t>(addresses * 4, 1 << 16, 1 << 22)) - 1),
      key_((uint64_t{std::random_device{}()} << 32) | std::random_device{}()) {
    counts_ = std::make_unique<std::atomic<uint32_t>[]>(mask_ + 1);  // value-initialised: 0
}

KnownGateways::Slots KnownGateways::slots_of(const IpAddress& ip) const {
    const uint64_t h = mix(std::hash<IpAddress>{}(ip) ^ key_);
    return {h & mask_, (h >> 32) & mask_};
}

void KnownGateways::change(const IpAddress& ip, int delta) {
    const Slots s = slots_of(ip);
    // Both slots may be one: then it counts twice, and both decrements undo it.
    counts_[s.a].fetch_add(static_cast<uint32_t>(delta), std::memory_order_relaxed);
    counts_[s.b].fetch_add(static_cast<uint32_t>(delta), std::memory_order_relaxed);
}

bool KnownGateways::contains(const IpAddress& ip) const {
    const Slots s = slots_of(ip);
    return counts_[s.a].load(std::memory_order_relaxed) != 0 &&
           counts_[s.b].load(std::memory_order_relaxed) != 0;
}

ReplyGuard::ReplyGuard(const RelayLimits& limits) : known_(limits.max_endpoints) {
    configure(limits);
}

void ReplyGuard::configure(const RelayLimits& limits) {
    budget_.configure(limits.replies_per_second, limits.reply_burst,
                      limits.reply_burst * limits.reply_reserve_percent / 100);
    per_source_rate_.store(limits.replies_per_second_per_source_ip, std::memory_order_relaxed);
    per_source_burst_.store(limits.reply_burst_per_source_ip, std::memory_order_relaxed);
    // Release: a responder that sees the new generation also sees the limits stored above.
    generation_.fetch_add(1, std::memory_order_release);
}

}  // namespace amt
