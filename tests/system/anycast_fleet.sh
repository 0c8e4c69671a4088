#!/usr/bin/env bash
# A fleet of two relays behind BGP anycast (issue 16), with real routing daemons:
#
#   [src] 10.0.0.2 ── [upstream] ──┬── u0 [rela] d0 ──┐ 198.51.100.10     e-gw           g0
#    232.1.1.1 at 50 pps           └── u0 [relb] d0 ──┴─ br0 [edge] ───────────────── [gws] amtgw × N
#                                      198.51.100.11    198.51.100.1  192.168.50.1  192.168.50.2
#
# Each relay is amtrelayd on DPDK af_packet ports (u0 upstream, d0 downstream) with an exception
# port (net_tap, kernel interface amt0). bird2 in the relay's namespace speaks BGP to the edge
# router through that exception path, announcing 192.52.193.1/32, 2001:3::1/128 and the relay's
# own address; the edge runs FRR bgpd (another implementation than the relays', as a real router
# would be) with equal-cost multipath (deploy/anycast/frr-router.conf says why) and hashes on UDP
# ports, so which relay a gateway's Discovery reaches is predicted, per gateway port, by the
# router itself (ip route get ... sport). The upstream is FRR pimd or a
# snooping bridge, as the kernel allows (upstream.sh), and reaches both relays.
# bird2.conf, frr-router.conf and amt-anycast are deploy/anycast's files: bird2.conf with only its
# address lines replaced for relay B (the test checks that nothing else differs), the others as
# shipped; amt-anycast is the relays' drain hook and what systemd's ExecStartPost/ExecStopPost run.
#
#   0. both relays announce; gateways discover through 192.52.193.1 and land where the router
#      says; all receive.
#   1. drain: amtctl drain on A runs drain.on_command (amt-anycast drain): the router's table loses
#      A's anycast path but keeps A's address; A's gateways keep receiving from A; a new gateway
#      the router would have sent to A lands on B. drain off: A's path is back and such a gateway
#      lands on A.
#   2. failure: SIGKILL A. Its BGP session dies with its dataplane; the router withdraws A's
#      routes (hold time 3 s). A's gateways notice the silence (amtgw --data-timeout, default 4 s),
#      find A dead, rediscover through anycast and receive from B. Recovery per gateway is
#      measured on the wire (the edge's gateway port) and printed: kill → first Data from B.
#   3. restart: A comes back with its state file: it restores its old tunnels and serves them at
#      once; the gateway pinned to A (--relay) is served again; those that moved to B leave A
#      (amtgw tells a former relay that restored its old tunnel) and stay on B; A is announced
#      again and new gateways land where the router's choice says.
# Every step is checked from outside: the router's BGP table (vtysh), which relay each gateway's
# Advertisement named (amtgw's log), packet counts, both relays' metrics.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/upstream.sh"

need bridge ipv6 tun
# Packages are scripts/setup's job (a missing one fails, as in lib.sh); kernel features skip.
absent=$(missing_commands bird birdc vtysh)
[ -z "$absent" ] || fail "not installed: $absent (bird2 and frr: sudo scripts/setup)"
[ -x /usr/lib/frr/bgpd ] || fail "FRR bgpd is not installed (/usr/lib/frr/bgpd; sudo scripts/setup)"

DEPLOY="$(cd "$(dirname "$0")/../../deploy/anycast" && pwd)"
SOURCE_IP=10.0.0.2
GROUP=232.1.1.1
ANYCAST=192.52.193.1
GW_IP=192.168.50.2
declare -A RELAY_V4=([a]=198.51.100.10 [b]=198.51.100.11)
declare -A RELAY_V6=([a]=2001:db8:100::10 [b]=2001:db8:100::11)
declare -A RELAY_UPSTREAM=([a]=10.0.1.2 [b]=10.0.2.2)
declare -A RELAY_PID=()
RUN_SECONDS=170  # every daemon and gateway is bounded by this too

# --- the test bed ---------------------------------------------------------------------------

