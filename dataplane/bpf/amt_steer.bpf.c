// SPDX-License-Identifier: (GPL-2.0-only OR BSD-3-Clause)
/* XDP steering for AF_XDP mode: the relay's traffic goes to the AF_XDP socket of the receiving
 * queue (DPDK's net_af_xdp), everything else stays with the kernel (ARP, ND, ping, SSH, BGP).
 *
 * Steered (bpf_redirect_map(&xsks_map, rx_queue_index, XDP_PASS)):
 *  - UDP to port 2268 on an address in amt_addresses (relay and discovery addresses), IPv4
 *    with or without options, IPv6 when UDP directly follows the fixed header (the relay's
 *    classifier reads AMT only there; other chains are the kernel's to judge).
 *  - UDP to a multicast group inside amt_groups, except link-local groups (224.0.0.0/24, IPv6
 *    scopes 0-2), which routers never forward. Fragments of such datagrams are steered too:
 *    every fragment carries the protocol and the group, and the relay replicates what it gets;
 *    the kernel, which has not joined the group, could only drop them.
 *  - IGMP membership queries (IPv4 protocol 2, type 0x11) and MLD queries (ICMPv6 130, after a
 *    Hop-by-Hop header as RFC 3810 requires, or without one): the relay is an IGMPv3/MLDv2 host
 *    toward its routers (RFC 4605 proxy) and must answer them. Reports and Done messages of
 *    other hosts are passed: the relay does not use them (its classifier hands them to the
 *    exception path, i.e. the kernel, anyway). Cost of this choice: the kernel no longer sees
 *    queries on this interface, so it does not re-report its own memberships there (see the
 *    README's AF_XDP section).
 * Passed: ARP and IPv6 Neighbor Discovery (the kernel owns the relay's addresses on this
 * interface and answers for them), unicast fragments (AMT messages are never fragmented in
 * practice and the relay does not reassemble), frames tagged with a VLAN the relay does not
 * serve, and everything malformed or truncated (the kernel counts and drops it).
 *
 * With no socket in xsks_map for the queue, bpf_redirect_map returns the fallback XDP_PASS: the
 * packet reaches the kernel and AMT_NO_SOCKET counts it. */
/* Kernel UAPI first: libbpf's helper headers use its types. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "amt_steer.h"

#define AMT_PORT 2268
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_8021Q_ 0x8100
#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HEADERS 4
#define IGMP_MEMBERSHIP_QUERY 0x11
#define MLD_QUERY 130
#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_ICMPV6_ 58

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, struct amt_addr_key);
    __type(value, __u8);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} amt_addresses SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 64);
    __type(key, struct amt_group_key);
    __type(value, __u8);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} amt_groups SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct amt_settings);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} amt_settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, AMT_COUNTER_COUNT);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} amt_counters SEC(".maps");

static __always_inline void count(__u32 index) {
    __u64* c = bpf_map_lookup_elem(&amt_counters, &index);
    if (c) *c += 1;
}

static __always_inline int pass(__u32 reason) {
    count(reason);
    return XDP_PASS;
}

static __always_inline int steer(struct xdp_md* ctx, __u32 reason) {
    count(reason);
    int verdict = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
    if (verdict != XDP_REDIRECT) count(AMT_NO_SOCKET);
    return verdict;
}

static __always_inline int is_relay_address(__u8 family, const __u8* addr, int len) {
    struct amt_addr_key key = {.family = family};
    __builtin_memcpy(key.addr, addr, 4);
    if (len == 16) __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&amt_addresses, &key) != 0;
}

static __always_inline int in_group_range(__u8 family, const __u8* addr, int len) {
    struct amt_group_key key = {.prefixlen = 8 + len * 8, .family = family};
    __builtin_memcpy(key.addr, addr, 4);
    if (len == 16) __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&amt_groups, &key) != 0;
}

static __always_inline int handle_ipv4(struct xdp_md* ctx, void* l3, void* data_end) {
    __u8* ip = l3;
    if ((void*)(ip + 20) > data_end) return pass(AMT_PASSED_MALFORMED);
    const __u32 ihl = (__u32)(ip[0] & 0x0f) * 4;
    if ((ip[0] >> 4) != 4 || ihl < 20) return pass(AMT_PASSED_MALFORMED);
    const __u8 proto = ip[9];
    const __u16 frag = ((__u16)ip[6] << 8 | ip[7]) & 0x3fff; /* MF and offset */
    const __u8* dst = ip + 16;
    __u8* l4 = ip + ihl;
    /* Options are inside ihl: the whole header must be there before anything after it. */
    if ((void*)l4 > data_end) return pass(AMT_PASSED_MALFORMED);

    if ((dst[0] & 0xf0) == 0xe0) {
        const int link_local = dst[0] == 224 && dst[1] == 0 && dst[2] == 0;
        if (proto == IPPROTO_IGMP) {
            if (frag) return pass(AMT_PASSED_FRAGMENT);
            if ((void*)(l4 + 1) > data_end) return pass(AMT_PASSED_MALFORMED);
            if (l4[0] == IGMP_MEMBERSHIP_QUERY) return steer(ctx, AMT_STEERED_IGMP_MLD);
            return pass(AMT_PASSED);
        }
        if (proto != IPPROTO_UDP || link_local || !in_group_range(AMT_FAMILY_V4, dst, 4))
            return pass(AMT_PASSED);
        /* A non-first fragment has no UDP header; a first one must carry all 8 octets. */
        if ((frag & 0x1fff) == 0 && (void*)(l4 + 8) > data_end) return pass(AMT_PASSED_MALFORMED);
        return steer(ctx, AMT_STEERED_MULTICAST);
    }
    if (proto != IPPROTO_UDP || !is_relay_address(AMT_FAMILY_V4, dst, 4)) return pass(AMT_PASSED);
    if (frag) return pass(AMT_PASSED_FRAGMENT);
    if ((void*)(l4 + 8) > data_end) return pass(AMT_PASSED_MALFORMED);
    if (((__u16)l4[2] << 8 | l4[3]) != AMT_PORT) return pass(AMT_PASSED);
    return steer(ctx, AMT_STEERED_AMT);
}

