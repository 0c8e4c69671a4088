// The chunked member list of a flow (issue 17): the same contents as a plain vector with
// swap-remove under random churn, always compact, and a published set never changes under the
// workers: a change copies only the chunks it writes, which the old set keeps until it is freed.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dataplane/gateway_set.hpp"

using namespace amt;

namespace {

constexpr uint32_t chunk = GatewayChunk::capacity_max;

TunnelHeader tunnel(uint32_t id, uint16_t pmtu = 1500) {
    const UdpEndpoint relay{*IpAddress::parse("192.0.2.1"), amt_udp_port};
    const UdpEndpoint gw{IpAddress::v4(0x0a000000u + id), static_cast<uint16_t>(1024 + id % 60000)};
    return make_tunnel_header(relay, gw, MacAddress{2, 0, 0, 0, 0, 1}, MacAddress{2, 0, 0, 0, 0, 2},
                              64, pmtu, id);
}

std::vector<uint32_t> ids(const GatewaySet& set) {
    std::vector<uint32_t> out;
    set.for_each_run([&](const TunnelHeader* run, uint32_t n) {
        for (uint32_t i = 0; i < n; ++i)
            out.push_back(run[i].endpoint_id);
    });
    return out;
}

std::vector<uint32_t> ids(const GatewayList& list) {
    std::vector<uint32_t> out;
    list.for_each([&](const TunnelHeader& t) { out.push_back(t.endpoint_id); });
    return out;
}

}  // namespace

TEST(GatewayList, ChurnMatchesAVectorAndStaysCompact) {
    GatewayList list;
    // Published every 97 changes; the one before stays readable until then (its grace period).
    GatewaySetPtr live(nullptr, &GatewaySet::destroy), retiring(nullptr, &GatewaySet::destroy);
    std::vector<uint32_t> model, live_ids;
    std::mt19937 rng(17);
    uint32_t next_id = 0;
    for (int step = 0; step < 20000; ++step) {
        // Grow to about 1,000 members, shrink to almost none, grow again.
        const bool grow = (step / 5000) % 2 == 0 ? rng() % 10 < 7 : rng() % 10 < 3;
        if (grow || model.empty()) {
            list.push_back(tunnel(next_id));
            model.push_back(next_id++);
        } else {
            const uint32_t i = static_cast<uint32_t>(rng() % model.size());
            list.swap_remove(i);
            model[i] = model.back();
            model.pop_back();
        }
        ASSERT_EQ(list.size(), model.size());
        ASSERT_EQ(list.chunk_count(), (model.size() + chunk - 1) / chunk) << "holes at " << step;
        if (step % 97 == 0) {
            ASSERT_EQ(ids(list), model);
            if (live) {
                ASSERT_EQ(ids(*live), live_ids) << "a published set changed at " << step;
            }
            retiring = std::move(live);
            live = list.make_set();
            list.published(live.get());
            live_ids = model;
            ASSERT_EQ(ids(*live), model);
        }
    }
}

TEST(GatewayList, SmallFlowIsOneFlatSetAndShrinksBack) {
    GatewayList list;
    for (uint32_t i = 0; i < 3; ++i)
        list.push_back(tunnel(i));
    const GatewaySetPtr set = list.make_set();
    EXPECT_FALSE(set->shares_chunks());
    EXPECT_EQ(set->chunk_count(), 1u);
    EXPECT_EQ(set->size(), 3u);
    EXPECT_LE(list.capacity(), 4u) << "a three-member flow holds no full chunk";

    for (uint32_t i = 3; i < chunk; ++i)
        list.push_back(tunnel(i));
    EXPECT_EQ(list.capacity(), chunk);
    while (list.size() > 3)
        list.swap_remove(0);
    EXPECT_LE(list.capacity(), 16u) << "a churned small flow is as small as a fresh one";
    EXPECT_EQ(ids(list), (std::vector<uint32_t>{3, 1, 2}));
}

TEST(GatewayList, PublishedSetKeepsItsContentsAndSharesUnchangedChunks) {
    GatewayList list;
    const uint32_t members = 10 * chunk + 5;
    for (uint32_t i = 0; i < members; ++i)
        list.push_back(tunnel(i));
    GatewaySetPtr old_set = list.make_set();
    ASSERT_TRUE(old_set->shares_chunks());
    list.published(old_set.get());
    const std::vector<uint32_t> before = ids(*old_set);

    // One leave in chunk 3: it takes the last member (chunk 10); both chunks are copied.
    list.swap_remove(3 * chunk + 7);
    list.writable(5 * chunk).bytes[0] = 0x0e;  // a next-hop change rewrites a tunnel of chunk 5
    list.push_back(tunnel(members, 1400));     // a join lands in chunk 10 (copied already)
    EXPECT_EQ(ids(*old_set), before) << "a published set changed under the workers";
    EXPECT_EQ((*old_set)[5 * chunk].bytes[0], 2);

    GatewaySetPtr new_set = list.make_set();
    ASSERT_EQ(new_set->chunk_count(), old_set->chunk_count());
    uint32_t shared = 0;
    for (uint32_t c = 0; c < new_set->chunk_count(); ++c)
        shared += &new_set->chunk(c) == &old_set->chunk(c) ? 1 : 0;
    EXPECT_EQ(shared, new_set->chunk_count() - 3) << "only the written chunks are copied";
    EXPECT_EQ(new_set->size(), members);
    EXPECT_EQ((*new_set)[5 * chunk].bytes[0], 0x0e);
    EXPECT_EQ(new_set->min_tunnel_mtu(), tunnel(0, 1400).tunnel_mtu());
    EXPECT_EQ(old_set->min_tunnel_mtu(), tunnel(0).tunnel_mtu());

    // A second change before the next publish writes the copies in place.
    const GatewayChunk* copied = &new_set->chunk(3);
    list.writable(3 * chunk).bytes[0] = 0x0e;
    EXPECT_EQ(&list.make_set()->chunk(3), copied);

    // The old set retires: the chunks it alone holds go with it (ASan: the new set still reads
    // every chunk it shares). Then the flow goes, and its chunks with its last set.
    list.published(new_set.get());
    old_set.reset();
    EXPECT_EQ(ids(*new_set).size(), members);
    list.release();
    EXPECT_EQ(list.size(), 0u);
    EXPECT_EQ(ids(*new_set).size(), members);
    new_set.reset();  // LeakSanitizer: every chunk was owned by someone
}
