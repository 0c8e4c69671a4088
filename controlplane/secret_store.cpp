#include "controlplane/secret_store.hpp"

#include <algorithm>

namespace amt {

SecretStore::SecretStore(Time now) {
    random_secret(slots_[0].secret);
    slots_[0].rotated_at = now;
    slots_[0].previous_valid_until = now;  // there is no previous secret yet
    // Slot 3 (the "previous" of generation 0) gets a random secret too, so it matches nothing.
    random_secret(slots_[3].secret);
}

bool SecretStore::rotate_if_due(Time now, Seconds period, Seconds previous_window) {
    const Slot& cur = slots_[generation_.load(std::memory_order_relaxed) % slots_.size()];
    if (now - cur.rotated_at < period) return false;
    rotate(now, previous_window);
    return true;
}

void SecretStore::rotate(Time now, Seconds previous_window) {
    MacSecret s;
    random_secret(s);
    rotate_to(s, now, previous_window);
}

void SecretStore::rotate_to(const MacSecret& s, Time now, Seconds previous_window) {
    const uint64_t next = generation_.load(std::memory_order_relaxed) + 1;
    Slot& slot = slots_[next % slots_.size()];
    slot.secret = s;
    slot.rotated_at = now;
    slot.previous_valid_until = now + previous_window;
    generation_.store(next, std::memory_order_release);
}

SecretSnapshot SecretStore::snapshot() const {
    const uint64_t g = generation();
    const Slot& cur = slots_[g % slots_.size()];
    return {g, cur.secret, slots_[(g + slots_.size() - 1) % slots_.size()].secret,
            cur.previous_valid_until};
}

SavedSecrets SecretStore::save(Time now) const {
    const uint64_t g = generation();
    const Slot& cur = slots_[g % slots_.size()];
    SavedSecrets s;
    s.current = cur.secret;
    s.previous = slots_[(g + slots_.size() - 1) % slots_.size()].secret;
    s.current_age = std::max(Time{0}, now - cur.rotated_at);
    s.previous_remaining = std::max(Time{0}, cur.previous_valid_until - now);
    return s;
}

void SecretStore::restore(const SavedSecrets& saved, Time now) {
    // The saved previous secret goes where snapshot() looks for the previous one of the next
    // generation; the saved current one becomes that generation.
    const uint64_t g = generation_.load(std::memory_order_relaxed);
    slots_[g % slots_.size()].secret = saved.previous;
    Slot& slot = slots_[(g + 1) % slots_.size()];
    slot.secret = saved.current;
    slot.rotated_at = now - saved.current_age;
    slot.previous_valid_until = now + saved.previous_remaining;
    generation_.store(g + 1, std::memory_order_release);
}

}  // namespace amt
