#include "gateway/driad.hpp"

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cstdio>

namespace amt {

std::string reverse_dns_name(const IpAddress& source) {
    std::string name;
    const ByteView w = source.wire();
    char buf[8];
    if (source.is_v4()) {
        for (size_t i = 4; i-- > 0;) {
            std::snprintf(buf, sizeof(buf), "%u.", unsigned{w[i]});
            name += buf;
        }
        return name + "in-addr.arpa";
    }
    static const char* hex = "0123456789abcdef";
    for (size_t i = 16; i-- > 0;) {
        name += hex[w[i] & 0x0f];
        name += '.';
        name += hex[w[i] >> 4];
        name += '.';
    }
    return name + "ip6.arpa";
}

std::optional<AmtRelayRecord> parse_amtrelay_rdata(ByteView rdata) {
    if (rdata.size() < 2) return std::nullopt;
    AmtRelayRecord r;
    r.precedence = rdata[0];
    r.discovery_optional = rdata[1] & 0x80;
    r.type = rdata[1] & 0x7f;
    const ByteView relay = rdata.subspan(2);
    switch (r.type) {
        case 0:
            if (!relay.empty()) return std::nullopt;
            return r;
        case 1:
            if (relay.size() != 4) return std::nullopt;
            r.address = IpAddress::v4_from_bytes(relay.data());
            return r;
        case 2:
            if (relay.size() != 16) return std::nullopt;
            r.address = IpAddress::v6_from_bytes(relay.data());
            return r;
        case 3: {
            // Uncompressed wire-format name: length-prefixed labels ending with the root.
            size_t i = 0;
            while (i < relay.size()) {
                const uint8_t len = relay[i++];
                if (len == 0) return i == relay.size() ? std::optional(r) : std::nullopt;
                if (len > 63 || i + len > relay.size()) return std::nullopt;  // incl. compression
                if (!r.name.empty()) r.name += '.';
                r.name.append(reinterpret_cast<const char*>(relay.data() + i), len);
                i += len;
            }
            return std::nullopt;
        }
        default:
            return std::nullopt;  // undefined types SHOULD NOT be used (RFC 8777 §4.2.3)
    }
}

namespace {
// Skips a possibly compressed name in a DNS message; returns the offset after it or 0.
size_t skip_name(ByteView m, size_t off) {
    while (off < m.size()) {
        const uint8_t len = m[off];
        if ((len & 0xc0) == 0xc0) return off + 2 <= m.size() ? off + 2 : 0;
        if (len == 0) return off + 1;
        off += 1 + len;
    }
    return 0;
}
}  // namespace

std::vector<AmtRelayRecord> parse_amtrelay_answer(ByteView m) {
    std::vector<AmtRelayRecord> out;
    if (m.size() < 12) return out;
    const size_t questions = load_be16(m.data() + 4);
    const size_t answers = load_be16(m.data() + 6);
    size_t off = 12;
    for (size_t i = 0; i < questions && off != 0; ++i) {
        off = skip_name(m, off);
        if (off != 0) off += 4;
    }
    for (size_t i = 0; i < answers && off != 0 && off < m.size(); ++i) {
        off = skip_name(m, off);
        if (off == 0 || off + 10 > m.size()) break;
        const uint16_t type = load_be16(m.data() + off);
        const size_t rdlen = load_be16(m.data() + off + 8);
        off += 10;
        if (off + rdlen > m.size()) break;
        if (type == dns_type_amtrelay) {
            if (auto r = parse_amtrelay_rdata(m.subspan(off, rdlen))) out.push_back(*r);
        }
        off += rdlen;
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.precedence < b.precedence; });
    return out;
}

std::vector<AmtRelayRecord> lookup_amtrelay(const IpAddress& source) {
    uint8_t answer[4096];
    const std::string name = reverse_dns_name(source);
    const int n = res_query(name.c_str(), ns_c_in, dns_type_amtrelay, answer, sizeof(answer));
    if (n <= 0) return {};
    return parse_amtrelay_answer(ByteView(answer, static_cast<size_t>(n)));
}

}  // namespace amt
