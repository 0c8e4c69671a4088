// The immutable per-flow list of tunnels the workers replicate to: one precomputed outer header
// (Ethernet + IPv4/IPv6 + UDP + the 2-octet AMT Data header) per gateway, plus the partial
// checksums that let a worker finish each header with a few additions (no per-replica sum over
// the packet). Built by the control thread, read by workers under RCU, freed after a grace period.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/amt_messages.hpp"
#include "common/ip_address.hpp"
#include "common/packet_headers.hpp"

namespace amt {

inline constexpr size_t max_outer_header_size =
    ethernet_header_size + ipv6_header_size + udp_header_size + data_header_size;  // 64

struct TunnelHeader {
    // Template with zero lengths, TOS and checksums; length fields are patched per packet.
    uint8_t bytes[max_outer_header_size];
    uint8_t size;  // 44 (IPv4 outer) or 64 (IPv6 outer)
    Family family;
    uint16_t pmtu;          // path MTU toward this gateway
    uint32_t ip_sum_base;   // IPv4: sum of the header template (TOS, length, checksum zero)
    uint32_t udp_sum_base;  // pseudo-header + UDP header + AMT header, lengths zero
    uint32_t endpoint_id;   // the engine's EndpointId (for counters and removal)

    // The gateway's address (control thread: where the header's destination MAC comes from).
    IpAddress destination() const {
        const uint8_t* ip = bytes + ethernet_header_size;
        return family == Family::ipv4 ? IpAddress::v4_from_bytes(ip + 16)
                                      : IpAddress::v6_from_bytes(ip + 24);
    }
    // A header whose next hop is not resolved yet carries the zero MAC: it is never published.
    bool resolved() const {
        return std::any_of(bytes, bytes + 6, [](uint8_t b) { return b != 0; });
    }

    // Where the encapsulated packet may be at most this long (TMTU, checklist §2.10).
    uint16_t tunnel_mtu() const {
        const size_t overhead = size - ethernet_header_size;
        return static_cast<uint16_t>(pmtu > overhead ? pmtu - overhead : 0);
    }
};

// Builds the template for one tunnel: Data from `relay` to `gateway`, sent from `src_mac` to
// `next_hop_mac` with outer TTL/hop limit `ttl`.
TunnelHeader make_tunnel_header(const UdpEndpoint& relay, const UdpEndpoint& gateway,
                                const MacAddress& src_mac, const MacAddress& next_hop_mac,
                                uint8_t ttl, uint16_t pmtu, uint32_t endpoint_id);

// Writes the final outer header for an inner packet of `inner_length` octets with one's-complement
// sum `inner_sum` and traffic class `tos` into `out` (size() octets). `udp_checksum` false sends
// zero over IPv4 (never over IPv6).
void finish_tunnel_header(const TunnelHeader& t, uint8_t* out, uint16_t inner_length,
                          uint32_t inner_sum, uint8_t tos, bool udp_checksum);

// A run of tunnels in one allocation. A published set is an array of chunk pointers: a big flow's
// chunks are shared between consecutive sets, so a membership change copies one or two chunks
// and the pointer array instead of the whole set (issue 17). Chunks are written only by the
// control thread, and only while no published set holds them.
struct GatewayChunk {
    static constexpr uint32_t capacity_max = 64;  // tunnels (5 KB): a shared chunk's size

    uint32_t count = 0;
    uint32_t capacity = 0;
    uint32_t born = 0;                   // owner's publish generation when made (copy-on-write)
    uint16_t min_tunnel_mtu = 0xffff;    // of count tunnels
    GatewayChunk* next_owned = nullptr;  // a set's list of chunks it frees (control thread)
    // The tunnels follow the header in the same allocation.
    TunnelHeader* tunnels() { return reinterpret_cast<TunnelHeader*>(this + 1); }
    const TunnelHeader* tunnels() const { return reinterpret_cast<const TunnelHeader*>(this + 1); }

    static GatewayChunk* allocate(uint32_t capacity);
    static void free(GatewayChunk* chunk);
    void update_min_mtu();
};

class GatewaySet {
  public:
    // A set that owns a flat copy of `tunnels` (one chunk in the same allocation).
    // `withheld`: the flow's tunnels left out because their next hop is unresolved (the workers
    // count their replicas as neighbor_unresolved).
    static std::unique_ptr<GatewaySet, void (*)(GatewaySet*)> create(
        std::span<const TunnelHeader> tunnels, uint32_t withheld = 0);
    // A set over chunks it does not own (a GatewayList's, which keeps them until this set is
    // retired: see GatewayList::retire_chunk).
    static std::unique_ptr<GatewaySet, void (*)(GatewaySet*)> share(
        std::span<GatewayChunk* const> chunks, uint32_t count, uint16_t min_tunnel_mtu,
        uint32_t withheld = 0);
    // Frees the set, its own chunk and the chunks handed to it with own().
    static void destroy(GatewaySet* set);