choose_upstream ipv4
UPSTREAM_RELAY_IFS="${UPSTREAM_IF}a ${UPSTREAM_IF}b"  # r-rela r-relb, or sw-rela sw-relb
[ "$UPSTREAM" = router ] || RELAY_UPSTREAM[b]=10.0.1.3  # one switched subnet
make_ns src "$UPSTREAM_NS" rela relb edge gws
link_ns src s0 "$UPSTREAM_NS" "$UPSTREAM_SRC_IF"
link_ns "$UPSTREAM_NS" "${UPSTREAM_IF}a" rela u0
link_ns "$UPSTREAM_NS" "${UPSTREAM_IF}b" relb u0
link_ns rela d0 edge e-a
link_ns relb d0 edge e-b
link_ns edge e-gw gws g0
in_ns src ip addr add 10.0.0.2/24 dev s0
if [ "$UPSTREAM" = router ]; then
    in_ns src ip route add default via 10.0.0.1
    in_ns rtr ip addr add 10.0.0.1/24 dev r-src
    in_ns rtr ip addr add 10.0.1.1/24 dev r-rela
    in_ns rtr ip addr add 10.0.2.1/24 dev r-relb
    in_ns rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    start_frr
else
    in_ns src ip route add default dev s0
    start_switch 10.0.1.1/24
fi
# The relays' kernels: nothing on the DPDK ports (the relay answers ARP/ND there itself); their
# addresses live on the exception interface, which amt-anycast up configures.
for r in a b; do
    for i in u0 d0; do in_ns "rel$r" sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"; done
done
# The edge router: one segment with both relays, the gateways behind it; ECMP hashed on UDP ports.
in_ns edge ip link add br0 type bridge
in_ns edge ip link set e-a master br0
in_ns edge ip link set e-b master br0
in_ns edge ip addr add 198.51.100.1/24 dev br0
in_ns edge ip addr add 2001:db8:100::1/64 dev br0 nodad
in_ns edge ip link set br0 up
in_ns edge ip addr add 192.168.50.1/24 dev e-gw
in_ns edge sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
in_ns gws ip addr add "$GW_IP/24" dev g0
in_ns gws ip route add default via 192.168.50.1

# FRR bgpd on the edge, with the shipped router configuration as it is.
EDGE_FRR="$WORK/edge-frr"
mkdir -p "$EDGE_FRR"
echo "hostname amt-edge" >"$EDGE_FRR/zebra.conf"
cp "$DEPLOY/frr-router.conf" "$EDGE_FRR/bgpd.conf"
start_frr_daemons edge "$EDGE_FRR" bgpd edge-
edge() { timeout 10 vtysh --vty_socket "$EDGE_FRR" -c "$1" 2>/dev/null; }

# bird in each relay's namespace: deploy/anycast/bird2.conf with the define lines for this relay.
for r in a b; do
    sed -e "s|^define RELAY_V4 = .*|define RELAY_V4 = ${RELAY_V4[$r]};|" \
        -e "s|^define RELAY_V4_HOST = .*|define RELAY_V4_HOST = ${RELAY_V4[$r]}/32;|" \
        -e "s|^define RELAY_V6 = .*|define RELAY_V6 = ${RELAY_V6[$r]};|" \
        -e "s|^define RELAY_V6_HOST = .*|define RELAY_V6_HOST = ${RELAY_V6[$r]}/128;|" \
        "$DEPLOY/bird2.conf" >"$WORK/bird-$r.conf"
    diff <(grep -v '^define RELAY_' "$DEPLOY/bird2.conf") <(grep -v '^define RELAY_' "$WORK/bird-$r.conf") >/dev/null ||
        fail "bird-$r.conf differs from deploy/anycast/bird2.conf beyond its addresses"
    bird -p -c "$WORK/bird-$r.conf" || fail "bird rejects bird-$r.conf"
    spawn "rel$r" "bird-$r" timeout "$RUN_SECONDS" bird -f -c "$WORK/bird-$r.conf" -s "$WORK/bird-$r.ctl" \
        -P "$WORK/bird-$r.pid"
done
birdc_of() { local r=$1; shift; in_ns "rel$r" birdc -s "$WORK/bird-$r.ctl" "$@"; }
wait_for 10 "both birds answer" bash -c "ip netns exec $(ns rela) birdc -s $WORK/bird-a.ctl show status &&
    ip netns exec $(ns relb) birdc -s $WORK/bird-b.ctl show status"

# amt-anycast VERB for relay R, with its settings (systemd reads them from /etc/default/amt-anycast).
anycast() {
    local r=$1 verb=$2
    in_ns "rel$r" env BIRDC="birdc -s $WORK/bird-$r.ctl" AMTCTL="$AMTCTL --socket $WORK/control-$r.sock" \
        EXCEPTION_INTERFACE=amt0 EXCEPTION_ADDRESSES="${RELAY_V4[$r]}/24 ${RELAY_V6[$r]}/64" \
        "$DEPLOY/amt-anycast" "$verb"
}

