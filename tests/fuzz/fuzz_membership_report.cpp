// libFuzzer target: the IGMP/MLD report parser over arbitrary encapsulated datagrams. Every
// report that parses is rebuilt record by record with ReportBuilder and must parse to the same
// records (v3/v2 reports only; v2/v1 messages are rebuilt with build_v1v2_message).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/igmp_mld.hpp"

using namespace amt;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool same_record(const GroupRecord& a, const GroupRecord& b) {
    return a.type == b.type && a.group == b.group && a.num_sources == b.num_sources &&
           std::equal(a.source_bytes.begin(), a.source_bytes.end(), b.source_bytes.begin(),
                      b.source_bytes.end());
}

void rebuild_state_report(const MembershipReport& report) {
    std::vector<uint8_t> buf(report.datagram_length + 64);
    ReportBuilder builder(buf, report.family, report.inner_src);
    std::vector<GroupRecord> originals;
    GroupRecord r;
    for (auto it = report.records(); it.next(r);) {
        std::vector<IpAddress> sources;
        for (size_t i = 0; i < r.num_sources; ++i)
            sources.push_back(r.source(i));
        // Aux data is dropped on rebuild, so the rebuilt report is never larger.
        check(builder.add_record(static_cast<RecordType>(r.type), r.group, sources));
        originals.push_back(r);
    }
    const size_t n = builder.finish();
    MembershipReport again;
    check(parse_membership_report(ByteView(buf.data(), n), again) == ParseError::ok);
    check(again.num_records == originals.size() && again.kind == report.kind);
    size_t i = 0;
    for (auto it = again.records(); it.next(r); ++i)
        check(same_record(r, originals[i]));
}

void rebuild_v1v2(const MembershipReport& report) {
    uint8_t buf[128];
    const size_t n = build_v1v2_message(buf, report.kind, report.group, report.inner_src);
    MembershipReport again;
    check(n > 0 && parse_membership_report(ByteView(buf, n), again) == ParseError::ok);
    check(again.kind == report.kind && again.group == report.group);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    MembershipReport report;
    if (parse_membership_report(ByteView(data, size), report) != ParseError::ok) return 0;
    check(report.datagram_length <= size);
    if (report.is_state_report()) {
        rebuild_state_report(report);
    } else {
        rebuild_v1v2(report);
    }
    return 0;
}
