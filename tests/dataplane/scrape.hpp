// A Prometheus scrape of the relay's metrics (RelayMetrics::Collect) that the dataplane tests
// read sample sums from.
#pragma once

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <map>
#include <string>
#include <vector>

#include "dataplane/daemon/relay_metrics.hpp"

namespace amt::test {

// One sample of a scrape: the family's name and the sample's labels.
struct Scrape {
    std::vector<prometheus::MetricFamily> families;

    explicit Scrape(const RelayMetrics& m) : families(m.Collect()) {}

    // Sum of the family's samples whose labels include every pair of `match`.
    double sum(const std::string& name, const std::map<std::string, std::string>& match = {}) {
        for (const prometheus::MetricFamily& f : families) {
            if (f.name != name) continue;
            double total = 0;
            for (const prometheus::ClientMetric& m : f.metric) {
                size_t hits = 0;
                for (const auto& l : m.label)
                    hits += match.count(l.name) != 0 && match.at(l.name) == l.value;
                if (hits != match.size()) continue;
                total += f.type == prometheus::MetricType::Counter     ? m.counter.value
                         : f.type == prometheus::MetricType::Histogram ? m.histogram.sample_count
                                                                       : m.gauge.value;
            }
            return total;
        }
        ADD_FAILURE() << "no metric family " << name;
        return -1;
    }
};

}  // namespace amt::test