static __always_inline int handle_ipv6(struct xdp_md* ctx, void* l3, void* data_end) {
    __u8* ip = l3;
    if ((void*)(ip + 40) > data_end) return pass(AMT_PASSED_MALFORMED);
    if ((ip[0] >> 4) != 6) return pass(AMT_PASSED_MALFORMED);
    const __u8* dst = ip + 24;
    __u8 next = ip[6];
    __u8* l4 = ip + 40;

    if (dst[0] != 0xff) {
        /* AMT only when UDP follows the fixed header directly (see the top of this file). */
        if (next != IPPROTO_UDP || !is_relay_address(AMT_FAMILY_V6, dst, 16))
            return pass(next == IPPROTO_FRAGMENT_ ? AMT_PASSED_FRAGMENT : AMT_PASSED);
        if ((void*)(l4 + 8) > data_end) return pass(AMT_PASSED_MALFORMED);
        if (((__u16)l4[2] << 8 | l4[3]) != AMT_PORT) return pass(AMT_PASSED);
        return steer(ctx, AMT_STEERED_AMT);
    }

    /* Multicast: walk a bounded chain of extension headers to the upper layer. */
    int first_fragment = 1;
#pragma unroll
    for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
        if (next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ || next == IPPROTO_DSTOPTS_) {
            if ((void*)(l4 + 2) > data_end) return pass(AMT_PASSED_MALFORMED);
            const __u32 len = ((__u32)l4[1] + 1) * 8;
            next = l4[0];
            l4 += len;
        } else if (next == IPPROTO_FRAGMENT_) {
            if ((void*)(l4 + 8) > data_end) return pass(AMT_PASSED_MALFORMED);
            next = l4[0];
            if ((((__u16)l4[2] << 8 | l4[3]) & 0xfff8) != 0) first_fragment = 0;
            l4 += 8;
        } else {
            break;
        }
    }
    if (next == IPPROTO_HOPOPTS_ || next == IPPROTO_ROUTING_ || next == IPPROTO_DSTOPTS_ ||
        next == IPPROTO_FRAGMENT_) {
        return pass(AMT_PASSED); /* a longer chain than any sender of ours builds */
    }
    if (next == IPPROTO_ICMPV6_) {
        if (!first_fragment) return pass(AMT_PASSED_FRAGMENT);
        if ((void*)(l4 + 1) > data_end) return pass(AMT_PASSED_MALFORMED);
        if (l4[0] == MLD_QUERY) return steer(ctx, AMT_STEERED_IGMP_MLD);
        return pass(AMT_PASSED);
    }
    /* Scopes 0-2 (reserved, interface- and link-local) are never routed. */
    if (next != IPPROTO_UDP || (dst[1] & 0x0f) <= 2 || !in_group_range(AMT_FAMILY_V6, dst, 16))
        return pass(AMT_PASSED);
    if (first_fragment && (void*)(l4 + 8) > data_end) return pass(AMT_PASSED_MALFORMED);
    return steer(ctx, AMT_STEERED_MULTICAST);
}

SEC("xdp")
int amt_steer_xdp(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) return pass(AMT_PASSED_MALFORMED);
    __u16 proto = eth->h_proto;
    void* l3 = eth + 1;

    /* Up to two tags (802.1ad outer, 802.1Q inner). */
    __u16 vlan = 0;
    int tags = 0;
#pragma unroll
    for (int i = 0; i < MAX_VLAN_TAGS; i++) {
        if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_)) break;
        __u8* tag = l3;
        if ((void*)(tag + 4) > data_end) return pass(AMT_PASSED_MALFORMED);
        vlan = ((__u16)(tag[0] & 0x0f) << 8) | tag[1];
        proto = *(__u16*)(tag + 2);
        l3 = tag + 4;
        tags++;
    }
    if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_))
        return pass(AMT_PASSED_OTHER_VLAN); /* a third tag: not ours */
    __u32 zero = 0;
    const struct amt_settings* settings = bpf_map_lookup_elem(&amt_settings, &zero);
    const __u16 served = settings ? settings->vlan_id : 0;
    if ((tags == 0 && served != 0) || (tags != 0 && vlan != served))
        return pass(AMT_PASSED_OTHER_VLAN);

    if (proto == bpf_htons(ETH_P_IP)) return handle_ipv4(ctx, l3, data_end);
    if (proto == bpf_htons(ETH_P_IPV6)) return handle_ipv6(ctx, l3, data_end);
    return pass(AMT_PASSED); /* ARP, LLDP, ... */
}

char _license[] SEC("license") = "Dual BSD/GPL";
