#!/usr/bin/env bash
# The operator's view of a relay carrying real traffic (issue #6):
#   - /metrics agrees with the traffic: replicas = multicast packets in × fan-out for a counted
#     burst, and every malformed message the test injects is counted under its reason;
#   - the scrape passes `promtool check metrics`, and every metric the Grafana dashboard and the
#     alert rules query exists in it (tests/system/check_deploy.sh);
#   - amtctl status / tunnels / groups show the two gateways; drain on → new Queries carry the L
#     flag (seen by an independent AMT peer) and the drain hook runs; drain off → no L flag.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

PROBE="$(dirname "$0")/amt_probe.py"
CTL=("$AMTCTL" --socket "$WORK/control.sock")
RELAY_DRAIN_ON="touch $WORK/drain-hook-ran"
# Saved state on, so the scrape carries the amt_state_* families the alert rules query.
RELAY_SECTIONS="[state]
file = \"$WORK/state\""
build_topology

scrape() { in_ns relay curl -sf http://127.0.0.1:9850/metrics >"$WORK/$1"; }
# value FILE METRIC [LABEL-REGEX]: the sum of METRIC's samples (whose labels match).
value() {
    awk -v m="$2" -v l="${3:-}" '$1 ~ "^" m "([{]|$)" && (l == "" || $1 ~ l) {s += $2} END {printf "%d", s}' "$WORK/$1"
}
delta() { echo $(($(value after "$@") - $(value before "$@"))); }

start_gateway 1 60 --output none
start_gateway 2 60 --output none
wait_for 20 "two tunnels" bash -c "${CTL[*]} --json status | grep -q '\"endpoints\": 2'"
pass "amtctl status: 2 endpoints"
wait_upstream_joined 20 "$SOURCE_IP" "$GROUP"

# Warm up until the upstream forwards (a router's first packets set up its (S,G) route), then count.
for _ in $(seq 1 100); do
    send_multicast src "$GROUP" 5000 5
    gateway_receives 1 && gateway_receives 2 && break
done
gateway_receives 1 && gateway_receives 2 || fail "the stream does not reach the gateways"
sleep 1
scrape before
send_multicast src "$GROUP" 5000 200
in_ns nat /usr/bin/python3 "$PROBE" send-bad "$RELAY_IP" >"$WORK/bad.json"
in_ns nat /usr/bin/python3 "$PROBE" bad-mac-update "$RELAY_IP" >"$WORK/badmac.json"
sleep 2
scrape after

packets_in=$(delta amt_multicast_packets_total)
replicas=$(delta amt_replicas_total)
echo "multicast in: $packets_in, replicas: $replicas"
[ "$packets_in" -eq 200 ] || fail "the relay counted $packets_in multicast packets in; 200 were sent"
[ "$replicas" -eq $((packets_in * 2)) ] || fail "replicas $replicas != $packets_in × fan-out 2"
pass "amt_replicas_total = amt_multicast_packets_total × 2 (200 packets, 2 gateways)"

for reason in $(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$WORK/bad.json") mac_mismatch; do
    want=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update(json.load(open(sys.argv[2]))); print(d[sys.argv[3]])' "$WORK/bad.json" "$WORK/badmac.json" "$reason")
    got=$(delta amt_dropped_packets_total "reason=\"$reason\"")
    [ "$got" -eq "$want" ] || fail "amt_dropped_packets_total{reason=\"$reason\"} rose by $got, $want sent"
done
[ "$(delta amt_mac_failures_total)" -eq 1 ] || fail "amt_mac_failures_total did not count the bad MAC"
pass "each malformed message counted under its reason; the bad MAC under amt_mac_failures_total"
[ "$(value after amt_endpoints)" -eq 2 ] || fail "amt_endpoints = $(value after amt_endpoints)"
[ "$(value after amt_upstream_groups)" -eq 1 ] || fail "amt_upstream_groups != 1"
pass "amt_endpoints 2, amt_upstream_groups 1"

promtool check metrics <"$WORK/after" >"$WORK/promtool.log" 2>&1 ||
    fail "promtool check metrics: $(cat "$WORK/promtool.log")"
pass "promtool check metrics accepts the scrape"
"$(dirname "$0")/check_deploy.sh" "$WORK/after" >"$WORK/check_deploy.log" 2>&1 ||
    fail "deploy/ checks: $(tail -n 20 "$WORK/check_deploy.log")"
pass "alert rules and the Grafana dashboard check out against the scrape"

"${CTL[@]}" tunnels >"$WORK/tunnels.txt"
[ "$(grep -c "10.0.2.1:" "$WORK/tunnels.txt")" -eq 2 ] || fail "amtctl tunnels: $(cat "$WORK/tunnels.txt")"
"${CTL[@]}" groups >"$WORK/groups.txt"
grep -Eq "^$SOURCE_IP +$GROUP +2 +yes +yes" "$WORK/groups.txt" || fail "amtctl groups: $(cat "$WORK/groups.txt")"
pass "amtctl tunnels and groups show both gateways on ($SOURCE_IP,$GROUP), forwarding and joined upstream"

flags() { in_ns nat /usr/bin/python3 "$PROBE" query-flags "$RELAY_IP"; }
[ "$(flags)" = '{"l": false, "g": false}' ] || fail "Query flags before drain: $(flags)"
"${CTL[@]}" drain on >/dev/null
[ "$(flags)" = '{"l": true, "g": false}' ] || fail "Query flags while draining: $(flags)"
wait_for 5 "drain.on_command ran" test -e "$WORK/drain-hook-ran"
base=$(gateway_packets 1)
send_multicast src "$GROUP" 5000 20
wait_for 10 "gateway 1 keeps its stream while draining" gateway_receives 1 "$base"
scrape drained
[ "$(value drained amt_draining)" -eq 1 ] || fail "amt_draining is not 1"
pass "drain on: Queries carry L, the hook ran, joined gateways keep their streams"
"${CTL[@]}" drain off >/dev/null
[ "$(flags)" = '{"l": false, "g": false}' ] || fail "Query flags after drain off: $(flags)"
pass "drain off: Queries carry no L flag"

"${CTL[@]}" secret rotate >/dev/null
"${CTL[@]}" log-level debug >/dev/null
wait_for 5 "log level change logged" grep -q "log level info → debug" "$WORK/relay.log"
pass "amtctl secret rotate and log-level work"
