#!/usr/bin/env bash
# System test of AF_XDP mode: amtrelayd on net_af_xdp over a veth in generic XDP mode, with the
# kernel owning the same interface and the relay's address. One link faces both the source and
# the gateway (namespace gw). Checks that
#   - the steering program is attached (ours, generic mode) and the kernel still answers ARP,
#     ping and a TCP connection on the relay's address while the relay runs;
#   - a gateway joins through the relay and receives all 50 multicast datagrams exactly once;
#   - the relay detaches its program on exit and reports the steering counters;
#   - a program left by a killed relay is replaced with a log line; someone else's program makes
#     the relay refuse to start, naming the interface and the fix.
# veth reports no combined channels, so net_af_xdp gets one queue: the control thread shares the
# worker's TX queue. Checksum offload is off on the peer (the kernel would hand AF_XDP partial
# checksums). No XDP program is needed on the peer: nothing is XDP_REDIRECTed into a veth.
source "$(dirname "$0")/lib.sh"
need af_xdp

make_ns relay gw
ip link add r0 netns "$(ns relay)" type veth peer name g0 netns "$(ns gw)"
in_ns relay ethtool -K r0 tx off rx off >/dev/null
in_ns gw ethtool -K g0 tx off rx off >/dev/null
in_ns relay ip link set r0 up
in_ns gw ip link set g0 up
in_ns relay ip addr add 192.0.2.1/24 dev r0  # the kernel owns the relay's address (ARP, ping)
in_ns gw ip addr add 192.0.2.2/24 dev g0
in_ns gw ip route add 232.0.0.0/8 dev g0
gw_mac=$(in_ns gw cat /sys/class/net/g0/address)

cat >"$WORK/relay.toml" <<T
[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--no-shconf", "--no-pci",
        "--file-prefix", "${NS_PREFIX}", "--log-level", "*:error"]
[relay]
addresses = ["192.0.2.1"]
[downstream]
next_hop_mac = "${gw_mac}"
[upstream]
source_prefixes = ["192.0.2.2/32"]  # one port: the only host whose multicast is replicated
[dataplane]
packet_mbufs = 8191
header_mbufs = 4095
flow_table_size = 1024
[af_xdp]
interface = "r0"
xdp_mode = "generic"
[control]
socket = "${WORK}/control.sock"
T

xdp_prog_on_r0() { in_ns relay ip -d link show r0 | grep -o "prog/xdp id [0-9]* name [a-z_]*"; }

start_relay() {
    spawn relay "$1" "$AMTRELAYD" --config "$WORK/relay.toml"
    RELAY_PID=$LAST_PID
    wait_for 20 "amtrelayd running ($1)" grep -q "relay running" "$WORK/$1.log"
}

# --- 1. the relay and the kernel share r0 -------------------------------------------------
start_relay relay
grep -q "steering program attached to r0 in generic mode" "$WORK/relay.log" ||
    fail "no 'attached in generic mode' line: $(grep af_xdp "$WORK/relay.log")"
in_ns relay ip -d link show r0 | grep -q "xdpgeneric" || fail "r0 is not in generic XDP mode"
xdp_prog_on_r0 | grep -q "name amt_steer_xdp" || fail "r0's XDP program: $(xdp_prog_on_r0)"
pass "steering program attached to r0 (generic mode)"

in_ns gw ping -c 3 -i 0.2 -W 2 192.0.2.1 >"$WORK/ping.log" || fail "the kernel does not answer ping"
in_ns gw ip neigh show 192.0.2.1 dev g0 | grep -qi "$(in_ns relay cat /sys/class/net/r0/address)" ||
    fail "no ARP entry for the relay address: $(in_ns gw ip neigh show dev g0)"
pass "ARP and ping answered by the kernel on the relay's interface"

mkdir -p "$WORK/www" && echo "kernel-tcp-ok" >"$WORK/www/hello.txt"
spawn relay http /usr/bin/python3 -m http.server 8080 --bind 192.0.2.1 --directory "$WORK/www"
wait_for 10 "http server" in_ns relay /usr/bin/python3 -c \
    "import socket; socket.create_connection(('192.0.2.1', 8080), 1)"
body=$(in_ns gw /usr/bin/python3 -c \
    "import urllib.request; print(urllib.request.urlopen('http://192.0.2.1:8080/hello.txt', timeout=5).read().decode().strip())")
[ "$body" = "kernel-tcp-ok" ] || fail "TCP to the kernel through r0: got '$body'"
pass "TCP connection to the relay host's kernel address works"

spawn gw gateway "$AMTGW" --relay 192.0.2.1 --source 192.0.2.2 --group 232.1.1.1 --port 5000 \
    --output "$WORK/stream.bin" --duration 20
GW_PID=$LAST_PID
wait_for 15 "gateway joined" grep -q "joined" "$WORK/gateway.log"
pass "handshake through the XDP program and AF_XDP, gateway joined"

send_multicast gw 232.1.1.1 5000 50
sleep 1
expect_stream_delivered "$GW_PID" 50
pass "50 of 50 multicast datagrams delivered through AF_XDP"
xdp_steered=$(in_ns relay curl -sf http://127.0.0.1:9850/metrics |
    awk '$1 == "amt_xdp_packets_total{class=\"multicast\",verdict=\"steered\"}" {print int($2)}')
