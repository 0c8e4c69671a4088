#!/usr/bin/env bash
# Issue 13, several workers: amtrelayd with ports.workers = 2 on the standard topology's two
# net_af_packet ports (qpairs=2: queue i is worker i's; the control thread shares worker 1's TX
# queue). DPDK 22.11's af_packet PMD has no RSS to configure: its queue sockets form one
# PACKET_FANOUT group in hash mode (with defrag and rollover), so the kernel picks each frame's
# queue from its flow hash (addresses and UDP ports, keyed at random per boot). Which queue one
# flow lands on is unknown in advance, so the test offers many flows: the source sends one (S,G)
# from 16 UDP source ports, and 8 gateways (two amtgw processes on two hosts behind the NAT, 4
# sockets each, so 8 source ports) join. The chance that all 16 source flows hash to one queue
# is 2^-15. Asserted: every tunnel receives the stream, a counted burst is replicated exactly
# (packets × 8), both workers replicated part of it (amt_replicas_total{worker}), each worker's
# replicas are its own packets × 8, and amtctl status's totals are the sums over the workers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

CTL=("$AMTCTL" --socket "$WORK/control.sock")
RELAY_WORKERS=2
PER_HOST=4  # amtgw --emulate: sockets per gateway host
GATEWAYS=$((2 * PER_HOST))
FLOWS=16   # the source's UDP ports
ROUNDS=20  # counted burst: ROUNDS × FLOWS packets
build_topology
grep -q "2 worker(s)" "$WORK/relay.log" || fail "the relay did not start 2 workers: $(grep -m1 worker "$WORK/relay.log")"

scrape() { in_ns relay curl -sf http://127.0.0.1:9850/metrics >"$WORK/$1"; }
# value FILE METRIC [LABEL-REGEX]: the sum of METRIC's samples (whose labels match).
value() {
    awk -v m="$2" -v l="${3:-}" '$1 ~ "^" m "([{]|$)" && (l == "" || $1 ~ l) {s += $2} END {printf "%d", s}' "$WORK/$1"
}
delta() { echo $(($(value after "$@") - $(value before "$@"))); }
worker() { echo "worker=\"$1\""; }

start_gateway 1 90 --emulate "$PER_HOST" --output none
GW1=$LAST_PID
start_gateway 2 90 --emulate "$PER_HOST" --output none
GW2=$LAST_PID
all_joined() {
    grep -q "tunnels $PER_HOST/$PER_HOST" "$WORK/gateway1.log" &&
        grep -q "tunnels $PER_HOST/$PER_HOST" "$WORK/gateway2.log"
}
wait_for 30 "all $GATEWAYS tunnels joined" all_joined
wait_for 20 "$GATEWAYS endpoints" bash -c "${CTL[*]} --json status | grep -q '\"endpoints\": $GATEWAYS'"
wait_upstream_joined 20 "$SOURCE_IP" "$GROUP"
pass "$GATEWAYS gateways joined through the 2-worker relay"
scrape handshakes
echo "frames per worker after the handshakes: worker 0 $(value handshakes amt_worker_rx_packets_total "$(worker 0)"), worker 1 $(value handshakes amt_worker_rx_packets_total "$(worker 1)")"

# Warm up until both hosts' gateways receive (a router's first packets build its route).
for _ in $(seq 1 50); do
    send_multicast src "$GROUP" 5000 1 0 "$FLOWS"
    gateway_receives 1 && gateway_receives 2 && break
    sleep 0.2
done
gateway_receives 1 && gateway_receives 2 || fail "the stream does not reach the gateways"
sleep 1
scrape before
send_multicast src "$GROUP" 5000 "$ROUNDS" 0.02 "$FLOWS"
PACKETS=$((ROUNDS * FLOWS))
replicated() {
    scrape after
    [ "$(delta amt_replicas_total)" -ge $((PACKETS * GATEWAYS)) ]
}
wait_for 20 "$((PACKETS * GATEWAYS)) replicas counted" replicated || true
scrape after

packets_in=$(delta amt_multicast_packets_total)
replicas=$(delta amt_replicas_total)
echo "burst: $PACKETS packets from $FLOWS source ports; the relay counted $packets_in in, $replicas replicas out"
for w in 0 1; do
    echo "worker $w: $(delta amt_worker_rx_packets_total "$(worker $w)") frames in," \
        "$(delta amt_multicast_packets_total "$(worker $w)") multicast packets," \
        "$(delta amt_replicas_total "$(worker $w)") replicas"
done
[ "$packets_in" -eq "$PACKETS" ] || fail "the relay counted $packets_in multicast packets; $PACKETS were sent"
[ "$replicas" -eq $((PACKETS * GATEWAYS)) ] || fail "replicas $replicas != $PACKETS × $GATEWAYS gateways"
for w in 0 1; do
    mine=$(delta amt_multicast_packets_total "$(worker $w)")
    [ "$mine" -gt 0 ] || fail "worker $w received none of the $FLOWS flows: the fanout did not spread them"
    [ "$(delta amt_replicas_total "$(worker $w)")" -eq $((mine * GATEWAYS)) ] ||
        fail "worker $w: replicas are not its $mine packets × $GATEWAYS"
done
for reason in tx_full mbuf_exhausted no_flow neighbor_unresolved; do
    [ "$(delta amt_dropped_packets_total "reason=\"$reason\"")" -eq 0 ] || fail "$reason drops during the burst"
done
pass "both workers replicated: $PACKETS packets × $GATEWAYS gateways, split between the workers, nothing dropped"

"${CTL[@]}" --json status >"$WORK/status.json"
status_field() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/status.json" "$1"; }
scrape final
[ "$(status_field workers)" -eq 2 ] || fail "amtctl status: workers $(status_field workers)"
[ "$(status_field replicas)" -eq "$(value final amt_replicas_total)" ] ||
    fail "amtctl status replicas $(status_field replicas) != the sum of amt_replicas_total{worker} $(value final amt_replicas_total)"
[ "$(status_field multicast_packets)" -eq "$(value final amt_multicast_packets_total)" ] ||
    fail "amtctl status multicast_packets != the sum over the workers"
pass "amtctl status: 2 workers, replicas and multicast packets = the sums over the workers"

# Every emulated gateway received the stream: amtgw's per-tunnel summary after it leaves.
for h in 1 2; do
    pid=$([ "$h" = 1 ] && echo "$GW1" || echo "$GW2")
    kill -INT "$pid"
    wait_exit "$pid" 10 "amtgw $h exit"
    summary=$(grep "tunnels received on all" "$WORK/gateway$h.log") || fail "no per-tunnel summary from amtgw $h"
    echo "host $h: $summary"
    grep -q "amtgw: $PER_HOST/$PER_HOST tunnels received on all 1 channels" <<<"$summary" ||
        fail "gateway host $h: not every tunnel received the stream"
    fewest=$(grep -o "fewest packets on one tunnel's channel: [0-9]*" <<<"$summary" | grep -o "[0-9]*$")
    total=$(grep -o "amtgw: [0-9]* packets received" "$WORK/gateway$h.log" | grep -o "[0-9]*")
    [ "$fewest" -ge "$PACKETS" ] || fail "gateway host $h: a tunnel received $fewest packets, fewer than the $PACKETS of the burst"
    [ "$total" -eq $((PER_HOST * fewest)) ] ||
        fail "gateway host $h: $total packets over $PER_HOST tunnels, the fewest $fewest: the tunnels did not all get the same stream"
done
pass "all $GATEWAYS tunnels received the same stream, from both workers (each the $PACKETS packets of the burst and the warm-up)"
