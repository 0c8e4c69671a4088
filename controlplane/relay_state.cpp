#include "controlplane/relay_state.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace amt {

namespace {

constexpr std::array<uint8_t, 8> magic = {'A', 'M', 'T', 'S', 'T', 'A', 'T', 'E'};
constexpr size_t header_size = 32;
// Bounds a crafted file cannot exceed (the engine's own limits are far lower; see EngineConfig).
constexpr uint32_t max_addresses = 256;
constexpr uint32_t max_endpoints = 64'000'000;
constexpr uint16_t max_groups = 4096;
constexpr uint16_t max_sources = 4096;

class Writer {
  public:
    explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
    template <typename T>
    void put(T v) {  // little-endian on the hosts DPDK runs on (x86-64, arm64)
        const size_t at = out_.size();
        out_.resize(at + sizeof v);
        std::memcpy(out_.data() + at, &v, sizeof v);
    }
    void bytes(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void address(const IpAddress& a) {
        put(static_cast<uint8_t>(a.family()));
        bytes(a.wire());
    }
    void endpoint(const UdpEndpoint& e) {
        address(e.ip);
        put(e.port);
    }

  private:
    std::vector<uint8_t>& out_;
};

class Reader {
  public:
    explicit Reader(ByteView in) : in_(in) {}
    bool failed() const { return failed_; }
    const std::string& why() const { return why_; }
    size_t left() const { return in_.size() - at_; }
    bool fail(std::string why) {
        if (!failed_) why_ = std::move(why);
        failed_ = true;
        return false;
    }
    template <typename T>
    T get() {
        T v{};
        if (left() < sizeof v) {
            fail("truncated at octet " + std::to_string(at_));
            return v;
        }
        std::memcpy(&v, in_.data() + at_, sizeof v);
        at_ += sizeof v;
        return v;
    }
    void bytes(uint8_t* to, size_t n) {
        if (left() < n) {
            fail("truncated at octet " + std::to_string(at_));
            return;
        }
        std::memcpy(to, in_.data() + at_, n);
        at_ += n;
    }
    IpAddress address() {
        const auto family = get<uint8_t>();
        std::array<uint8_t, 16> b{};
        if (family == static_cast<uint8_t>(Family::ipv4)) {
            bytes(b.data(), 4);
            return IpAddress::v4_from_bytes(b.data());
        }
        if (family != static_cast<uint8_t>(Family::ipv6)) fail("bad address family");
        bytes(b.data(), 16);
        return IpAddress::v6_from_bytes(b.data());
    }
    UdpEndpoint endpoint() {
        UdpEndpoint e;
        e.ip = address();
        e.port = get<uint16_t>();
        return e;
    }
    Time duration() {
        const auto ns = get<int64_t>();
        if (ns < 0) fail("negative time");
        return Time(ns);
    }

  private:
    ByteView in_;
    size_t at_ = 0;
    bool failed_ = false;
    std::string why_;
};

std::array<uint32_t, 256> crc_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // reflected Castagnoli polynomial
        t[i] = c;
    }
    return t;
}

void encode_group(Writer& w, const GroupMembership& g) {
    w.address(g.group);
    w.put(static_cast<uint8_t>(g.mode));
    w.put(static_cast<uint8_t>(g.older_version_host));
    w.put(static_cast<uint16_t>(g.sources.size()));
    for (const IpAddress& s : g.sources)
        w.address(s);
}

bool decode_group(Reader& r, GroupMembership& g) {
    g.group = r.address();
    const auto mode = r.get<uint8_t>();
    const auto older = r.get<uint8_t>();
    const auto n = r.get<uint16_t>();
    if (r.failed()) return false;
    if (!g.group.is_multicast()) return r.fail("a group that is not multicast");
    if (mode > 1 || older > 1) return r.fail("bad filter mode or flag");
    if (n > max_sources || n > r.left() / 5) return r.fail("source count out of range");
    g.mode = static_cast<FilterMode>(mode);
    g.older_version_host = older != 0;
    g.sources.resize(n);
    for (IpAddress& s : g.sources) {
        s = r.address();
        if (!r.failed() && s.family() != g.group.family())
            return r.fail("a source of the other family");
    }
    if (r.failed()) return false;
    // The engine keeps source lists sorted and unique; a file must not break that invariant.
    if (!std::is_sorted(g.sources.begin(), g.sources.end()) ||
        std::adjacent_find(g.sources.begin(), g.sources.end()) != g.sources.end()) {
        return r.fail("source list not sorted and unique");
    }
    if (g.empty()) return r.fail("an empty membership (INCLUDE{})");
    return true;
}

bool decode_endpoint(Reader& r, SavedEndpoint& e) {
    e.address = r.endpoint();
    e.relay = r.endpoint();
    e.last_nonce = r.get<uint32_t>();
    r.bytes(e.last_mac.data(), e.last_mac.size());
    e.remaining = r.duration();
    const auto n = r.get<uint16_t>();
    if (r.failed()) return false;
    if (n == 0 || n > max_groups || n > r.left() / 9) return r.fail("group count out of range");
    e.groups.resize(n);
    for (GroupMembership& g : e.groups) {
        if (!decode_group(r, g)) return false;
    }
    if (e.groups.size() > 1) {
        std::vector<IpAddress> groups;
        for (const GroupMembership& g : e.groups)
            groups.push_back(g.group);
        std::sort(groups.begin(), groups.end());
        if (std::adjacent_find(groups.begin(), groups.end()) != groups.end())
            return r.fail("a group listed twice");
    }
    return true;
}

}  // namespace

