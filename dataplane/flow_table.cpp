#include "dataplane/flow_table.hpp"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace amt {

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + rte_strerror(rte_errno));
}

// What waits for a grace period: a replaced or deleted flow's set, and a deleted key's slot.
struct Retired {
    GatewaySet* set;
    int32_t key_position;   // -1 when only the set is retired (replacement)
    uint32_t counter_slot;  // FlowCounters slot to give back, or no_slot
    uint64_t retired_tsc;
};

}  // namespace

void FlowTable::free_retired(void* table, void* elements, unsigned int n) {
    auto* self = static_cast<FlowTable*>(table);
    auto* items = static_cast<Retired*>(elements);
    const uint64_t now = rte_rdtsc();
    const double ns_per_cycle = 1e9 / static_cast<double>(rte_get_tsc_hz());
    for (unsigned int i = 0; i < n; ++i) {
        GatewaySet::destroy(items[i].set);
        if (items[i].key_position >= 0) {
            rte_hash_free_key_with_position(self->hash_, items[i].key_position);
            ++self->freed_slots_;
        }
        if (self->counters_ != nullptr) self->counters_->release(items[i].counter_slot);
        self->reclaim_delay_.observe(std::chrono::nanoseconds(
            static_cast<int64_t>(static_cast<double>(now - items[i].retired_tsc) * ns_per_cycle)));
    }
}

FlowHashKey make_flow_hash_key(const FlowKey& key) {
    FlowHashKey k{};
    k.family = static_cast<uint8_t>(key.group.family());
    std::memcpy(k.source, key.source.canonical16().data(), 16);
    std::memcpy(k.group, key.group.canonical16().data(), 16);
    return k;
}

Rcu::Rcu(uint32_t max_threads) : max_threads_(max_threads) {
    const size_t size = rte_rcu_qsbr_get_memsize(max_threads);
    v_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("amt_rcu", size, RTE_CACHE_LINE_SIZE));
    if (v_ == nullptr || rte_rcu_qsbr_init(v_, max_threads) != 0) fail("rte_rcu_qsbr_init");
}

Rcu::~Rcu() {
    rte_free(v_);
}

FlowTable::FlowTable(const char* name, uint32_t capacity, Rcu& rcu) : capacity_(capacity) {
    rte_hash_parameters params{};
    params.name = name;
    params.entries = capacity;
    params.key_len = sizeof(FlowHashKey);
    params.hash_func = rte_jhash;
    params.socket_id = static_cast<int>(rte_socket_id());
    // Lock-free readers; a deleted key's slot is kept until we free it after the grace period.
    params.extra_flag =
        RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_NO_FREE_ON_DEL;
    hash_ = rte_hash_create(&params);
    if (hash_ == nullptr) fail(std::string("rte_hash_create ") + name);

    const std::string dq_name = std::string(name) + "_dq";
    rte_rcu_qsbr_dq_parameters dq{};
    dq.name = dq_name.c_str();
    dq.size = capacity;
    dq.esize = sizeof(Retired);
    dq.trigger_reclaim_limit = 0;  // reclaim() decides when
    dq.max_reclaim_size = capacity;
    dq.free_fn = free_retired;
    dq.p = this;
    dq.v = rcu.get();
    retired_sets_ = rte_rcu_qsbr_dq_create(&dq);
    if (retired_sets_ == nullptr) fail("rte_rcu_qsbr_dq_create");
}

FlowTable::~FlowTable() {
    // Shutdown: workers have stopped, so everything can go now.
    if (retired_sets_ != nullptr) {
        rte_rcu_qsbr_dq_reclaim(retired_sets_, ~0u, nullptr, nullptr, nullptr);
        rte_rcu_qsbr_dq_delete(retired_sets_);
    }
    if (hash_ == nullptr) return;
    const void* key;
    void* data;
    uint32_t next = 0;
    while (rte_hash_iterate(hash_, &key, &data, &next) >= 0) {
        GatewaySet::destroy(static_cast<GatewaySet*>(data));
    }
    rte_hash_free(hash_);
}

const GatewaySet* FlowTable::find(const FlowHashKey& key) const {
    void* data = nullptr;
    if (rte_hash_lookup_data(hash_, &key, &data) < 0) return nullptr;
    return static_cast<const GatewaySet*>(data);
}

const GatewaySet* FlowTable::lookup(const FlowHashKey& sg, const FlowHashKey& any_g) const {
    const GatewaySet* set = find(sg);
    return set != nullptr ? set : find(any_g);
}

bool FlowTable::publish(const FlowKey& key, GatewaySetPtr set) {
    const FlowHashKey k = make_flow_hash_key(key);
    void* old = nullptr;
    const bool replacing = rte_hash_lookup_data(hash_, &k, &old) >= 0;
    if (rte_hash_add_key_data(hash_, &k, set.get()) != 0) return false;
    const uint32_t slot = set->counter_slot();
    set.release();
    // Workers may still read the old set until they pass a quiescent state. Its counter slot
    // goes with it if the new set counts elsewhere (the flow was deleted and made again).
    if (replacing && old != nullptr) {
        auto* retired = static_cast<GatewaySet*>(old);
        retire(retired, -1,
               retired->counter_slot() != slot ? retired->counter_slot() : FlowCounters::no_slot);
    }
    return true;
}

void FlowTable::remove(const FlowKey& key) {
    const FlowHashKey k = make_flow_hash_key(key);
    void* old = nullptr;
    if (rte_hash_lookup_data(hash_, &k, &old) < 0) return;
    const int32_t position = rte_hash_del_key(hash_, &k);
    if (position >= 0) {
        auto* retired = static_cast<GatewaySet*>(old);
        retire(retired, position, retired->counter_slot());
    }
}

void FlowTable::retire(GatewaySet* set, int32_t key_position, uint32_t release_slot) {
    Retired item{set, key_position, release_slot, rte_rdtsc()};
    // The queue is as large as the table, so it is full only if workers stopped reporting;
    // then wait for them rather than free what they may hold.
    while (rte_rcu_qsbr_dq_enqueue(retired_sets_, &item) != 0) {
        rte_rcu_qsbr_dq_reclaim(retired_sets_, ~0u, nullptr, nullptr, nullptr);
    }
}

void FlowTable::reclaim() {
    rte_rcu_qsbr_dq_reclaim(retired_sets_, ~0u, nullptr, nullptr, nullptr);
}

size_t FlowTable::size() const {
    return static_cast<size_t>(rte_hash_count(hash_));
}

}  // namespace amt
