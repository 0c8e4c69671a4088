// Per-flow packet and octet counters for per-tunnel accounting (issue 15): each worker counts
// every native packet it replicates once, on its flow's slot, in an array of its own (single
// writer, relaxed, no shared cache line between workers but at the arrays' edges). A tunnel's
// figures are derived from its flow's (SessionLedger), so the fan-out costs nothing more.
//
// Slots are handed out by the control thread when a flow is first published and given back
// after the RCU grace period of its removal, so no worker counts on a slot that changed owner.
// A slot's counters are never reset (one writer each): its value at hand-out is the new flow's
// origin.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "controlplane/protocol_counters.hpp"
#include "controlplane/session_ledger.hpp"

namespace amt {

class FlowCounters {
  public:
    static constexpr uint32_t no_slot = 0xffffffff;

    FlowCounters(uint32_t slots, uint32_t workers)
        : slots_(slots), workers_(workers), cells_(new Cell[size_t{slots} * workers]()) {
        free_.reserve(slots);
        for (uint32_t s = slots; s > 0; --s)
            free_.push_back(s - 1);
    }

    // Worker `worker`: one native packet of `octets` inner octets forwarded on `slot`.
    void count(uint32_t worker, uint32_t slot, uint32_t octets) {
        Cell& c = cells_[size_t{worker} * slots_ + slot];
        c.packets.add();
        c.octets.add(octets);
    }

    // Control thread. The sum over the workers.
    FlowCount read(uint32_t slot) const {
        FlowCount sum;
        for (uint32_t w = 0; w < workers_; ++w) {
            const Cell& c = cells_[size_t{w} * slots_ + slot];
            sum.packets += c.packets.value();
            sum.octets += c.octets.value();
        }
        return sum;
    }
    uint32_t allocate() {
        if (free_.empty()) return no_slot;
        const uint32_t s = free_.back();
        free_.pop_back();
        return s;
    }
    void release(uint32_t slot) {
        if (slot != no_slot) free_.push_back(slot);
    }
    size_t bytes() const { return size_t{slots_} * workers_ * sizeof(Cell); }

  private:
    struct Cell {
        Counter packets;
        Counter octets;
    };
    uint32_t slots_;
    uint32_t workers_;
    std::unique_ptr<Cell[]> cells_;
    std::vector<uint32_t> free_;
};

}  // namespace amt