# start_relay R: amtrelayd for relay R, then what systemd's ExecStartPost runs (amt-anycast up).
start_relay() {
    local r=$1 runs
    cat >"$WORK/relay-$r.toml" <<T
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "512", "--no-shconf", "--no-pci",
        "--file-prefix", "${NS_PREFIX}$r",
        "--vdev", "net_af_packet0,iface=u0,qpairs=2",
        "--vdev", "net_af_packet1,iface=d0,qpairs=2",
        "--vdev", "net_tap0,iface=amt0",
        "--log-level", "*:error"]
[ports]
upstream = "net_af_packet0"
downstream = "net_af_packet1"
exception = "net_tap0"
[relay]
addresses = ["${RELAY_V4[$r]}", "${RELAY_V6[$r]}"]
[downstream]
next_hop = "198.51.100.1"
next_hop_v6 = "2001:db8:100::1"
[upstream]
addresses = ["${RELAY_UPSTREAM[$r]}"]
[dataplane]
packet_mbufs = 8191
header_mbufs = 8191
flow_table_size = 4096
[metrics]
listen = "127.0.0.1:9850"
[control]
socket = "$WORK/control-$r.sock"
[state]
file = "$WORK/state-$r"
snapshot_interval = 1
[drain]
on_command = "$DEPLOY/amt-anycast drain"
off_command = "$DEPLOY/amt-anycast undrain"
T
    runs=$(grep -c "relay running" "$WORK/relay-$r.log" 2>/dev/null || true)
    # The drain hooks inherit amtrelayd's environment, as under systemd's EnvironmentFile=.
    # (exec all the way, no shell function: RELAY_PID is amtrelayd itself, which step 2 kills.)
    ip netns exec "$(ns "rel$r")" env BIRDC="birdc -s $WORK/bird-$r.ctl" \
        "$AMTRELAYD" --config "$WORK/relay-$r.toml" >>"$WORK/relay-$r.log" 2>&1 &
    RELAY_PID[$r]=$!
    PIDS+=("${RELAY_PID[$r]}")
    wait_for 30 "relay $r running" bash -c "[ \$(grep -c 'relay running' '$WORK/relay-$r.log') -gt ${runs:-0} ]"
    anycast "$r" up >>"$WORK/anycast-$r.log" 2>&1 || fail "amt-anycast up on relay $r: $(tail -n3 "$WORK/anycast-$r.log")"
}
metric() {  # metric R NAME: relay R's metric (summed over labels)
    in_ns "rel$1" curl -sf --max-time 5 http://127.0.0.1:9850/metrics |
        awk -v m="$2" '$1 ~ "^" m "([{]|$)" {s += $2} END {printf "%d", s}'
}

# The router's view. anycast_paths: the relays announcing 192.52.193.1/32 (their addresses, sorted).
# bgp_paths PREFIX [AFI]: the peers whose paths to PREFIX the edge holds, sorted ("" for none).
bgp_paths() {
    edge "show bgp ${2:-ipv4} unicast $1 json" | python3 -c '
import json, sys
try:
    paths = json.load(sys.stdin).get("paths", [])
except ValueError:
    paths = []
print(" ".join(sorted(p["peer"]["peerId"] for p in paths)))'
}
bgp6_paths() { bgp_paths "$1" ipv6; }
anycast_paths_are() { [ "$(bgp_paths 192.52.193.1/32)" = "$*" ]; }
BOTH="${RELAY_V4[a]} ${RELAY_V4[b]}"

# predicted R PORT: the relay the edge routes a Discovery from the gateway's PORT to (a or b).
predicted() {
    local via
    via=$(in_ns edge ip route get "$ANYCAST" from "$GW_IP" iif e-gw ipproto udp sport "$1" dport 2268 |
        grep -o "via [0-9.]*" | cut -d' ' -f2)
    case "$via" in
        "${RELAY_V4[a]}") echo a ;;
        "${RELAY_V4[b]}") echo b ;;
        *) echo "?" ;;
    esac
}
# port_for R: sets PORT to the next unused gateway port whose Discovery the router sends to
# relay R (not printed: a $(...) subshell would lose NEXT_PORT).
NEXT_PORT=40000
port_for() {
    local want=$1 p
    for ((p = NEXT_PORT; p < NEXT_PORT + 200; p++)); do
        if [ "$(predicted "$p")" = "$want" ]; then
            NEXT_PORT=$((p + 1))
            PORT=$p
            return
        fi
    done
    fail "no gateway port from $NEXT_PORT hashes to relay $want"
}