[ "${xdp_steered:-0}" -eq 50 ] || fail "amt_xdp_packets_total{multicast, steered} = ${xdp_steered:-none}, 50 sent"
pass "the XDP program's counters are exported: 50 multicast steered"
# A second relay started by mistake (control socket and metrics off, so only the interface lock
# can stop it) must leave the running relay's program alone.
if in_ns relay timeout 20 "$AMTRELAYD" --config "$WORK/relay.toml" --control-socket "" \
    --metrics-listen "" >"$WORK/second.log" 2>&1; then
    fail "a second AF_XDP relay started on the same interface"
fi
grep -q "another amtrelayd runs in AF_XDP mode" "$WORK/second.log" ||
    fail "second relay: $(tail -n2 "$WORK/second.log")"
xdp_prog_on_r0 >/dev/null || fail "the second relay removed the running relay's program"
pass "a second AF_XDP relay is refused and the running one keeps its program"

# A router's IGMPv3 general query must reach the relay (its upstream proxy answers).
in_ns gw /usr/bin/python3 - <<'PY2'
import socket, struct
q = bytearray(struct.pack("!BBH4sBBH", 0x11, 100, 0, socket.inet_aton("0.0.0.0"), 2, 125, 0))
s = sum(struct.unpack("!%dH" % (len(q) // 2), bytes(q)))
s = (s >> 16) + (s & 0xFFFF)
struct.pack_into("!H", q, 2, ~(s + (s >> 16)) & 0xFFFF)
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("192.0.2.2"))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
sock.sendto(bytes(q), ("224.0.0.1", 0))
PY2
in_ns gw ping -c 1 -W 2 192.0.2.1 >/dev/null || fail "ping after the stream"
kill -TERM "$RELAY_PID"
wait_for 10 "relay exit" bash -c "! kill -0 $RELAY_PID 2>/dev/null"
counters=$(grep "af_xdp: steered" "$WORK/relay.log") || fail "no counter line at exit"
echo "$counters"
amt=$(sed -n 's/.*steered amt=\([0-9]*\).*/\1/p' <<<"$counters")
mc=$(sed -n 's/.* multicast=\([0-9]*\).*/\1/p' <<<"$counters")
passed=$(sed -n 's/.*; passed=\([0-9]*\).*/\1/p' <<<"$counters")
[ "$amt" -ge 2 ] || fail "steered amt=$amt: the Request and the Update at least"
[ "$mc" -eq 50 ] || fail "steered multicast=$mc, sent 50"
[ "$passed" -ge 8 ] || fail "passed=$passed: ping, ARP and TCP went to the kernel"
igmp=$(sed -n 's/.* igmp_mld=\([0-9]*\).*/\1/p' <<<"$counters")
[ "$igmp" -ge 1 ] || fail "steered igmp_mld=$igmp: the general query did not reach the relay"
[ -z "$(xdp_prog_on_r0)" ] || fail "program still attached after exit: $(xdp_prog_on_r0)"
pass "relay stopped, program detached, counters: amt=$amt multicast=$mc igmp_mld=$igmp passed=$passed"

# --- 2. a program left by a killed relay is replaced --------------------------------------
start_relay crashed
kill -KILL "$RELAY_PID"
wait_for 5 "relay killed" bash -c "! kill -0 $RELAY_PID 2>/dev/null"
xdp_prog_on_r0 | grep -q amt_steer_xdp || fail "the killed relay left no program (test premise)"
start_relay restarted
grep -q "left by an earlier run that did not stop cleanly; replacing it" "$WORK/restarted.log" ||
    fail "no stale-program line: $(grep af_xdp "$WORK/restarted.log")"
in_ns gw ping -c 1 -W 2 192.0.2.1 >/dev/null || fail "ping after the restart"
kill -TERM "$RELAY_PID"
wait_for 10 "relay exit" bash -c "! kill -0 $RELAY_PID 2>/dev/null"
[ -z "$(xdp_prog_on_r0)" ] || fail "program still attached after exit: $(xdp_prog_on_r0)"
pass "stale program of a killed relay replaced, detached at exit"

# --- 3. someone else's program: refuse ---------------------------------------------------
cat >"$WORK/other.c" <<'C'
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int other_prog(struct xdp_md* ctx) { return XDP_PASS; }
char _license[] __attribute__((section("license"), used)) = "GPL";
C
clang -O2 -target bpf -I/usr/include/"$(gcc -print-multiarch)" -c "$WORK/other.c" -o "$WORK/other.o"
in_ns relay ip link set dev r0 xdpgeneric obj "$WORK/other.o" sec xdp
if in_ns relay timeout 20 "$AMTRELAYD" --config "$WORK/relay.toml" >"$WORK/refused.log" 2>&1; then
    fail "the relay started over someone else's XDP program"
fi
grep -q "interface r0 already has an XDP program.*other_prog.*ip link set dev r0 xdp off" \
    "$WORK/refused.log" || fail "refusal does not name the interface and the fix: $(tail -n 2 "$WORK/refused.log")"
xdp_prog_on_r0 | grep -q other_prog || fail "the relay touched someone else's program"
in_ns relay ip link set dev r0 xdpgeneric off
pass "someone else's program: refused with the interface and the fix"
# The relays' interface lock file (flock: released with the process; the file stays) goes too.
rm -f "/run/amtrelayd-xdp-$(in_ns relay stat -Lc %i /proc/self/ns/net)-r0.lock"