    uint32_t size() const { return count_; }
    uint32_t withheld() const { return withheld_; }
    // The smallest tunnel MTU of the set: a packet up to this long fits every tunnel.
    uint16_t min_tunnel_mtu() const { return min_tunnel_mtu_; }
    uint32_t chunk_count() const { return chunk_count_; }
    const GatewayChunk& chunk(uint32_t c) const { return *chunks()[c]; }
    // Calls fn(const TunnelHeader* run, uint32_t n) for each chunk, prefetching the next one.
    template <typename Fn>
    void for_each_run(Fn&& fn) const {
        for (uint32_t c = 0; c < chunk_count_; ++c) {
            const GatewayChunk* const* chunks = this->chunks();
            if (c + 1 < chunk_count_) __builtin_prefetch(chunks[c + 1]->tunnels());
            fn(chunks[c]->tunnels(), chunks[c]->count);
        }
    }
    // Control thread, O(chunks): tunnel i (tests and tools, not the packet path).
    const TunnelHeader& operator[](size_t i) const;
    // Control thread: `chunk` is freed with this set, after its grace period.
    void own(GatewayChunk* chunk);
    // Octets held by this set alone (header, pointer array, own chunk): the memory figure.
    size_t own_bytes() const;
    bool shares_chunks() const { return shares_chunks_; }
    // The flow's FlowCounters slot (0xffffffff: not counted). Set before the set is published.
    uint32_t counter_slot() const { return counter_slot_; }
    void set_counter_slot(uint32_t slot) { counter_slot_ = slot; }

  private:
    GatewaySet() = default;
    static GatewaySet* allocate(uint32_t chunk_count, size_t extra);
    uint32_t count_ = 0;
    uint32_t withheld_ = 0;
    uint16_t min_tunnel_mtu_ = 0xffff;
    bool shares_chunks_ = false;
    uint32_t counter_slot_ = 0xffffffff;
    uint32_t chunk_count_ = 0;
    GatewayChunk* owned_ = nullptr;  // freed with the set
    // The chunk pointers follow the header in the same allocation.
    GatewayChunk** chunks() { return reinterpret_cast<GatewayChunk**>(this + 1); }
    const GatewayChunk* const* chunks() const {
        return reinterpret_cast<const GatewayChunk* const*>(this + 1);
    }
};

using GatewaySetPtr = std::unique_ptr<GatewaySet, void (*)(GatewaySet*)>;

// The control thread's member list of one flow, kept in GatewayChunks of capacity_max tunnels
// (all full but the last, which grows like a vector: a one-member flow stays small). Removal
// moves the last tunnel into the hole, so the list is always compact and tunnel i is in chunk
// i / capacity_max. Chunks published in a set are copied before they are written.
class GatewayList {
  public:
    GatewayList() = default;
    GatewayList(GatewayList&& other) noexcept;
    GatewayList& operator=(GatewayList&& other) noexcept;
    ~GatewayList();

    uint32_t size() const { return size_; }
    const TunnelHeader& operator[](uint32_t i) const {
        return chunks_[i / GatewayChunk::capacity_max]->tunnels()[i % GatewayChunk::capacity_max];
    }
    void push_back(const TunnelHeader& t);
    // Moves the last tunnel to i and drops the last place.
    void swap_remove(uint32_t i);
    // Tunnel i for writing (copies its chunk if a published set holds it): its destination MAC,
    // not its MTU (the chunk's smallest MTU is not recomputed).
    TunnelHeader& writable(uint32_t i);
    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (uint32_t i = 0; i < size_; ++i)
            fn((*this)[i]);
    }

    // The set to publish: a flat copy when the list fits one chunk (small flows: one allocation,
    // as fast to walk as before), else a set sharing the list's chunks.
    GatewaySetPtr make_set(uint32_t withheld = 0) const;
    // `set` (made by make_set) is now the flow's published set: chunks replaced from now on are
    // freed with it, once workers are done with it.
    void published(GatewaySet* set);
    // The flow goes: its chunks are freed with its published set (which the caller removes
    // from the table), or now if it has none.
    void release();
    size_t chunk_count() const { return chunks_.size(); }
    // Tunnels the chunks have room for (memory: a churned flow shrinks back).
    size_t capacity() const;

  private:
    GatewayChunk* writable_chunk(size_t c);
    GatewayChunk* replace_chunk(size_t c, uint32_t capacity);
    void retire_chunk(GatewayChunk* chunk);
    void refresh(size_t c);

    std::vector<GatewayChunk*> chunks_;
    std::vector<uint16_t> mins_;  // each chunk's min_tunnel_mtu (a publish reads no chunk)
    uint32_t size_ = 0;
    uint32_t generation_ = 1;          // chunks born before it may be in a published set
    GatewaySet* published_ = nullptr;  // the set replaced chunks are freed with
};

}  // namespace amt