# start_gateway PORT [amtgw options]: amtgw in gws on local port PORT, discovering by anycast.
declare -A GW_PID=()
start_gateway() {
    local p=$1
    shift
    spawn gws "gw$p" timeout "$RUN_SECONDS" "$AMTGW" --source "$SOURCE_IP" --group "$GROUP" --port 5000 \
        --local-port "$p" --output none "$@"
    GW_PID[$p]=$LAST_PID
}
gw_packets() {
    local n
    n=$(tr '\r' '\n' <"$WORK/gw$1.log" | grep -ao "[0-9]* pkts" | tail -n1 | cut -d' ' -f1)
    echo "${n:-0}"
}
# The relay named by gateway PORT's latest Advertisement (amtgw's log).
gw_relay() { tr '\r' '\n' <"$WORK/gw$1.log" | grep -ao 'relay [0-9.]* (Advertisement' | tail -n1 | cut -d' ' -f2; }
gw_given() { [ "$(gw_relay "$2")" = "${RELAY_V4[$1]}" ]; }
gw_receives_above() { [ "$(gw_packets "$1")" -gt "$2" ]; }
# wait_gw_on R PORT: the gateway's latest Advertisement named relay R and its stream flows.
wait_gw_on() {
    local r=$1 p=$2 base
    wait_for 20 "gateway $p is given relay $r" gw_given "$r" "$p"
    base=$(gw_packets "$p")
    wait_for 20 "gateway $p receives from relay $r" gw_receives_above "$p" "$base"
}
# wait_gw_flowing PORT: the count grows.
wait_gw_flowing() {
    local base
    base=$(gw_packets "$1")
    wait_for 10 "gateway $1's stream flows" gw_receives_above "$1" "$base"
}
tunnels_are() { [ "$(metric "$1" amt_endpoints)" = "$2" ]; }

# --- the run --------------------------------------------------------------------------------

start_relay a
start_relay b
wait_for 30 "the edge has both relays' anycast paths" anycast_paths_are "$BOTH"
anycast6_paths_are() { [ "$(bgp6_paths 2001:3::1/128)" = "$*" ]; }
wait_for 10 "the edge has both IPv6 anycast paths" anycast6_paths_are "${RELAY_V6[a]} ${RELAY_V6[b]}"
own_route() { [ "$(bgp_paths "${RELAY_V4[$1]}/32")" = "${RELAY_V4[$1]}" ]; }
own_route6() { [ "$(bgp6_paths "${RELAY_V6[$1]}/128")" = "${RELAY_V6[$1]}" ]; }
for r in a b; do
    wait_for 10 "the edge has relay $r's own route" own_route "$r"
    wait_for 10 "the edge has relay $r's own IPv6 route" own_route6 "$r"
done
in_ns edge ip route show "$ANYCAST" | grep -c "nexthop via" | grep -qx 2 ||
    fail "the edge's FIB has no ECMP route to $ANYCAST: $(in_ns edge ip route show "$ANYCAST")"
pass "BGP through each relay's exception port (net_tap): the edge has 192.52.193.1/32 and 2001:3::1/128 from both relays (ECMP in its FIB) and each relay's own address"
[ "$(metric a amt_exception_packets_total)" -gt 0 ] || fail "relay a's exception port carried nothing"

# The stream, for the whole run.
spawn src source timeout "$RUN_SECONDS" /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
i = 0
while True:
    s.sendto(b"amt-fleet %08d" % i, ("'"$GROUP"'", 5000))
    i += 1
    time.sleep(0.02)'

# 0. Gateways land where the router's ECMP choice says.
port_for a; A1=$PORT; port_for a; A2=$PORT; port_for b; B1=$PORT
for p in "$A1" "$A2" "$B1"; do start_gateway "$p"; done
port_for a; PINNED=$PORT  # joined to relay A's address, never discovering (--relay, RFC 8777 D=1)
start_gateway "$PINNED" --relay "${RELAY_V4[a]}"
wait_gw_on a "$A1"
wait_gw_on a "$A2"
wait_gw_on b "$B1"
wait_for 20 "the pinned gateway receives from relay a" gw_receives_above "$PINNED" 0
wait_for 10 "relay a has 3 tunnels" tunnels_are a 3
wait_for 10 "relay b has 1 tunnel" tunnels_are b 1
[ "$(upstream_join_count "$GROUP")" -ge 1 ] || fail "$(upstream_name) holds no join for $GROUP"
pass "step 0: gateways $A1 $A2 on relay a, $B1 on relay b, as the edge's ECMP hash predicts; $PINNED pinned to a; all receive; relay metrics: a 3 tunnels, b 1"

