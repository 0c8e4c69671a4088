#!/usr/bin/env bash
# Scale: one amtgw emulating 100 gateways (100 sockets, so 100 endpoints behind the NAT), each
# joined to the same 10 (S,G) channels. The source sends to all 10 groups through the upstream
# (FRR pimd or the snooping bridge: upstream.sh); every emulated gateway must receive on every
# channel (amtgw's per-tunnel summary), and the upstream must hold all 10 (S,G) joins of the relay
# (one IGMPv3 ALLOW each, seen by tshark on the upstream link).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

GATEWAYS=100
CHANNELS=10
build_topology
start_upstream_capture
groups=""
channels=()
for i in $(seq 1 $CHANNELS); do
    groups+=" 232.1.2.$i"
    channels+=(--source "$SOURCE_IP" --group "232.1.2.$i")
done
# 25 s of 5 datagrams per second per group: 50 in, 5000 replicas out per second.
send_multicast src "$groups" 5000 125 0.2 >"$WORK/sender.log" 2>&1 &
PIDS+=($!)
start_gateway 1 30 --emulate "$GATEWAYS" --output none "${channels[@]}"
GW=$LAST_PID
wait_for 30 "the emulated gateways receive" gateway_receives 1
wait_for 30 "all $GATEWAYS tunnels joined" grep -q "tunnels $GATEWAYS/$GATEWAYS" "$WORK/gateway1.log"
pass "$GATEWAYS emulated gateways joined"
joined=$(upstream_join_count "232\.1\.2\.")
[ "$joined" -eq $CHANNELS ] || fail "$(upstream_name) has $joined of $CHANNELS (S,G) joins"
pass "$(upstream_name) holds all $CHANNELS (S,G) joins of the relay"

wait_exit "$GW" 45 "amtgw exit"
summary=$(grep "tunnels received on all" "$WORK/gateway1.log") || fail "no per-tunnel summary from amtgw"
echo "$summary"
grep -q "amtgw: $GATEWAYS/$GATEWAYS tunnels received on all $CHANNELS channels" <<<"$summary" ||
    fail "not every emulated gateway received every channel"
pass "all $GATEWAYS emulated gateways received on all $CHANNELS channels"
stop_upstream_capture
for i in $(seq 1 $CHANNELS); do
    expect_report ALLOW "$SOURCE_IP" "232.1.2.$i" "join of channel $i"
done