std::string state_fits(const RelayState& state, const std::vector<IpAddress>& relay_addresses,
                       Seconds membership_timeout, int64_t now_unix_ns) {
    const auto list = [](std::vector<IpAddress> v) {
        std::sort(v.begin(), v.end());
        std::string text;
        for (const IpAddress& a : v)
            text += (text.empty() ? "" : ", ") + a.to_string();
        return text;
    };
    if (list(state.relay_addresses) != list(relay_addresses)) {
        return "saved for relay addresses [" + list(state.relay_addresses) +
               "], the configuration has [" + list(relay_addresses) + "] (relay.addresses changed)";
    }
    const int64_t age = now_unix_ns - state.saved_at_unix_ns;
    if (age < 0) return "saved in the future (the clock went back?)";
    if (age > std::chrono::nanoseconds(membership_timeout).count()) {
        return "saved " + std::to_string(age / 1'000'000'000) +
               " s ago, longer than relay.membership_timeout (" +
               std::to_string(membership_timeout.count()) + " s): every tunnel has expired";
    }
    return "";
}

uint32_t crc32c(ByteView data, uint32_t crc) {
    static const std::array<uint32_t, 256> table = crc_table();
    crc = ~crc;
    for (const uint8_t b : data)
        crc = table[(crc ^ b) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

void encode_state(const RelayState& s, std::vector<uint8_t>& out) {
    out.clear();
    out.resize(header_size);  // filled in last, once the payload's size and CRC are known
    Writer w(out);
    w.put(s.saved_at_unix_ns);
    w.put(static_cast<uint32_t>(s.relay_addresses.size()));
    for (const IpAddress& a : s.relay_addresses)
        w.address(a);
    w.bytes(s.secrets.current);
    w.bytes(s.secrets.previous);
    w.put(static_cast<int64_t>(s.secrets.current_age.count()));
    w.put(static_cast<int64_t>(s.secrets.previous_remaining.count()));
    w.put(static_cast<uint32_t>(s.endpoints.size()));
    for (const SavedEndpoint& e : s.endpoints) {
        w.endpoint(e.address);
        w.endpoint(e.relay);
        w.put(e.last_nonce);
        w.bytes(e.last_mac);
        w.put(static_cast<int64_t>(e.remaining.count()));
        w.put(static_cast<uint16_t>(e.groups.size()));
        for (const GroupMembership& g : e.groups)
            encode_group(w, g);
    }
    const uint64_t payload = out.size() - header_size;
    const uint32_t crc = crc32c(ByteView(out).subspan(header_size));
    uint8_t* h = out.data();
    std::memcpy(h, magic.data(), magic.size());
    const uint32_t version = RelayState::version, size = header_size, reserved = 0;
    std::memcpy(h + 8, &version, 4);
    std::memcpy(h + 12, &size, 4);
    std::memcpy(h + 16, &payload, 8);
    std::memcpy(h + 24, &crc, 4);
    std::memcpy(h + 28, &reserved, 4);
}

std::string decode_state(ByteView file, RelayState& s) {
    if (file.size() < header_size)
        return "truncated: " + std::to_string(file.size()) + " octets, shorter than the header";
    if (!std::equal(magic.begin(), magic.end(), file.begin())) return "not a relay state file";
    uint32_t version = 0, size = 0, crc = 0, reserved = 0;
    uint64_t payload = 0;
    std::memcpy(&reserved, file.data() + 28, 4);
    std::memcpy(&version, file.data() + 8, 4);
    std::memcpy(&size, file.data() + 12, 4);
    std::memcpy(&payload, file.data() + 16, 8);
    std::memcpy(&crc, file.data() + 24, 4);
    if (version != RelayState::version) {
        return "version " + std::to_string(version) + ", this relay reads version " +
               std::to_string(RelayState::version);
    }
    if (size != header_size || reserved != 0) return "bad header (size or reserved field)";
    if (payload != file.size() - header_size) {
        return "truncated or padded: the header says " + std::to_string(payload) +
               " payload octets, the file has " + std::to_string(file.size() - header_size);
    }
    const ByteView body = file.subspan(header_size);
    if (crc32c(body) != crc) return "checksum mismatch (corrupt)";

    Reader r(body);
    s = RelayState{};
    s.saved_at_unix_ns = r.get<int64_t>();
    const auto addresses = r.get<uint32_t>();
    if (!r.failed() && addresses > max_addresses) r.fail("address count out of range");
    for (uint32_t i = 0; i < addresses && !r.failed(); ++i)
        s.relay_addresses.push_back(r.address());
    r.bytes(s.secrets.current.data(), s.secrets.current.size());
    r.bytes(s.secrets.previous.data(), s.secrets.previous.size());
    s.secrets.current_age = r.duration();
    s.secrets.previous_remaining = r.duration();
    const auto endpoints = r.get<uint32_t>();
    if (!r.failed() && (endpoints > max_endpoints || endpoints > r.left() / 40))
        r.fail("endpoint count out of range");
    if (!r.failed()) s.endpoints.resize(endpoints);
    for (SavedEndpoint& e : s.endpoints) {
        if (!decode_endpoint(r, e)) break;
    }
    if (!r.failed() && r.left() != 0) r.fail(std::to_string(r.left()) + " octets after the end");
    return r.failed() ? r.why() : "";
}

}  // namespace amt
