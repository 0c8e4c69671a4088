# Shared helpers for the system tests: network namespaces with a unique prefix, cleanup on any
# exit, bounded waits, and the project's binaries (AMTRELAYD, AMTGW set by meson).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/features.sh"

NS_PREFIX="amt$$"
PIDS=()
WORK=$(mktemp -d /tmp/amt-system.XXXXXX)
chmod 755 "$WORK"  # daemons that drop privileges (FRR) write below it

cleanup() {
    local status=$?
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    # Up to 5 s to stop as they do for an operator (the relay leaves upstream), then SIGKILL.
    local waited=0
    while [ $waited -lt 50 ]; do
        local alive=0
        for pid in "${PIDS[@]:-}"; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.1
        waited=$((waited + 1))
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    # Whatever still runs inside our namespaces (daemons that forked, children) goes too.
    for ns in $(ip netns list | awk '{print $1}' | grep "^${NS_PREFIX}-" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
        echo "--- logs in $WORK ---"
        for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f" | tr '\r' '\n' | tail -n 30; }; done
    fi
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

need root netns veth
absent=$(missing_commands "${TEST_BED_COMMANDS[@]}")
[ -z "$absent" ] || fail "not installed: $absent (sudo scripts/setup installs every package the tests need)"

ns() { echo "${NS_PREFIX}-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }

make_ns() {
    for n in "$@"; do
        ip netns add "$(ns "$n")"
        in_ns "$n" ip link set lo up
        in_ns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
}

# veth A:IFA <-> B:IFB. Checksum offload off: DPDK's af_packet reads the frames as they are.
link_ns() {
    local a=$1 ifa=$2 b=$3 ifb=$4
    ip link add "$ifa" netns "$(ns "$a")" type veth peer name "$ifb" netns "$(ns "$b")"
    in_ns "$a" ethtool -K "$ifa" tx off rx off >/dev/null 2>&1 || true
    in_ns "$b" ethtool -K "$ifb" tx off rx off >/dev/null 2>&1 || true
    in_ns "$a" ip link set "$ifa" up
    in_ns "$b" ip link set "$ifb" up
}

# Runs a command in the background inside a namespace, output to $WORK/NAME.log; its pid is in
# LAST_PID (not printed: a $(spawn ...) subshell would lose it from PIDS and from cleanup).
spawn() {
    local n=$1 name=$2; shift 2
    ip netns exec "$(ns "$n")" "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls until COMMAND succeeds, fails after SECONDS.
wait_for() {
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "FAIL: timed out after ${seconds}s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }
# skip REASON: this test cannot run on this machine; meson counts exit 77 as skipped, never passed.
skip() { echo "SKIP: $*"; exit 77; }

# send_multicast N GROUPS PORT COUNT [INTERVAL] [SOCKETS]: from inside namespace N (TTL 8), COUNT
# rounds of one UDP datagram to each of GROUPS (space-separated), INTERVAL seconds apart (0.02),
# from each of SOCKETS sockets (1), that is from as many UDP source ports: flows that RSS (or
# af_packet's fanout hash) spreads over queues, one (S,G) for the relay.
send_multicast() {
    local n=$1 groups=$2 port=$3 count=$4 interval=${5:-0.02} sockets=${6:-1}
    in_ns "$n" /usr/bin/python3 - "$groups" "$port" "$count" "$interval" "$sockets" <<'PY'
import socket, sys, time
groups, port, count = sys.argv[1].split(), int(sys.argv[2]), int(sys.argv[3])
interval, sockets = float(sys.argv[4]), int(sys.argv[5])
fam = socket.AF_INET6 if ":" in groups[0] else socket.AF_INET
senders = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(sockets)]
for s in senders:
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 8)
for i in range(count):
    for s in senders:
        for group in groups:
            s.sendto(b"amt-system-test %06d" % i, (group, port))
    time.sleep(interval)
PY
}

# Stops gateway PID (it flushes its output file and leaves) and checks that it delivered COUNT
# distinct send_multicast datagrams, each once, to $WORK/stream.bin ($WORK/gateway.log: its log).
expect_stream_delivered() {
    local pid=$1 count=$2 received copies
    kill -INT "$pid"
    wait_for 5 "gateway exit" bash -c "! kill -0 $pid 2>/dev/null"
    grep -q "$count delivered" "$WORK/gateway.log" || fail "gateway summary: $(tail -n1 "$WORK/gateway.log")"
    received=$(grep -ao "amt-system-test [0-9]*" "$WORK/stream.bin" | sort -u | wc -l)
    copies=$(grep -ao "amt-system-test [0-9]*" "$WORK/stream.bin" | wc -l)
    [ "$copies" -eq "$received" ] || fail "$copies datagrams for $received distinct ones: duplicates"
    [ "$received" -eq "$count" ] || fail "gateway delivered $received of $count datagrams"
}

# start_one_port_relay [VDEV_OPTIONS] <<T ... T: amtrelayd on one DPDK af_packet port on r0
# (relay address 192.0.2.1, small pools), with the sections read from standard input added
# (TOML sections may come in any order); sets RELAY_PID and waits until the relay runs.
start_one_port_relay() {
    {
        cat <<T
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--no-shconf", "--no-pci",
        "--file-prefix", "${NS_PREFIX}", "--vdev", "net_af_packet0,iface=r0,qpairs=2${1:+,$1}",
        "--log-level", "*:error"]
[ports]
downstream = "net_af_packet0"
[relay]
addresses = ["192.0.2.1"]
T
        cat
        cat <<T
[dataplane]
packet_mbufs = 4095
header_mbufs = 4095
flow_table_size = 1024
T
    } >"$WORK/relay.toml"
    spawn relay relay "$AMTRELAYD" --config "$WORK/relay.toml"
    RELAY_PID=$LAST_PID
    wait_for 20 "amtrelayd running" grep -q "relay running" "$WORK/relay.log"
}
