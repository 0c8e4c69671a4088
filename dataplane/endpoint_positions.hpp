// Where each endpoint's tunnel sits in a flow's member list: EndpointId → index. One per flow
// on the control thread, a million entries in all at full scale, so it is a flat open-addressing
// table (linear probing, 8-octet slots, at most 3/4 full, backward-shift deletion: no
// tombstones) instead of std::unordered_map's ≈ 42 octets per entry (BENCHMARKS.md, memory).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace amt {

class EndpointPositions {
  public:
    std::optional<uint32_t> find(uint32_t endpoint) const {
        if (slots_.empty()) return std::nullopt;
        for (size_t i = home(endpoint);; i = next(i)) {
            if (slots_[i].endpoint == endpoint) return slots_[i].position;
            if (slots_[i].endpoint == empty) return std::nullopt;
        }
    }

    // Inserts or overwrites.
    void set(uint32_t endpoint, uint32_t position) {
        if ((size_ + 1) * 4 > slots_.size() * 3) grow();
        for (size_t i = home(endpoint);; i = next(i)) {
            if (slots_[i].endpoint == endpoint) {
                slots_[i].position = position;
                return;
            }
            if (slots_[i].endpoint == empty) {
                slots_[i] = {endpoint, position};
                ++size_;
                return;
            }
        }
    }

    // Removes `endpoint` if present; later entries of its probe run move back into the hole.
    void erase(uint32_t endpoint) {
        if (slots_.empty()) return;
        size_t hole = home(endpoint);
        while (slots_[hole].endpoint != endpoint) {
            if (slots_[hole].endpoint == empty) return;
            hole = next(hole);
        }
        for (size_t i = next(hole); slots_[i].endpoint != empty; i = next(i)) {
            // Move slot i into the hole unless its home lies cyclically in (hole, i].
            const size_t h = home(slots_[i].endpoint);
            const bool stays = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i);
            if (!stays) {
                slots_[hole] = slots_[i];
                hole = i;
            }
        }
        slots_[hole].endpoint = empty;
        --size_;
    }

    size_t size() const { return size_; }

  private:
    static constexpr uint32_t empty = 0xffffffff;  // MembershipDb::no_endpoint: never an id
    struct Slot {
        uint32_t endpoint = empty;
        uint32_t position = 0;
    };

    size_t home(uint32_t endpoint) const {
        // Fibonacci hashing: endpoint ids are dense, so spread them over the table.
        return static_cast<size_t>((endpoint * 0x9e3779b97f4a7c15ull) >> 32) & (slots_.size() - 1);
    }
    size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 8 : old.size() * 2, Slot{});
        size_ = 0;
        for (const Slot& s : old) {
            if (s.endpoint != empty) set(s.endpoint, s.position);
        }
    }

    std::vector<Slot> slots_;
    size_t size_ = 0;
};

}  // namespace amt
