// A hash index that stores only ids: the key of each id lives in the owner's own record (an
// endpoint's address in its EndpointRecord), so a slot is 4 octets instead of an
// unordered_map node's ≈ 48 plus buckets. Open addressing, linear probing, at most 3/4 full,
// backward-shift deletion (no tombstones). The owner passes the key's hash, and a function from
// an id to its key's hash for the probes that move entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amt {

class IdIndex {
  public:
    static constexpr uint32_t none = 0xffffffff;

    // The id whose key matches (is_key(id) is true), or none.
    template <typename IsKey>
    uint32_t find(size_t hash, IsKey&& is_key) const {
        if (slots_.empty()) return none;
        for (size_t i = home(hash); slots_[i] != none; i = next(i)) {
            if (is_key(slots_[i])) return slots_[i];
        }
        return none;
    }

    // Adds `id`, whose key hashes to `hash` and is not in the index yet.
    template <typename HashOf>
    void insert(uint32_t id, size_t hash, HashOf&& hash_of) {
        if ((size_ + 1) * 4 > slots_.size() * 3) grow(hash_of);
        size_t i = home(hash);
        while (slots_[i] != none)
            i = next(i);
        slots_[i] = id;
        ++size_;
    }

    // Removes `id` (its key hashes to `hash`); later entries of its probe run move back.
    template <typename HashOf>
    void erase(uint32_t id, size_t hash, HashOf&& hash_of) {
        if (slots_.empty()) return;
        size_t hole = home(hash);
        while (slots_[hole] != id) {
            if (slots_[hole] == none) return;
            hole = next(hole);
        }
        for (size_t i = next(hole); slots_[i] != none; i = next(i)) {
            // Move slot i into the hole unless its home lies cyclically in (hole, i].
            const size_t h = home(hash_of(slots_[i]));
            const bool stays = hole <= i ? (hole < h && h <= i) : (hole < h || h <= i);
            if (!stays) {
                slots_[hole] = slots_[i];
                hole = i;
            }
        }
        slots_[hole] = none;
        --size_;
    }

    size_t size() const { return size_; }

  private:
    size_t home(size_t hash) const {
        // Mix: the owner's hash may be weak in its low bits.
        return static_cast<size_t>((hash * 0x9e3779b97f4a7c15ull) >> 20) & (slots_.size() - 1);
    }
    size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

    template <typename HashOf>
    void grow(HashOf&& hash_of) {
        std::vector<uint32_t> old = std::move(slots_);
        slots_.assign(old.empty() ? 16 : old.size() * 2, none);
        for (const uint32_t id : old) {
            if (id == none) continue;
            size_t i = home(hash_of(id));
            while (slots_[i] != none)
                i = next(i);
            slots_[i] = id;
        }
    }

    std::vector<uint32_t> slots_;
    size_t size_ = 0;
};

}  // namespace amt
