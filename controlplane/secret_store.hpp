// The relay's MAC secrets (RFC 7450 §5.3.6, checklist §2.4, §8.2): random from the CSPRNG,
// rotated by the control thread, the previous one honoured for 2×QI after a rotation.
//
// Written by one thread (control), read by many (workers answering Requests) without locks:
// secrets live in a ring of four slots and a generation counter says which is current. A rotation
// fills the slot after the current one and then publishes the new generation (release), so a
// reader never sees a half-written current or previous secret unless it stalls for three
// rotations (three hours at the shortest period the configuration allows).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "controlplane/engine_config.hpp"
#include "controlplane/relay_state.hpp"
#include "controlplane/response_mac.hpp"

namespace amt {

struct SecretSnapshot {
    uint64_t generation = 0;
    MacSecret current{};
    MacSecret previous{};
    Time previous_valid_until{};  // previous secret accepted while now < this
};

class SecretStore {
  public:
    // Starts with a fresh random secret and no usable previous one.
    explicit SecretStore(Time now);

    // Control thread. Rotates if `period` has passed since the last rotation; returns true if so.
    bool rotate_if_due(Time now, Seconds period, Seconds previous_window);
    void rotate(Time now, Seconds previous_window);
    // Tests only: a chosen secret instead of a random one.
    void rotate_to(const MacSecret& s, Time now, Seconds previous_window);

    // Hitless restart: what a new process needs to accept the MACs this one handed out, and the
    // restore of it. restore() runs before any reader exists (the workers are not started).
    SavedSecrets save(Time now) const;
    void restore(const SavedSecrets& saved, Time now);

    // Any thread.
    uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
    SecretSnapshot snapshot() const;

  private:
    struct Slot {
        MacSecret secret{};
        Time rotated_at{};
        Time previous_valid_until{};
    };
    std::array<Slot, 4> slots_{};
    std::atomic<uint64_t> generation_{0};
};

}  // namespace amt
