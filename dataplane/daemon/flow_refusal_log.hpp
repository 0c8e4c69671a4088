// What the flow budgets and the full flow table refused, for the log at a bounded rate (the
// daemon asks every log.drop_summary_interval, beside the drop summary): which gateway the
// budgets cut last, and how many flows do not forward because the table is full. The counts are
// in the metrics as well; the log says who and what to do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/dataplane.hpp"

namespace amt {

class FlowRefusalLog {
  public:
    struct Line {
        bool warning;  // else info
        std::string text;
    };
    // What happened since the last call; empty when nothing did.
    std::vector<Line> since_last(Dataplane& dp);

  private:
    uint64_t refusals_ = 0;
    uint64_t publish_failures_ = 0;
    size_t unpublished_ = 0;
};

}  // namespace amt
