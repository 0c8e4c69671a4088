// EndpointPositions against std::unordered_map: the same random inserts, overwrites and erases
// (dense ids, as the engine allocates them, and sparse ones), then every key looked up.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "dataplane/endpoint_positions.hpp"

using namespace amt;

TEST(EndpointPositions, BehavesLikeAMap) {
    for (const uint32_t id_range : {64u, 5000u, 0xfffffffeu}) {
        std::mt19937 rng(id_range);
        EndpointPositions table;
        std::unordered_map<uint32_t, uint32_t> model;
        for (int step = 0; step < 200'000; ++step) {
            const uint32_t id = static_cast<uint32_t>(rng() % id_range);
            const unsigned op = rng() % 3;
            if (op < 2) {
                const uint32_t position = rng();
                table.set(id, position);
                model[id] = position;
            } else {
                table.erase(id);
                model.erase(id);
            }
            ASSERT_EQ(table.size(), model.size());
            if (step % 1000 == 0) {
                for (const auto& [k, v] : model)
                    ASSERT_EQ(table.find(k), std::optional<uint32_t>(v)) << k;
            }
            const uint32_t probe = static_cast<uint32_t>(rng() % id_range);
            const auto it = model.find(probe);
            ASSERT_EQ(table.find(probe),
                      it == model.end() ? std::nullopt : std::optional<uint32_t>(it->second));
        }
        for (const auto& [k, v] : model)
            table.erase(k);
        EXPECT_EQ(table.size(), 0u);
        EXPECT_EQ(table.find(1), std::nullopt);
    }
}
