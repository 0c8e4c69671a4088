# What the system tests and the demo need from this machine, detected rather than assumed
# (kernels of this machine class differ: test-topology.md). Each probe runs in a throwaway
# network namespace and leaves nothing behind; a missing feature is explained in one sentence
# with the fix. Sourced by lib.sh; the demo calls it before it builds anything.

# Prints the reason this kernel cannot run FRR pimd as a multicast router, or nothing if it can.
router_unavailable_reason() {
    if [ ! -e /proc/net/ip_mr_vif ]; then
        echo "this kernel cannot route IPv4 multicast (no /proc/net/ip_mr_vif: built without CONFIG_IP_MROUTE), so FRR pimd's MRT_INIT fails with 'Protocol not available'"
    elif [ ! -x /usr/lib/frr/pimd ]; then
        echo "FRR pimd is not installed (/usr/lib/frr/pimd; scripts/setup installs the frr package)"
    fi
}

# feature_missing FEATURE: prints why FEATURE is unavailable here, or nothing if it works.
feature_missing() {
    local probe="amtprobe$$" out=""
    case "$1" in
        root)
            [ "$(id -u)" -eq 0 ] || out="it needs root (network namespaces, veth, DPDK vdevs): run it with sudo" ;;
        netns)
            ip netns add "$probe" 2>/dev/null && ip netns del "$probe" ||
                out="this kernel cannot create network namespaces (ip netns add failed: CONFIG_NET_NS)" ;;
        veth)
            ip netns add "$probe" 2>/dev/null || { echo "no network namespaces to probe veth in"; return; }
            ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null ||
                out="this kernel has no veth pairs (ip link add type veth failed: CONFIG_VETH)"
            ip netns del "$probe" ;;
        bridge)
            ip netns add "$probe" 2>/dev/null || { echo "no network namespaces to probe bridges in"; return; }
            ip -n "$probe" link add br0 type bridge 2>/dev/null ||
                out="this kernel has no Linux bridge (ip link add type bridge failed: CONFIG_BRIDGE)"
            ip netns del "$probe" ;;
        bridge_snooping)
            ip netns add "$probe" 2>/dev/null || { echo "no network namespaces to probe bridges in"; return; }
            ip -n "$probe" link add br0 type bridge mcast_snooping 1 mcast_igmp_version 3 \
                mcast_mld_version 2 2>/dev/null ||
                out="this kernel's bridge cannot snoop IGMPv3/MLDv2 (needs CONFIG_BRIDGE_IGMP_SNOOPING and Linux 5.10 or later), so there is no switched upstream"
            ip netns del "$probe" ;;
        nft_nat)
            ip netns add "$probe" 2>/dev/null || { echo "no network namespaces to probe nftables in"; return; }
            printf 'table ip t {\n chain c {\n  type nat hook postrouting priority 100;\n  masquerade\n }\n}\n' |
                ip netns exec "$probe" nft -f - 2>/dev/null ||
                out="nftables cannot masquerade here (nft failed: the kernel needs CONFIG_NF_TABLES and CONFIG_NFT_MASQ, and the nftables package must be installed), so there is no NAT in front of the gateways"
            ip netns del "$probe" ;;
        ipv6)
            [ -e /proc/net/if_inet6 ] || out="this kernel has no IPv6 (no /proc/net/if_inet6: CONFIG_IPV6, or ipv6.disable=1 on its command line)" ;;
        mroute)
            out=$(router_unavailable_reason) ;;
        tun)  # DPDK's net_tap (the relay's exception port) opens /dev/net/tun
            ip netns add "$probe" 2>/dev/null || { echo "no network namespaces to probe taps in"; return; }
            ip -n "$probe" tuntap add dev tap0 mode tap 2>/dev/null ||
                out="this machine has no usable /dev/net/tun (CONFIG_TUN, or a container without the device), so the relay's exception port (net_tap) cannot run"
            ip netns del "$probe" ;;
        af_xdp)  # AF_XDP = 44: the socket family net_af_xdp opens
            python3 -c 'import socket; socket.socket(44, socket.SOCK_RAW).close()' 2>/dev/null ||
                out="this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS), so the relay's AF_XDP mode cannot run" ;;
        *) out="unknown feature '$1' (tests/system/features.sh)" ;;
    esac
    echo "$out"
}

# missing_commands CMD...: prints the commands not on PATH.
missing_commands() {
    local c missing=()
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    echo "${missing[*]}"
}

# Commands the namespace test bed uses (all from scripts/setup's packages).
TEST_BED_COMMANDS=(ip bridge nft ethtool tcpdump tshark ffmpeg ffprobe curl python3)

# need FEATURE...: a test that cannot run here is skipped with the reason (meson: exit 77).
need() {
    local f why
    for f in "$@"; do
        why=$(feature_missing "$f")
        [ -z "$why" ] || skip "$why"
    done
}
