#!/usr/bin/env bash
# Relay restart: amtrelayd is stopped (SIGTERM: it leaves upstream) and started again while two
# gateways run. The gateways are not touched: their unanswered refresh Requests are retransmitted
# (backoff capped at QQIC) until the new relay process answers, they handshake again with its new
# MAC secret and their streams resume. Gateway 1 was given the relay's address; gateway 2 found
# it by Discovery (sent to the relay's unicast address).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

RELAY_QI=4
build_topology
start_upstream_capture
start_video 80
start_gateway 1 80 --output none
start_gateway 2 80 --discover --output none
wait_for 20 "gateway 1 receives" gateway_receives 1
wait_for 20 "gateway 2 receives" gateway_receives 2
pass "both gateways receive from the first relay process"

# Without state.file a planned restart is refused before anything stops (hitless_restart.sh
# covers it with state).
rc=0
"$AMTCTL" --socket "$WORK/control.sock" restart-prepare >"$WORK/prepare.txt" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "state.file is not set" "$WORK/prepare.txt" ||
    fail "restart-prepare without state.file: exit $rc, $(cat "$WORK/prepare.txt")"
wait_gateway_flowing 1 10 "gateway 1 still receiving after the refused restart-prepare"
pass "restart-prepare without state.file is refused (exit 1, the reason) and the relay goes on"

stop_relay
pass "relay stopped"
# Its leave reaches the upstream, and nothing reaches the gateways while it is down.
wait_upstream_left 20 "$GROUP"
sleep 1
down1=$(gateway_packets 1)
down2=$(gateway_packets 2)
sleep 3
[ "$(gateway_packets 1)" -le $((down1 + 0)) ] || fail "gateway 1 still counts packets with the relay down"
pass "no stream while the relay is down"

start_relay
pass "relay started again"
wait_for 60 "gateway 1 receives from the new relay" gateway_receives 1 "$down1"
wait_for 60 "gateway 2 receives from the new relay" gateway_receives 2 "$down2"
pass "both gateways recovered by themselves"
wait_gateway_flowing 1 10 "gateway 1's stream keeps flowing"
wait_gateway_flowing 2 10 "gateway 2's stream keeps flowing"
upstream_has "$SOURCE_IP" "$GROUP" || fail "the new relay did not join upstream"
pass "streams resumed; the new relay joined upstream again ($(upstream_name))"
stop_upstream_capture
expect_report BLOCK "$SOURCE_IP" "$GROUP" "the stopped relay leaves (RFC 7450 §5.3.4 order)"
left_at=$(awk '$3 == "report" && $4 == "BLOCK" {print $1; exit}' "$WORK/upstream.txt")
rejoins=$(awk -v s="$RELAY_REPORT_SOURCE" -v g="$GROUP" -v t="$left_at" \
    '$3 == "report" && $2 ~ s && $4 == "ALLOW" && $5 == g && $1 > t' "$WORK/upstream.txt" | wc -l)
[ "$rejoins" -gt 0 ] ||
    fail "no IGMPv3 ALLOW from the restarted relay after the first one's BLOCK"
pass "the restarted relay joined again (ALLOW after the BLOCK, tshark)"
