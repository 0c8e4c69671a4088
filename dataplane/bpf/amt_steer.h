/* Layout shared by the XDP steering program (amt_steer.bpf.c) and its loader
 * (dataplane/xdp_steering.cpp): map names, keys, values and counter indices. Plain C with
 * <linux/types.h> so that both clang -target bpf and the C++ build read the same definitions. */
#ifndef AMT_STEER_H
#define AMT_STEER_H

#include <linux/types.h>

/* The kernel names a program after its function, truncated to 15 characters; the loader
 * recognises a program left by an earlier run by this name. */
#define AMT_STEER_PROG_NAME "amt_steer_xdp"

/* Map names. net_af_xdp looks up "xsks_map" by name and inserts its sockets, key = queue. The
 * others are pinned by name under the bpffs root (/sys/fs/bpf) so that the PMD's copy of the
 * program, loaded through xdp_prog=, shares the maps the relay created and filled. */
#define AMT_MAP_ADDRESSES "amt_addresses"
#define AMT_MAP_GROUPS "amt_groups"
#define AMT_MAP_SETTINGS "amt_settings"
#define AMT_MAP_COUNTERS "amt_counters"

#define AMT_FAMILY_V4 4
#define AMT_FAMILY_V6 6

/* amt_addresses (hash): the relay's unicast and discovery (anycast) addresses. IPv4 uses the
 * first 4 octets of addr, the rest is zero. Value: 1. */
struct amt_addr_key {
    __u8 family;
    __u8 pad[3];
    __u8 addr[16];
};

/* amt_groups (LPM trie): multicast ranges steered to the relay. The family octet is part of
 * the prefix, so prefixlen = 8 + the group prefix length. Value: 1. */
struct amt_group_key {
    __u32 prefixlen;
    __u8 family;
    __u8 addr[16];
    __u8 pad[3];
};

/* amt_settings (array, one entry). */
struct amt_settings {
    /* VLAN the relay's port serves: frames whose innermost tag carries this ID are classified,
     * other tagged frames go to the kernel. 0: untagged frames only (the dataplane's ports are
     * untagged today). */
    __u16 vlan_id;
    __u16 pad;
};

/* amt_counters (per-CPU array of __u64), summed by XdpSteering::counters(). */
enum amt_counter {
    AMT_STEERED_AMT = 0,   /* UDP to port 2268 on a relay or discovery address */
    AMT_STEERED_MULTICAST, /* UDP to a group in amt_groups (fragments included) */
    AMT_STEERED_IGMP_MLD,  /* IGMP and MLD queries (the relay's upstream proxy answers) */
    AMT_PASSED,            /* everything else, to the kernel */
    AMT_PASSED_MALFORMED,  /* truncated or invalid headers, to the kernel (which drops) */
    AMT_PASSED_FRAGMENT,   /* unicast fragments: the relay does not reassemble */
    AMT_PASSED_OTHER_VLAN, /* tagged with a VLAN the relay does not serve */
    AMT_NO_SOCKET,         /* steered, but no AF_XDP socket on that queue: passed */
    AMT_COUNTER_COUNT
};

#endif
