# The system-test and demo topology (../shared/design/test-topology.md):
#
#   [src] 10.0.0.2 ──── [upstream] ──── u0 [relay] d0 ──── 10.0.2.1 [nat] ─┬─ 192.168.101.2 [gw1]
#                               10.0.1.2 (upstream)  10.0.2.2 (relay)     └─ 192.168.102.2 [gw2]
#
# The upstream (upstream.sh chooses it from what the kernel offers) is either the router rtr
# (FRR pimd, IGMPv3/SSM; 10.0.0.1 toward the source, 10.0.1.1 toward the relay) or the switch sw
# (a bridge with IGMPv3 snooping and a querier at 10.0.1.1; the source is then on the relay's
# link). The relay is amtrelayd on two DPDK af_packet ports (u0 upstream, d0 downstream); the
# kernel has no address on them. The NAT masquerades both gateways behind 10.0.2.1. Source this
# after lib.sh; build_topology starts everything but the stream and the gateways.
source "$(dirname "${BASH_SOURCE[0]}")/upstream.sh"

SOURCE_IP=10.0.0.2
RELAY_IP=10.0.2.2
GROUP=232.1.1.1

# The relay's addresses and knobs come from variables so the IPv4 and IPv6 topologies (and tests
# that need short timers or extra [relay] keys) share one configuration.
RELAY_NEXT_HOP_KEY=next_hop
RELAY_NEXT_HOP=10.0.2.1
RELAY_UPSTREAM_IP=10.0.1.2
RELAY_EXTRA=""

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
workers = ${RELAY_WORKERS:-1}
[relay]
addresses = ["${RELAY_IP}"]
membership_timeout = ${RELAY_TIMEOUT:-270}
query_interval = ${RELAY_QI:-125}
${RELAY_EXTRA}
[downstream]
${RELAY_NEXT_HOP_KEY} = "${RELAY_NEXT_HOP}"
[upstream]
addresses = ["${RELAY_UPSTREAM_IP}"]
[dataplane]
packet_mbufs = 8191
header_mbufs = 8191
flow_table_size = 4096
[log]
drop_summary_interval = 5
[metrics]
listen = "127.0.0.1:9850"
[control]
socket = "${WORK}/control.sock"
[drain]
on_command = "${RELAY_DRAIN_ON:-}"
off_command = "${RELAY_DRAIN_OFF:-}"
${RELAY_SECTIONS:-}
T
    # A restart appends: the log keeps the first run's lines for the failure report.
    ip netns exec "$(ns relay)" "$AMTRELAYD" --config "$WORK/relay.toml" >>"$WORK/relay.log" 2>&1 &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    local runs
    runs=$(grep -c "relay running" "$WORK/relay.log" 2>/dev/null || true)
    wait_for 30 "amtrelayd running" bash -c "[ \$(grep -c 'relay running' '$WORK/relay.log') -gt ${runs:-0} ]"
}

# relay_metric METRIC [LABEL-REGEX]: the sum of the relay's METRIC samples (whose labels match).
relay_metric() {
    in_ns relay curl -sf http://127.0.0.1:9850/metrics |
        awk -v m="$1" -v l="${2:-}" '$1 ~ "^" m "([{]|$)" && (l == "" || $1 ~ l) {s += $2} END {printf "%d", s}'
}

# Stops the relay the way an operator does (SIGTERM: it leaves every group upstream) and waits.
stop_relay() {
    kill -TERM "$RELAY_PID"
    wait_for 20 "amtrelayd exit" bash -c "! kill -0 $RELAY_PID 2>/dev/null"
}

# The NAT namespace: masquerade everything that leaves toward the relay, for one family.
nat_masquerade() {
    local family=$1
    in_ns nat nft -f - <<N
table $family nat {
    chain postrouting {
        type nat hook postrouting priority 100;
        oifname "n-rel" masquerade
    }
}
N
}

