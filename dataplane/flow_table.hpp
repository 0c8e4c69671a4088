// The published forwarding table: (family, S, G) → GatewaySet, with S = 0 / :: for (*,G).
// A lock-free rte_hash (RW_CONCURRENCY_LF) that workers read without locks while the control
// thread writes. Replacing a flow's set swaps one pointer; the old set, and the key slot of a
// deleted flow, are freed only after an rte_rcu_qsbr grace period: every worker reports a
// quiescent state once per loop, so no worker still holds the old pointer by then. (The hash's
// own RCU integration is not used: DPDK 22.11 offers no way to trigger its reclamation.)
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>

#include <cstdint>
#include <memory>

#include "controlplane/latency_histogram.hpp"
#include "controlplane/membership_db.hpp"
#include "dataplane/flow_counters.hpp"
#include "dataplane/gateway_set.hpp"

namespace amt {

// The rte_hash key: fixed size, no padding left uninitialised.
struct FlowHashKey {
    uint8_t family;
    uint8_t zero[3];
    uint8_t source[16];
    uint8_t group[16];
};
FlowHashKey make_flow_hash_key(const FlowKey& key);

// The QSBR variable workers report to; one per dataplane.
class Rcu {
  public:
    explicit Rcu(uint32_t max_threads);
    ~Rcu();
    Rcu(const Rcu&) = delete;
    Rcu& operator=(const Rcu&) = delete;
    rte_rcu_qsbr* get() const { return v_; }
    uint32_t max_threads() const { return max_threads_; }
    // A worker reads the token before its lookups; later it may report itself quiescent as of
    // that token only (it still holds what it looked up since: a paused fan-out's set). This is
    // rte_rcu_qsbr_quiescent with an older token; reports must never go backwards.
    uint64_t token() const { return __atomic_load_n(&v_->token, __ATOMIC_ACQUIRE); }
    void quiescent_since(uint32_t thread_id, uint64_t token) const {
        __atomic_store_n(&v_->qsbr_cnt[thread_id].cnt, token, __ATOMIC_RELEASE);
    }

  private:
    rte_rcu_qsbr* v_;
    uint32_t max_threads_;
};

class FlowTable {
  public:
    FlowTable(const char* name, uint32_t capacity, Rcu& rcu);
    ~FlowTable();
    FlowTable(const FlowTable&) = delete;
    FlowTable& operator=(const FlowTable&) = delete;

    // Workers. The (S,G) flow if it exists (even if empty: a blocked source), else (*,G).
    const GatewaySet* lookup(const FlowHashKey& sg, const FlowHashKey& any_g) const;
    const GatewaySet* find(const FlowHashKey& key) const;

    // Control thread only.
    bool publish(const FlowKey& key, GatewaySetPtr set);  // insert or replace; false when full
    void remove(const FlowKey& key);
    // Frees what every worker has stopped using. Call once per control loop.
    void reclaim();
    size_t size() const;
    uint32_t capacity() const { return capacity_; }
    // Key slots freed so far (deleted flows whose grace period is over): when it moves, a flow
    // that found the table full may fit now.
    uint64_t freed_slots() const { return freed_slots_; }
    // Retired → freed: the RCU grace period plus the wait for the next reclaim() call.
    const LatencyHistogram& reclaim_delay() const { return reclaim_delay_; }
    // Per-flow counters (per-tunnel accounting); null when off. A removed flow's slot is given
    // back with its set, after the grace period.
    void set_counters(FlowCounters* counters) { counters_ = counters; }
    FlowCounters* counters() const { return counters_; }

  private:
    void retire(GatewaySet* set, int32_t key_position, uint32_t release_slot);
    // Defer-queue callback, run once no worker can still see the elements.
    static void free_retired(void* table, void* elements, unsigned int n);

    rte_hash* hash_ = nullptr;
    rte_rcu_qsbr_dq* retired_sets_ = nullptr;  // sets and key slots waiting for a grace period
    LatencyHistogram reclaim_delay_;
    uint64_t freed_slots_ = 0;
    uint32_t capacity_;
    FlowCounters* counters_ = nullptr;
};

}  // namespace amt
