#!/usr/bin/env bash
# A gateway that goes silent (SIGSTOP: no refresh, no leave) expires at the relay after
# relay.membership_timeout: the relay stops sending to it and, being the last member, leaves
# upstream (an IGMPv3 BLOCK, seen by tshark) so the upstream (FRR pimd or the snooping bridge:
# upstream.sh) drops the (S,G). Short timers make this take seconds, not minutes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

RELAY_QI=3
RELAY_TIMEOUT=8
build_topology
start_upstream_capture
start_video 60
start_gateway 1 60 --output none
GW1=$LAST_PID
wait_for 20 "gateway receives" gateway_receives 1
pass "gateway joined and receives"
# Past two refresh cycles, so the refresh itself is shown to keep the membership.
sleep $((RELAY_QI * 2 + 1))
wait_gateway_flowing 1 10 "gateway still receiving after refresh cycles"
pass "refreshes keep the membership"

kill -STOP "$GW1"
stopped_at=$SECONDS
tunnel_data nat n-gw1 192.168.101.2 3 || fail "no Data to the gateway right after it went silent"
pass "data still flows to the silent gateway before its timeout"
wait_for 40 "the relay stops sending to the silent gateway" no_tunnel_data nat n-gw1 192.168.101.2 3
elapsed=$((SECONDS - stopped_at))
# Not early: the last accepted Update was at most one QI before the SIGSTOP (1 s for rounding).
[ "$elapsed" -ge $((RELAY_TIMEOUT - RELAY_QI - 1)) ] || fail "stream stopped after ${elapsed}s, before the ${RELAY_TIMEOUT}s timeout"
pass "the relay stopped sending about ${elapsed}s after the gateway went silent (timeout ${RELAY_TIMEOUT}s)"
wait_upstream_left 20 "$GROUP"
pass "the relay left upstream: $(upstream_name) dropped the (S,G)"
no_tunnel_data nat n-gw1 192.168.101.2 3 || fail "Data to the expired gateway again"
pass "nothing more to the expired gateway"
expired=$(relay_metric amt_expired_endpoints_total)
endpoints=$(relay_metric amt_endpoints)
[ "$expired" -eq 1 ] && [ "$endpoints" -eq 0 ] ||
    fail "metrics: amt_expired_endpoints_total=$expired, amt_endpoints=$endpoints"
pass "the relay's metrics count the expiry (amt_expired_endpoints_total 1, amt_endpoints 0)"
stop_upstream_capture
expect_report ALLOW "$SOURCE_IP" "$GROUP" "join"
expect_report BLOCK "$SOURCE_IP" "$GROUP" "leave after the expiry"
