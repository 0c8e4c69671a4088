# The system-test and demo topology (../shared/design/test-topology.md):
#
#   [src] 10.0.0.2 ──── 10.0.0.1 [rtr: FRR pimd, IGMPv3/SSM] 10.0.1.1 ──── u0 [relay] d0 ──── 10.0.2.1 [nat] ─┬─ 192.168.101.2 [gw1]
#                                                                 10.0.1.2 (upstream)  10.0.2.2 (relay)          └─ 192.168.102.2 [gw2]
#
# The relay is amtrelayd on two DPDK af_packet ports (u0 upstream, d0 downstream); the kernel
# has no address on them. The NAT masquerades both gateways behind 10.0.2.1. Source this after
# lib.sh; build_topology starts everything but the stream and the gateways.

SOURCE_IP=10.0.0.2
RELAY_IP=10.0.2.2
GROUP=232.1.1.1

start_frr() {
    local dir="$WORK/frr"
    mkdir -p "$dir"
    cat >"$dir/zebra.conf" <<C
hostname rtr
C
    cat >"$dir/pimd.conf" <<C
hostname rtr
interface r-src
 ip pim
interface r-rel
 ip pim
 ip igmp
 ip igmp version 3
 ip igmp query-interval 10
 ip igmp query-max-response-time 20
 ip igmp last-member-query-interval 10
 ip igmp last-member-query-count 2
C
    chown -R frr:frr "$dir"
    in_ns rtr /usr/lib/frr/zebra -d -z "$dir/zserv.api" --vty_socket "$dir" -P 0 \
        -f "$dir/zebra.conf" -i "$dir/zebra.pid" >"$WORK/zebra.log" 2>&1
    wait_for 10 "zebra's zserv.api" test -S "$dir/zserv.api"
    in_ns rtr /usr/lib/frr/pimd -d -z "$dir/zserv.api" --vty_socket "$dir" -P 0 \
        -f "$dir/pimd.conf" -i "$dir/pimd.pid" >"$WORK/pimd.log" 2>&1
    wait_for 10 "pimd's vty socket" test -S "$dir/pimd.vty"
    PIDS+=("$(cat "$dir/zebra.pid")" "$(cat "$dir/pimd.pid")")
}

vtysh_rtr() { vtysh --vty_socket "$WORK/frr" -c "$1" 2>/dev/null; }

start_relay() {
    cat >"$WORK/relay.toml" <<T
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "512", "--no-shconf", "--no-pci",
        "--file-prefix", "${NS_PREFIX}",
        "--vdev", "net_af_packet0,iface=u0,qpairs=2",
        "--vdev", "net_af_packet1,iface=d0,qpairs=2",
        "--log-level", "*:error"]
[ports]
upstream = "net_af_packet0"
downstream = "net_af_packet1"
[relay]
addresses = ["${RELAY_IP}"]
membership_timeout = ${RELAY_TIMEOUT:-270}
query_interval = ${RELAY_QI:-125}
[downstream]
next_hop = "10.0.2.1"
[upstream]
addresses = ["10.0.1.2"]
[dataplane]
packet_mbufs = 8191
header_mbufs = 8191
flow_table_size = 4096
[log]
drop_summary_interval = 5
T
    spawn relay relay "$AMTRELAYD" --config "$WORK/relay.toml"
    RELAY_PID=$LAST_PID
    wait_for 20 "amtrelayd running" grep -q "relay running" "$WORK/relay.log"
}

build_topology() {
    make_ns src rtr relay nat gw1 gw2
    link_ns src s0 rtr r-src
    link_ns rtr r-rel relay u0
    link_ns relay d0 nat n-rel
    link_ns nat n-gw1 gw1 g0
    link_ns nat n-gw2 gw2 g0
    in_ns src ip addr add 10.0.0.2/24 dev s0
    in_ns src ip route add default via 10.0.0.1
    in_ns rtr ip addr add 10.0.0.1/24 dev r-src
    in_ns rtr ip addr add 10.0.1.1/24 dev r-rel
    in_ns rtr ip route add 10.0.2.0/24 via 10.0.1.2
    in_ns rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    in_ns relay sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns nat ip addr add 10.0.2.1/24 dev n-rel
    in_ns nat ip addr add 192.168.101.1/24 dev n-gw1
    in_ns nat ip addr add 192.168.102.1/24 dev n-gw2
    in_ns nat sysctl -qw net.ipv4.ip_forward=1
    in_ns nat nft -f - <<N
table ip nat {
    chain postrouting {
        type nat hook postrouting priority 100;
        oifname "n-rel" masquerade
    }
}
N
    for g in 1 2; do
        in_ns gw$g ip addr add 192.168.10$g.2/24 dev g0
        in_ns gw$g ip route add default via 192.168.10$g.1
    done
    start_frr
    start_relay
}

# Streams MPEG-TS test video from the source for SECONDS (in the background).
start_video() {
    local seconds=$1
    spawn src ffmpeg ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
        -i testsrc=size=320x240:rate=25 -f lavfi -i sine -c:v mpeg2video -b:v 1M -c:a mp2 \
        -f mpegts -flush_packets 0 -t "$seconds" \
        "udp://${GROUP}:5000?pkt_size=1316&ttl=8"
}
