// libFuzzer target: every AMT message parser over arbitrary bytes. A message that parses must
// rebuild to bytes that parse to the same fields (round trip), and the encapsulated report of an
// Update goes through the report parser too.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/amt_messages.hpp"
#include "common/igmp_mld.hpp"

using namespace amt;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void round_trip_simple(MessageType type, ByteView msg) {
    uint8_t buf[64];
    switch (type) {
        case MessageType::relay_discovery: {
            Discovery a, b;
            if (parse_discovery(msg, a) != ParseError::ok) return;
            const size_t n = build_discovery(buf, a);
            check(parse_discovery(ByteView(buf, n), b) == ParseError::ok && a.nonce == b.nonce);
            return;
        }
        case MessageType::relay_advertisement: {
            Advertisement a, b;
            if (parse_advertisement(msg, a) != ParseError::ok) return;
            const size_t n = build_advertisement(buf, a);
            check(n == msg.size() && std::memcmp(buf + 4, msg.data() + 4, n - 4) == 0);
            check(parse_advertisement(ByteView(buf, n), b) == ParseError::ok && a.relay == b.relay);
            return;
        }
        case MessageType::request: {
            Request a, b;
            if (parse_request(msg, a) != ParseError::ok) return;
            const size_t n = build_request(buf, a);
            check(parse_request(ByteView(buf, n), b) == ParseError::ok && a.nonce == b.nonce &&
                  a.flags == b.flags);
            return;
        }
        case MessageType::teardown: {
            Teardown a, b;
            if (parse_teardown(msg, a) != ParseError::ok) return;
            const size_t n = build_teardown(buf, a);
            check(parse_teardown(ByteView(buf, n), b) == ParseError::ok && a.mac == b.mac &&
                  a.nonce == b.nonce && a.gateway == b.gateway);
            return;
        }
        default:
            return;
    }
}

void walk_report(ByteView datagram) {
    MembershipReport report;
    if (parse_membership_report(datagram, report) != ParseError::ok) return;
    check(report.datagram_length <= datagram.size());
    GroupRecord record;
    auto it = report.records();
    size_t seen = 0;
    while (it.next(record)) {
        ++seen;
        for (size_t i = 0; i < record.num_sources; ++i)
            (void)check_source_address(record.source(i));
        (void)check_group_address(record.group);
    }
    check(seen == report.num_records);  // the parser validated every record's bounds
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const ByteView msg(data, size);
    MessageType type;
    if (peek_message_type(msg, type) != ParseError::ok) return 0;
    round_trip_simple(type, msg);
    if (type == MessageType::membership_update) {
        MembershipUpdate u;
        if (parse_membership_update(msg, u) == ParseError::ok) walk_report(u.encapsulated);
    } else if (type == MessageType::membership_query) {
        MembershipQuery q;
        GeneralQuery g;
        if (parse_membership_query(msg, q) == ParseError::ok) {
            (void)parse_general_query(q.encapsulated, g);
        }
    } else if (type == MessageType::multicast_data) {
        MulticastData d;
        (void)parse_multicast_data(msg, d);
    }
    return 0;
}