# 1. Drain A.
port_for a; D1=$PORT  # chosen while both relays announce: the router sends it to A
timeout 10 "$AMTCTL" --socket "$WORK/control-a.sock" drain on >"$WORK/drain.txt" 2>&1 || fail "amtctl drain on: $(cat "$WORK/drain.txt")"
wait_for 10 "the edge withdraws relay a's anycast path" anycast_paths_are "${RELAY_V4[b]}"
own_route a || fail "draining withdrew relay a's own address"
pass "drain on: drain.on_command withdrew relay a's anycast (edge: 192.52.193.1/32 only via b), its own address stays"
start_gateway "$D1"
wait_gw_on b "$D1"
for p in "$A1" "$A2" "$PINNED"; do wait_gw_flowing "$p"; done
[ "$(gw_relay "$A1")" = "${RELAY_V4[a]}" ] || fail "gateway $A1 left relay a during the drain"
[ "$(metric a amt_draining)" = 1 ] || fail "relay a's amt_draining is not 1"
pass "draining: a new gateway ($D1, hashed to a before) lands on b; a's joined gateways keep their streams from a"
timeout 10 "$AMTCTL" --socket "$WORK/control-a.sock" drain off >"$WORK/drain.txt" 2>&1 || fail "amtctl drain off: $(cat "$WORK/drain.txt")"
wait_for 10 "the edge has relay a's anycast path again" anycast_paths_are "$BOTH"
port_for a; U1=$PORT
start_gateway "$U1"
wait_gw_on a "$U1"
pass "drain off: relay a announced again; a new gateway ($U1) lands on a as predicted"