build_topology() {
    need nft_nat
    choose_upstream ipv4
    RELAY_REPORT_SOURCE="^${RELAY_UPSTREAM_IP}\$"
    make_ns src "$UPSTREAM_NS" relay nat gw1 gw2
    link_ns src s0 "$UPSTREAM_NS" "$UPSTREAM_SRC_IF"
    link_ns "$UPSTREAM_NS" "$UPSTREAM_IF" relay u0
    link_ns relay d0 nat n-rel
    link_ns nat n-gw1 gw1 g0
    link_ns nat n-gw2 gw2 g0
    in_ns src ip addr add 10.0.0.2/24 dev s0
    if [ "$UPSTREAM" = router ]; then
        in_ns src ip route add default via 10.0.0.1
        in_ns rtr ip addr add 10.0.0.1/24 dev r-src
        in_ns rtr ip addr add 10.0.1.1/24 dev r-rel
        in_ns rtr ip route add 10.0.2.0/24 via 10.0.1.2
        in_ns rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    else
        in_ns src ip route add default dev s0  # multicast goes straight onto the switch
    fi
    in_ns relay sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns nat ip addr add 10.0.2.1/24 dev n-rel
    in_ns nat ip addr add 192.168.101.1/24 dev n-gw1
    in_ns nat ip addr add 192.168.102.1/24 dev n-gw2
    in_ns nat sysctl -qw net.ipv4.ip_forward=1
    nat_masquerade ip
    for g in 1 2; do
        in_ns gw$g ip addr add 192.168.10$g.2/24 dev g0
        in_ns gw$g ip route add default via 192.168.10$g.1
    done
    if [ "$UPSTREAM" = router ]; then start_frr; else start_switch 10.0.1.1/24; fi
    start_relay
}

# Streams MPEG-TS test video from the source for SECONDS (in the background) to GROUP, or to
# VIDEO_GROUP (IPv6: in brackets) when set.
start_video() {
    local seconds=$1
    spawn src ffmpeg ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
        -i testsrc=size=320x240:rate=25 -f lavfi -i sine -c:v mpeg2video -b:v 1M -c:a mp2 \
        -f mpegts -flush_packets 0 -t "$seconds" \
        "udp://${VIDEO_GROUP:-$GROUP}:5000?pkt_size=1316&ttl=8"
}

# The same with H.264/AAC (what browsers play): a keyframe every second so a player starts fast.
start_h264_video() {
    local seconds=$1
    spawn src ffmpeg ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
        -i testsrc=size=320x240:rate=25 -f lavfi -i sine -c:v libx264 -preset ultrafast \
        -tune zerolatency -g 25 -b:v 500k -c:a aac -b:a 64k -f mpegts -flush_packets 0 \
        -t "$seconds" "udp://${VIDEO_GROUP:-$GROUP}:5000?pkt_size=1316&ttl=8"
}

# start_gateway N DURATION [--discover] [amtgw options...]: amtgw in namespace gwN; its status in
# $WORK/gatewayN.log, its stream in $WORK/gwN.ts unless --output is given; pid in LAST_PID. It is
# given the relay's address, or with --discover finds it by Discovery to that address. Without
# --group it joins (SOURCE_IP, GROUP).
start_gateway() {
    local n=$1 duration=$2 target=(--relay "$RELAY_IP")
    shift 2
    if [ "${1:-}" = --discover ]; then
        target=(--discovery "$RELAY_IP")
        shift
    fi
    [[ " $* " == *" --group "* ]] || set -- --source "$SOURCE_IP" --group "$GROUP" "$@"
    [[ " $* " == *" --output "* ]] || set -- --output "$WORK/gw$n.ts" "$@"
    spawn "gw$n" "gateway$n" "$AMTGW" "${target[@]}" --port 5000 --duration "$duration" "$@"
}

# The packet count on a gateway's last status line (0 before the first one).
gateway_packets() {
    local n
    n=$(tr '\r' '\n' <"$WORK/gateway$1.log" | grep -ao "[0-9]* pkts" | tail -n1 | cut -d' ' -f1)
    echo "${n:-0}"
}

# gateway_receives N [ABOVE]: gateway N's count went above ABOVE (default 0).
gateway_receives() { [ "$(gateway_packets "$1")" -gt "${2:-0}" ]; }

