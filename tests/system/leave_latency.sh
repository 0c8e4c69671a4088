#!/usr/bin/env bash
# Leave latency (issue #5): two gateways behind one NAT address receive the same (S,G); when
# gateway 2 leaves, the relay's stream to it stops within one second while gateway 1's goes on.
# Measured on the wire at the NAT's inside port toward gateway 2: the time of the Membership
# Update carrying the leave (IGMPv3 BLOCK_OLD_SOURCES) against the last Multicast Data to it.
# The only timing assertion in the system suite; everything else waits generously.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

build_topology  # the upstream plays no part in what is measured (upstream.sh says which it is)
start_video 40
spawn nat tcpdump tcpdump -nni n-gw2 -U -w "$WORK/gw2.pcap" udp port 2268
TCPDUMP=$LAST_PID
wait_for 10 "capture running" grep -q "listening on" "$WORK/tcpdump.log"
start_gateway 1 40 --output none
GW1=$LAST_PID
start_gateway 2 10 --output none
GW2=$LAST_PID
wait_for 20 "gateway 1 receives" gateway_receives 1
wait_for 20 "gateway 2 receives" gateway_receives 2
pass "both gateways receive"

wait_exit "$GW2" 30 "gateway 2 leaves and exits"
gw1_at_leave=$(gateway_packets 1)
sleep 3  # well past the bound: anything still sent to gateway 2 would show
kill -TERM "$TCPDUMP"
wait_exit "$TCPDUMP" 10 "capture written"
wait_gateway_flowing 1 10 "gateway 1 keeps receiving after gateway 2 left"
[ "$(gateway_packets 1)" -gt "$gw1_at_leave" ] || fail "gateway 1's stream stopped too"
pass "gateway 1 keeps receiving"

# AMT type 5 = Membership Update, IGMPv3 record type 6 = BLOCK_OLD_SOURCES; type 6 = Data.
tshark -r "$WORK/gw2.pcap" -E occurrence=f -T fields -e frame.time_epoch -e amt.type \
    -e igmp.record_type >"$WORK/gw2-frames.txt" 2>"$WORK/tshark.log" ||
    fail "tshark cannot read the capture: $(cat "$WORK/tshark.log")"
leave=$(awk '$2 == 5 && $3 == 6 {print $1; exit}' "$WORK/gw2-frames.txt")
[ -n "$leave" ] || fail "no leave (Update with BLOCK_OLD_SOURCES) from gateway 2 in the capture"
before=$(awk -v t="$leave" '$2 == 6 && $1 < t' "$WORK/gw2-frames.txt" | wc -l)
last=$(awk '$2 == 6 {t = $1} END {print t}' "$WORK/gw2-frames.txt")
[ "$before" -gt 0 ] || fail "no Data to gateway 2 before its leave: nothing measured"
after=$(awk -v t="$leave" '$2 == 6 && $1 > t' "$WORK/gw2-frames.txt" | wc -l)
delay=$(awk -v a="$leave" -v b="$last" 'BEGIN {d = b - a; printf "%.3f", d < 0 ? 0 : d}')
echo "leave sent at $leave; last Data to gateway 2 at $last (+${delay} s, $after packets after the leave)"
awk -v d="$delay" 'BEGIN {exit !(d <= 1.0)}' ||
    fail "the stream to gateway 2 went on ${delay} s after its leave (bound: 1 s)"
pass "gateway 2's stream stopped ${delay} s after its leave (≤ 1 s)"