# 2. Relay A dies.
ON_A="$A1 $A2 $U1"
spawn edge tunnel-capture tcpdump -nni e-gw -U -w "$WORK/tunnel.pcap" udp port 2268
CAPTURE=$LAST_PID
wait_for 10 "tunnel capture running" grep -q "listening on" "$WORK/tunnel-capture.log"
sleep 1.5  # the snapshot (every second) holds every tunnel of a
killed_at=$(date +%s.%N)
kill -KILL "${RELAY_PID[a]}"
wait "${RELAY_PID[a]}" 2>/dev/null || true
# Nothing tells bird: the session dies with the dataplane it runs through.
wait_for 15 "the edge withdraws relay a's routes" anycast_paths_are "${RELAY_V4[b]}"
withdrawn_at=$(date +%s.%N)
anycast a down >>"$WORK/anycast-a.log" 2>&1 || true  # systemd's ExecStopPost, late and unheard
[ -z "$(bgp_paths "${RELAY_V4[a]}/32")" ] || fail "relay a's own route outlived it"
# When and why bgpd dropped the session (its own account, not our polling).
read -r reset_ago reset_why < <(edge "show bgp neighbors ${RELAY_V4[a]} json" | python3 -c '
import json, sys
n = json.load(sys.stdin).get(sys.argv[1], {})
why = "; ".join(str(v) for k, v in sorted(n.items()) if k.startswith(("lastResetDueTo", "lastNotification")))
print(n.get("lastResetTimerMsecs", -1) / 1000, why or "?")' "${RELAY_V4[a]}")
session_down=$(awk -v k="$killed_at" -v now="$(date +%s.%N)" -v ago="$reset_ago" 'BEGIN {printf "%.1f", now - ago - k}')
[[ "$reset_why" == *"Hold Timer Expired"* ]] || fail "the edge dropped relay a's session for '$reset_why', not its hold timer"
pass "SIGKILL relay a: the edge's hold timer dropped its session $session_down s later and withdrew its anycast and own routes (seen after $(awk -v a="$killed_at" -v b="$withdrawn_at" 'BEGIN {printf "%.1f", b - a}') s): the session ran through the dead dataplane"
for p in $ON_A; do wait_for 40 "gateway $p moves to relay b" gw_given b "$p"; done
for p in $ON_A; do wait_gw_flowing "$p"; done
for p in $ON_A; do grep -q "given up (its stream stopped and it does not answer)" "$WORK/gw$p.log" ||
    fail "gateway $p: no dead-relay detection in its log"; done
wait_for 10 "relay b serves every discovered gateway" tunnels_are b 5
kill -TERM "$CAPTURE"
wait_for 10 "tunnel capture written" bash -c "! kill -0 $CAPTURE 2>/dev/null"
tshark -r "$WORK/tunnel.pcap" -E occurrence=f -T fields -e frame.time_epoch -e ip.src -e udp.dstport -e amt.type \
    >"$WORK/tunnel.txt" 2>"$WORK/tshark.log" || fail "tshark cannot read the tunnel capture: $(cat "$WORK/tshark.log")"
worst=0
for p in $ON_A; do
    read -r recovery gap < <(awk -v p="$p" -v k="$killed_at" -v b="${RELAY_V4[b]}" -v a="${RELAY_V4[a]}" '
        $4 == 6 && $3 == p && $2 == a && $1 < k {last = $1}
        $4 == 6 && $3 == p && $2 == b && $1 >= k && first == "" {first = $1}
        END {if (first == "") print "none none"; else printf "%.2f %.2f\n", first - k, first - last}' "$WORK/tunnel.txt")
    [ "$recovery" != none ] || fail "no Data from relay b to gateway $p in the capture"
    echo "gateway $p: first Data from relay b ${recovery} s after SIGKILL of relay a (stream gap ${gap} s)"
    worst=$(awk -v w="$worst" -v r="$recovery" 'BEGIN {print (r > w) ? r : w}')
done
echo "RECOVERY: worst ${worst} s over gateways $ON_A (query interval 125 s, amtgw --data-timeout 4)"
pass "failure: a's discovered gateways found relay b by anycast (worst recovery ${worst} s); b serves 5 tunnels"
pinned_before=$(gw_packets "$PINNED")

# 3. Relay A comes back with its state file.
start_relay a
grep "state: restored" "$WORK/relay-a.log" | tail -n1 | grep -q "restored 4 of 4 tunnel" ||
    fail "relay a did not restore its 4 tunnels: $(grep 'state:' "$WORK/relay-a.log" | tail -n1)"
wait_for 20 "the pinned gateway receives from relay a again" gw_receives_above "$PINNED" "$pinned_before"
for p in $ON_A; do
    wait_for 20 "gateway $p leaves relay a's restored tunnel" grep -q "former relay ${RELAY_V4[a]} sends data again: leaving it" "$WORK/gw$p.log"
done
wait_for 10 "relay a keeps only the pinned gateway's tunnel" tunnels_are a 1
for p in $ON_A; do
    [ "$(gw_relay "$p")" = "${RELAY_V4[b]}" ] || fail "gateway $p left relay b"
    wait_gw_flowing "$p"
done
pass "restart: relay a restored its 4 tunnels from its state file and serves the pinned gateway again; the 3 that moved to b left a's restored tunnels (a: 1 tunnel) and stay on b"
wait_for 20 "the edge has relay a's anycast path again" anycast_paths_are "$BOTH"
port_for a; N1=$PORT; port_for b; N2=$PORT
start_gateway "$N1"
start_gateway "$N2"
wait_gw_on a "$N1"
wait_gw_on b "$N2"
echo "--- the edge's BGP table for the anycast prefix:"
edge "show ip bgp 192.52.193.1/32" | head -n 20
echo "--- tunnels: relay a $(metric a amt_endpoints), relay b $(metric b amt_endpoints)"
pass "restart: relay a announced again (ECMP); new gateways $N1 → a, $N2 → b as the edge predicts"
# The dashboard's fleet view (and every other panel and rule) queries metrics these relays export.
in_ns rela curl -sf --max-time 5 http://127.0.0.1:9850/metrics >"$WORK/scrape-a.txt"
/usr/bin/python3 "$DEPLOY/../grafana/check_dashboard.py" --scrape "$WORK/scrape-a.txt" \
    --rules "$DEPLOY/../prometheus/amtrelay-rules.yml" >"$WORK/dashboard.txt" 2>&1 ||
    fail "the dashboard queries metrics the relay lacks: $(tail -n5 "$WORK/dashboard.txt")"
pass "the Grafana dashboard (fleet row included) and the alert rules find every metric in relay a's scrape"
