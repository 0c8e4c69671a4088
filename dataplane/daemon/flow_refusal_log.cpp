#include "dataplane/daemon/flow_refusal_log.hpp"

#include <fmt/core.h>

namespace amt {

std::vector<FlowRefusalLog::Line> FlowRefusalLog::since_last(Dataplane& dp) {
    std::vector<Line> lines;
    const RelayEngine& engine = dp.control().engine();
    const FlowRefusal& cut = engine.last_flow_refusal();
    if (cut.total > refusals_) {
        const RelayLimits& limits = engine.config().limits;
        const bool per_address = cut.reason == DropReason::source_ip_flow_limit;
        lines.push_back(
            {true,
             fmt::format(
                 "flow budget: {} membership change(s) cut since the last summary; "
                 "the last from {} for group {}: {} = {} reached",
                 cut.total - refusals_, cut.gateway.to_string(), cut.group.to_string(),
                 per_address ? "limits.max_flows_per_source_ip" : "limits.max_flows_per_endpoint",
                 per_address ? limits.max_flows_per_source_ip : limits.max_flows_per_endpoint)});
        refusals_ = cut.total;
    }
    const FlowPublisher& publisher = dp.control().publisher();
    const uint64_t failures = publisher.publish_failures();
    const size_t waiting = publisher.unpublished();
    if (waiting > 0) {
        lines.push_back(
            {true, fmt::format("flow table full (dataplane.flow_table_size = {}): {} flow(s) with "
                               "members forward nothing ({} newly since the last summary); each "
                               "is published as soon as a deleted flow frees a slot. amtctl "
                               "groups shows them (FORWARDING no); raise the table size or lower "
                               "limits.max_flows_per_source_ip",
                               dp.flows().capacity(), waiting, failures - publish_failures_)});
    } else if (unpublished_ > 0 || failures > publish_failures_) {
        lines.push_back(
            {false, fmt::format("flow table: every flow forwards again ({} waited for a free slot "
                                "since the last summary)",
                                failures - publish_failures_)});
    }
    publish_failures_ = failures;
    unpublished_ = waiting;
    return lines;
}

}  // namespace amt
