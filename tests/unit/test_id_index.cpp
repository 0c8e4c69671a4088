// IdIndex against std::unordered_map: random inserts and erases, with a good hash and with a
// hash that puts everything in a few probe runs (backward-shift deletion across wrap-around).
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "controlplane/id_index.hpp"

using namespace amt;

namespace {

void run(uint64_t seed, size_t (*hash)(uint32_t key)) {
    std::mt19937_64 rng(seed);
    std::vector<uint32_t> key_of;                  // id → key (the owner's records)
    std::unordered_map<uint32_t, uint32_t> model;  // key → id
    IdIndex index;
    const auto hash_of = [&](uint32_t id) { return hash(key_of[id]); };
    for (int step = 0; step < 20000; ++step) {
        const uint32_t key = static_cast<uint32_t>(rng() % 3000);
        const uint32_t found =
            index.find(hash(key), [&](uint32_t id) { return key_of[id] == key; });
        const auto m = model.find(key);
        ASSERT_EQ(found, m == model.end() ? IdIndex::none : m->second) << "step " << step;
        if (m == model.end()) {
            const uint32_t id = static_cast<uint32_t>(key_of.size());
            key_of.push_back(key);
            index.insert(id, hash(key), hash_of);
            model[key] = id;
        } else if (rng() % 2 == 0) {
            index.erase(m->second, hash(key), hash_of);
            model.erase(m);
        }
        ASSERT_EQ(index.size(), model.size());
    }
}

}  // namespace

TEST(IdIndex, MatchesAMapWithAGoodHash) {
    for (uint64_t seed = 1; seed <= 5; ++seed)
        run(seed, [](uint32_t k) { return std::hash<uint64_t>{}(k * 0x9e3779b97f4a7c15ull); });
}

TEST(IdIndex, MatchesAMapWhenKeysCollide) {
    for (uint64_t seed = 1; seed <= 5; ++seed)
        run(seed, [](uint32_t k) { return static_cast<size_t>(k % 7); });
}
