#include "dataplane/gateway_set.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <utility>

#include "common/checksum.hpp"

namespace amt {

TunnelHeader make_tunnel_header(const UdpEndpoint& relay, const UdpEndpoint& gateway,
                                const MacAddress& src_mac, const MacAddress& next_hop_mac,
                                uint8_t ttl, uint16_t pmtu, uint32_t endpoint_id) {
    TunnelHeader t{};
    t.family = relay.ip.family();
    t.pmtu = pmtu;
    t.endpoint_id = endpoint_id;
    const uint16_t ethertype = t.family == Family::ipv4 ? ethertype_ipv4 : ethertype_ipv6;
    size_t off = build_ethernet(t.bytes, next_hop_mac, src_mac, ethertype);
    // Zero payload: lengths, TOS and checksums are patched per packet. DF is always set: an inner
    // IPv4 DF=0 packet that does not fit is fragmented before encapsulation instead (§2.10), and
    // the ID of an atomic datagram carries no meaning (RFC 6864), so it stays 0.
    OuterIpFields fields{
        .tos = 0, .ttl = ttl, .ipv4_id = 0, .dont_fragment = true, .udp_checksum = false};
    const size_t ip_udp = build_ip_udp_headers(MutByteView(t.bytes + off, sizeof(t.bytes) - off),
                                               relay, gateway, 0, 0, fields);
    const size_t ip_size = ip_header_size(t.family);
    uint8_t* ip = t.bytes + off;
    uint8_t* udp = ip + ip_size;
    // Blank what varies per packet so that the sums below cover only the constant part.
    if (t.family == Family::ipv4) {
        store_be16(ip + 2, 0);   // total length
        store_be16(ip + 10, 0);  // header checksum
        t.ip_sum_base = checksum_add(ByteView(ip, ip_size));
    } else {
        store_be16(ip + 4, 0);  // payload length
    }
    store_be16(udp + 4, 0);  // UDP length
    store_be16(udp + 6, 0);  // UDP checksum
    off += ip_udp;
    build_multicast_data_header(MutByteView(t.bytes + off, 2));
    off += data_header_size;
    t.size = static_cast<uint8_t>(off);
    // Pseudo-header without its length, the UDP ports, and the AMT header; lengths added later.
    uint32_t sum = pseudo_header_sum(relay.ip, gateway.ip, ip_proto_udp, 0);
    sum = checksum_add(ByteView(udp, udp_header_size + data_header_size), sum);
    t.udp_sum_base = sum;
    return t;
}

void finish_tunnel_header(const TunnelHeader& t, uint8_t* out, uint16_t inner_length,
                          uint32_t inner_sum, uint8_t tos, bool udp_checksum) {
    std::memcpy(out, t.bytes, t.size);
    uint8_t* ip = out + ethernet_header_size;
    const uint16_t udp_length =
        static_cast<uint16_t>(udp_header_size + data_header_size + inner_length);
    uint8_t* udp;
    if (t.family == Family::ipv4) {
        const uint16_t total = static_cast<uint16_t>(ipv4_header_size + udp_length);
        ip[1] = tos;
        store_be16(ip + 2, total);
        store_be16(ip + 10, checksum_finish(t.ip_sum_base + tos + total));
        udp = ip + ipv4_header_size;
    } else {
        ip[0] = static_cast<uint8_t>(0x60 | (tos >> 4));
        ip[1] = static_cast<uint8_t>((tos << 4) | (ip[1] & 0x0f));
        store_be16(ip + 4, udp_length);
        udp = ip + ipv6_header_size;
        udp_checksum = true;  // RFC 8200 §8.1
    }
    store_be16(udp + 4, udp_length);
    if (udp_checksum) {
        // The length appears twice: in the pseudo-header and in the UDP header.
        const uint32_t sum = t.udp_sum_base + 2u * udp_length + checksum_add({}, inner_sum);
        store_be16(udp + 6, udp_checksum_field(checksum_finish(sum)));
    }
}

namespace {

void* allocate_lines(size_t bytes) {
    void* mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (mem == nullptr) throw std::bad_alloc();
    return mem;
}

}  // namespace

GatewayChunk* GatewayChunk::allocate(uint32_t capacity) {
    auto* chunk =
        new (allocate_lines(sizeof(GatewayChunk) + capacity * sizeof(TunnelHeader))) GatewayChunk();
    chunk->capacity = capacity;
    return chunk;
}

void GatewayChunk::free(GatewayChunk* chunk) {
    chunk->~GatewayChunk();
    std::free(chunk);
}

void GatewayChunk::update_min_mtu() {
    min_tunnel_mtu = 0xffff;
    for (uint32_t i = 0; i < count; ++i)
        min_tunnel_mtu = std::min(min_tunnel_mtu, tunnels()[i].tunnel_mtu());
}

GatewaySet* GatewaySet::allocate(uint32_t chunk_count, size_t extra) {
    const size_t bytes = sizeof(GatewaySet) + chunk_count * sizeof(GatewayChunk*) + extra;
    auto* set = new (allocate_lines(bytes)) GatewaySet();
    set->chunk_count_ = chunk_count;
    return set;
}

GatewaySetPtr GatewaySet::create(std::span<const TunnelHeader> tunnels, uint32_t withheld) {
    const auto n = static_cast<uint32_t>(tunnels.size());
    GatewaySet* set = allocate(1, sizeof(GatewayChunk) + n * sizeof(TunnelHeader));
    auto* chunk = new (set->chunks() + 1) GatewayChunk();
    chunk->count = chunk->capacity = n;
    std::copy(tunnels.begin(), tunnels.end(), chunk->tunnels());
    chunk->update_min_mtu();
    set->chunks()[0] = chunk;
    set->count_ = n;
    set->withheld_ = withheld;
    set->min_tunnel_mtu_ = chunk->min_tunnel_mtu;
    return GatewaySetPtr(set, &GatewaySet::destroy);
}

GatewaySetPtr GatewaySet::share(std::span<GatewayChunk* const> chunks, uint32_t count,
                                uint16_t min_tunnel_mtu, uint32_t withheld) {
    GatewaySet* set = allocate(static_cast<uint32_t>(chunks.size()), 0);
    std::copy(chunks.begin(), chunks.end(), set->chunks());
    set->count_ = count;
    set->withheld_ = withheld;
    set->min_tunnel_mtu_ = min_tunnel_mtu;
    set->shares_chunks_ = true;
    return GatewaySetPtr(set, &GatewaySet::destroy);
}

void GatewaySet::destroy(GatewaySet* set) {
    if (set == nullptr) return;
    for (GatewayChunk* c = set->owned_; c != nullptr;) {
        GatewayChunk* next = c->next_owned;
        GatewayChunk::free(c);
        c = next;
    }
    set->~GatewaySet();
    std::free(set);
}

const TunnelHeader& GatewaySet::operator[](size_t i) const {
    for (uint32_t c = 0;; ++c) {
        if (i < chunks()[c]->count) return chunks()[c]->tunnels()[i];
        i -= chunks()[c]->count;
    }
}

size_t GatewaySet::own_bytes() const {
    size_t bytes = sizeof(GatewaySet) + chunk_count_ * sizeof(GatewayChunk*);
    if (!shares_chunks_) bytes += sizeof(GatewayChunk) + count_ * sizeof(TunnelHeader);
    return (bytes + 63) / 64 * 64;
}

void GatewaySet::own(GatewayChunk* chunk) {
    chunk->next_owned = owned_;
    owned_ = chunk;
}

GatewayList::GatewayList(GatewayList&& other) noexcept
    : chunks_(std::move(other.chunks_)),
      mins_(std::move(other.mins_)),
      size_(std::exchange(other.size_, 0)),
      generation_(other.generation_),
      published_(std::exchange(other.published_, nullptr)) {
    other.chunks_.clear();
    other.mins_.clear();
}

GatewayList& GatewayList::operator=(GatewayList&& other) noexcept {
    if (this != &other) {
        release();
        chunks_ = std::move(other.chunks_);
        mins_ = std::move(other.mins_);
        size_ = std::exchange(other.size_, 0);
        generation_ = other.generation_;
        published_ = std::exchange(other.published_, nullptr);
        other.chunks_.clear();
        other.mins_.clear();
    }
    return *this;
}

GatewayList::~GatewayList() {
    // Shutdown or a flow that was never published: no worker can see these chunks.
    for (GatewayChunk* c : chunks_)
        GatewayChunk::free(c);
}

void GatewayList::retire_chunk(GatewayChunk* chunk) {
    // A chunk made since the last shared publish is in no set; an older one may be in the
    // published set or in sets still retiring (which go before it), so it goes with that set.
    if (chunk->born < generation_ && published_ != nullptr)
        published_->own(chunk);
    else
        GatewayChunk::free(chunk);
}

GatewayChunk* GatewayList::replace_chunk(size_t c, uint32_t capacity) {
    GatewayChunk* old = chunks_[c];
    GatewayChunk* copy = GatewayChunk::allocate(capacity);
    copy->count = old->count;
    copy->min_tunnel_mtu = old->min_tunnel_mtu;
    copy->born = generation_;
    std::copy(old->tunnels(), old->tunnels() + old->count, copy->tunnels());
    retire_chunk(old);
    chunks_[c] = copy;
    return copy;
}

GatewayChunk* GatewayList::writable_chunk(size_t c) {
    GatewayChunk* chunk = chunks_[c];
    return chunk->born == generation_ ? chunk : replace_chunk(c, chunk->capacity);
}

void GatewayList::refresh(size_t c) {
    chunks_[c]->update_min_mtu();
    mins_[c] = chunks_[c]->min_tunnel_mtu;
}

void GatewayList::push_back(const TunnelHeader& t) {
    constexpr uint32_t cap = GatewayChunk::capacity_max;
    GatewayChunk* last = chunks_.empty() ? nullptr : chunks_.back();
    if (last == nullptr || last->count == cap) {
        // A flow's first chunk starts small; further ones are full-size (the flow is big).
        last = GatewayChunk::allocate(last == nullptr ? 4 : cap);
        last->born = generation_;
        chunks_.push_back(last);
        mins_.push_back(0xffff);
    } else if (last->count == last->capacity) {
        last = replace_chunk(chunks_.size() - 1, std::min(cap, last->capacity * 2));
    } else {
        last = writable_chunk(chunks_.size() - 1);
    }
    last->tunnels()[last->count++] = t;
    last->min_tunnel_mtu = std::min(last->min_tunnel_mtu, t.tunnel_mtu());
    mins_.back() = last->min_tunnel_mtu;
    ++size_;
}

TunnelHeader& GatewayList::writable(uint32_t i) {
    constexpr uint32_t cap = GatewayChunk::capacity_max;
    return writable_chunk(i / cap)->tunnels()[i % cap];
}

void GatewayList::swap_remove(uint32_t i) {
    constexpr uint32_t cap = GatewayChunk::capacity_max;
    const uint32_t last = size_ - 1;
    const size_t c = i / cap, lc = last / cap;
    if (i != last) {
        writable(i) = (*this)[last];
        refresh(c);
    }
    --size_;
    if (chunks_[lc]->count == 1) {
        retire_chunk(chunks_[lc]);
        chunks_.pop_back();
        mins_.pop_back();
        return;
    }
    GatewayChunk* tail = chunks_[lc];
    // A lone chunk shrinks with its flow, so a churned small flow is as small as a fresh one.
    if (lc == 0 && tail->capacity > 4 && (tail->count - 1) * 4 <= tail->capacity)
        tail = replace_chunk(0, tail->capacity / 2);
    else
        tail = writable_chunk(lc);
    --tail->count;
    refresh(lc);
}

GatewaySetPtr GatewayList::make_set(uint32_t withheld) const {
    if (chunks_.size() <= 1) {
        if (chunks_.empty()) return GatewaySet::create({}, withheld);
        return GatewaySet::create({chunks_[0]->tunnels(), chunks_[0]->count}, withheld);
    }
    const uint16_t min_mtu = *std::min_element(mins_.begin(), mins_.end());
    return GatewaySet::share(chunks_, size_, min_mtu, withheld);
}

size_t GatewayList::capacity() const {
    size_t n = 0;
    for (const GatewayChunk* c : chunks_)
        n += c->capacity;
    return n;
}

void GatewayList::published(GatewaySet* set) {
    published_ = set;
    // Chunks it shares must be copied before they are written.
    if (set->shares_chunks()) ++generation_;
}

void GatewayList::release() {
    for (GatewayChunk* c : chunks_)
        retire_chunk(c);
    chunks_.clear();
    mins_.clear();
    size_ = 0;
    published_ = nullptr;
}

}  // namespace amt
