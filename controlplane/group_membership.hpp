// One endpoint's membership in one group, and how a group record changes it.
//
// An AMT endpoint is one gateway's merged host state (checklist §2.7), so the relay keeps the
// IGMPv3/MLDv2 router rules of checklist §4.2 with two decisions (§8.6): one timer per endpoint
// (every source and group timer equals it, restarted by each accepted Update), and leaves are
// immediate (each "[query …]" lowers those timers to 0). Under these two rules EXCLUDE(X, Y)
// forwards exactly "all but Y", so the state is a mode and one sorted source list:
//
//   state          IS_IN(B)/ALLOW(B)   BLOCK(B)       TO_IN(B)      IS_EX(B)        TO_EX(B)
//   INCLUDE(A)     INCLUDE(A+B)        INCLUDE(A-B)   INCLUDE(B)    EXCLUDE(B-A)    EXCLUDE(B)
//   EXCLUDE(Y)     EXCLUDE(Y-B)        EXCLUDE(Y+B)   INCLUDE(B)    EXCLUDE(Y*B)    EXCLUDE(B)
//
// In IGMPv2/MLDv1 compatibility (3376 §7.3.2) BLOCK is ignored and TO_EX's sources are dropped.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/igmp_mld.hpp"
#include "common/ip_address.hpp"

namespace amt {

enum class FilterMode : uint8_t { include, exclude };

struct GroupMembership {
    IpAddress group;
    FilterMode mode = FilterMode::include;
    bool older_version_host = false;  // an IGMPv2 / MLDv1 report was seen for this group
    std::vector<IpAddress> sources;   // sorted, unique: INCLUDE → forwarded, EXCLUDE → blocked

    bool forwards(const IpAddress& source) const;
    // INCLUDE{} is no membership at all: the group is deleted.
    bool empty() const { return mode == FilterMode::include && sources.empty(); }
    friend bool operator==(const GroupMembership&, const GroupMembership&) = default;
};

// Applies one record with a sorted, unique source list. At most `max_sources` sources are kept;
// sources beyond that which the record would add are ignored (existing ones stay). Returns false
// if that happened.
bool apply_record(GroupMembership& g, RecordType type, std::span<const IpAddress> sources,
                  size_t max_sources);

}  // namespace amt
