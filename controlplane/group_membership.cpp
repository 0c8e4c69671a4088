#include "controlplane/group_membership.hpp"

#include <algorithm>
#include <iterator>

namespace amt {

namespace {

using Sources = std::vector<IpAddress>;

Sources set_union(std::span<const IpAddress> a, std::span<const IpAddress> b) {
    Sources out;
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}
Sources set_difference(std::span<const IpAddress> a, std::span<const IpAddress> b) {
    Sources out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}
Sources set_intersection(std::span<const IpAddress> a, std::span<const IpAddress> b) {
    Sources out;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

// Keeps every source of `next` that `previous` already had, then new ones up to `limit`.
bool cap_additions(const Sources& previous, Sources& next, size_t limit) {
    if (next.size() <= limit) return true;
    Sources kept = set_intersection(previous, next);
    const Sources added = set_difference(next, previous);
    for (const IpAddress& s : added) {
        if (kept.size() >= limit) break;
        kept.push_back(s);
    }
    std::sort(kept.begin(), kept.end());
    next = std::move(kept);
    return false;
}

}  // namespace

bool GroupMembership::forwards(const IpAddress& source) const {
    const bool listed = std::binary_search(sources.begin(), sources.end(), source);
    return mode == FilterMode::include ? listed : !listed;
}

bool apply_record(GroupMembership& g, RecordType type, std::span<const IpAddress> b,
                  size_t max_sources) {
    const bool include = g.mode == FilterMode::include;
    const Sources& a = g.sources;
    FilterMode mode = g.mode;
    Sources next;
    switch (type) {
        case RecordType::mode_is_include:
        case RecordType::allow_new_sources:
            next = include ? set_union(a, b) : set_difference(a, b);
            break;
        case RecordType::block_old_sources:
            if (g.older_version_host) return true;
            next = include ? set_difference(a, b) : set_union(a, b);
            break;
        case RecordType::change_to_include:
            mode = FilterMode::include;
            next.assign(b.begin(), b.end());
            break;
        case RecordType::mode_is_exclude:
            mode = FilterMode::exclude;
            next = include ? set_difference(b, a) : set_intersection(a, b);
            break;
        case RecordType::change_to_exclude:
            mode = FilterMode::exclude;
            if (!g.older_version_host) next.assign(b.begin(), b.end());
            break;
    }
    // Growth is capped in either mode; a switch of mode starts a new list, capped as a whole.
    const bool within = cap_additions(mode == g.mode ? a : Sources{}, next, max_sources);
    g.mode = mode;
    g.sources = std::move(next);
    return within;
}

}  // namespace amt