# Waits until gateway N has received more than it has now (its stream is flowing).
wait_gateway_flowing() {
    local n=$1 seconds=$2 what=$3 base
    base=$(gateway_packets "$n")
    wait_for "$seconds" "$what" gateway_receives "$n" "$base"
}

# tunnel_data NS IFACE HOST SECONDS: an AMT packet from port 2268 to HOST seen on IFACE within
# SECONDS (tcpdump's own start-up counts against the window: keep it ≥ 2 s on a loaded machine).
# no_tunnel_data: none seen; only timeout's 124 counts, a tcpdump that could not start proves
# nothing either way.
tunnel_capture_status() {
    local n=$1 iface=$2 host=$3 seconds=$4 rc=0
    in_ns "$n" timeout "$seconds" tcpdump -nni "$iface" -c 1 \
        "udp src port 2268 and dst host $host" >/dev/null 2>&1 || rc=$?
    echo "$rc"
}
tunnel_data() { [ "$(tunnel_capture_status "$@")" -eq 0 ]; }
no_tunnel_data() { [ "$(tunnel_capture_status "$@")" -eq 124 ]; }

# wait_exit PID SECONDS WHAT: waits for a process to end by itself.
wait_exit() { wait_for "$2" "$3" bash -c "! kill -0 $1 2>/dev/null"; }

# check_capture N: gateway N counted no MPEG-TS continuity errors and ffprobe finds the video in
# its capture ($WORK/gwN.ts).
check_capture() {
    local n=$1
    # ", 0 TS": "10 TS continuity errors" must not pass.
    grep -q ", 0 TS continuity errors" "$WORK/gateway$n.log" ||
        fail "gateway $n: $(tail -n2 "$WORK/gateway$n.log" | head -n1)"
    ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$WORK/gw$n.ts" \
        >"$WORK/ffprobe$n.log" 2>&1
    grep -q mpeg2video "$WORK/ffprobe$n.log" ||
        fail "ffprobe does not find the video in gateway $n's capture"
}

# The IPv6 topology (IPv6 outside and inside). Debian's FRR has no pim6d, so the upstream is the
# switch of upstream.sh (MLDv2 snooping, querier): it forwards the source's stream toward the
# relay only while the relay's MLDv2 report asks for it.
#
#   [src] 2001:db8:10::2 ──── [sw: br0] ──── u0 [relay] d0 ──── 2001:db8:2::1 [nat: NAT66] ─┬─ fd00:101::2 [gw1]
#                       2001:db8:10::3 (upstream)  2001:db8:2::2 (relay)                    └─ fd00:102::2 [gw2]
build_topology_v6() {
    SOURCE_IP=2001:db8:10::2
    RELAY_IP=2001:db8:2::2
    GROUP=ff3e::8000:1
    VIDEO_GROUP="[${GROUP}]"
    RELAY_NEXT_HOP_KEY=next_hop_v6
    RELAY_NEXT_HOP=2001:db8:2::1
    RELAY_UPSTREAM_IP=2001:db8:10::3
    RELAY_REPORT_SOURCE="^fe80:"  # RFC 3810 §5: MLDv2 reports come from a link-local address
    need ipv6 nft_nat
    choose_upstream ipv6
    make_ns src sw relay nat gw1 gw2
    link_ns src s0 sw sw-src
    link_ns sw sw-rel relay u0
    link_ns relay d0 nat n-rel
    link_ns nat n-gw1 gw1 g0
    link_ns nat n-gw2 gw2 g0
    in_ns src ip addr add "$SOURCE_IP/64" dev s0 nodad
    start_switch ""
    in_ns relay sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns nat ip addr add "$RELAY_NEXT_HOP/64" dev n-rel nodad
    in_ns nat sysctl -qw net.ipv6.conf.all.forwarding=1
    nat_masquerade ip6
    for g in 1 2; do
        in_ns nat ip addr add "fd00:10$g::1/64" dev "n-gw$g" nodad
        in_ns gw$g ip addr add "fd00:10$g::2/64" dev g0 nodad
        in_ns gw$g ip -6 route add default via "fd00:10$g::1"
    done
    start_relay
}
