#!/usr/bin/env bash
# Hitless restart at the default timers (query interval 125 s, so no gateway refreshes during the
# test): two gateways behind NAT receive video; the relay is restarted
#   1. through the planned path (amtctl restart-prepare: state saved, upstream joins kept), and
#   2. by SIGKILL, from the periodic snapshot (state.snapshot_interval = 2),
# and each time both streams resume within 1 s of the new process logging that it runs, with no
# new Request from either gateway (the restored MAC secrets and tunnels serve them) and no leave
# upstream (no IGMPv3 BLOCK on the relay's upstream link; the upstream keeps the join). The gap
# each gateway saw is measured on the wire (the NAT's port toward the relay) and printed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

CTL=("$AMTCTL" --socket "$WORK/control.sock")
STATE="$WORK/state"
RELAY_SECTIONS="[state]
file = \"$STATE\"
snapshot_interval = 2"
build_topology
start_upstream_capture
spawn nat tunnel-capture tcpdump -nni n-rel -U -w "$WORK/tunnel.pcap" udp port 2268
TUNNEL_CAPTURE=$LAST_PID
wait_for 10 "tunnel capture running" grep -q "listening on" "$WORK/tunnel-capture.log"
start_video 90
# --data-timeout 0: amtgw's own liveness probe (a Request after 4 s without data, which the
# restored relay answers) would fire when a loaded machine makes the gap longer than 4 s; off, so
# every Request in the capture is one the relay made necessary.
start_gateway 1 90 --output none --data-timeout 0
start_gateway 2 90 --output none --data-timeout 0
wait_for 20 "gateway 1 receives" gateway_receives 1
wait_for 20 "gateway 2 receives" gateway_receives 2
wait_upstream_joined 10 "$SOURCE_IP" "$GROUP"
pass "both gateways receive from the first relay process"

# The epoch seconds of the last 'relay running' line in the relay's log.
last_running_at() {
    local stamp
    stamp=$(grep "relay running" "$WORK/relay.log" | tail -n1 | sed 's/^\[\([^]]*\)\].*/\1/')
    date -d "$stamp" +%s.%N
}

# restarted WHAT: the new relay restored both tunnels and both streams flow again.
restarted() {
    local what=$1
    grep "state: restored" "$WORK/relay.log" | tail -n1 | grep -q "restored 2 of 2 tunnel" ||
        fail "$what: the new relay did not restore both tunnels: $(grep 'state:' "$WORK/relay.log" | tail -n1)"
    wait_gateway_flowing 1 10 "$what: gateway 1's stream resumes"
    wait_gateway_flowing 2 10 "$what: gateway 2's stream resumes"
    "${CTL[@]}" --json status >"$WORK/status.json"
    grep -q '"state_restored": true' "$WORK/status.json" && grep -q '"state_restored_endpoints": 2' "$WORK/status.json" ||
        fail "$what: amtctl status: $(cat "$WORK/status.json")"
    upstream_has "$SOURCE_IP" "$GROUP" || fail "$what: $(upstream_name) lost the join"
    pass "$what: both tunnels restored (amtctl status: state_restored, 2 endpoints), streams flow"
}

# 1. Planned restart.
"${CTL[@]}" restart-prepare >"$WORK/prepare.txt" || fail "amtctl restart-prepare: $(cat "$WORK/prepare.txt")"
wait_exit "$RELAY_PID" 20 "the relay stops after restart-prepare"
grep -q "stopping for a planned restart" "$WORK/relay.log" || fail "no planned-restart stop in the log"
stat -c %a "$STATE" | grep -qx 600 || fail "state file mode $(stat -c %a "$STATE"), not 0600"
pass "restart-prepare saved the state (mode 0600) and the relay stopped without leaving upstream"
start_relay
planned_at=$(last_running_at)
restarted "planned restart"

# 2. Crash: the snapshot (every 2 s, by this process) is what the new process finds.
wait_for 10 "a periodic snapshot by the restarted relay" \
    bash -c "[ \$(ip netns exec $(ns relay) curl -sf http://127.0.0.1:9850/metrics | awk '\$1 == \"amt_state_snapshots_total\" {print int(\$2)}') -ge 1 ]"
kill -KILL "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true  # reaped here: no "Killed" line from the shell
start_relay
crash_at=$(last_running_at)
restarted "SIGKILL"
sleep 1

kill -TERM "$TUNNEL_CAPTURE"
wait_exit "$TUNNEL_CAPTURE" 10 "tunnel capture written"
# occurrence=f: the outer IP/UDP headers, not the encapsulated ones of Data.
tshark -r "$WORK/tunnel.pcap" -E occurrence=f -T fields -e frame.time_epoch -e ip.src -e ip.dst -e udp.srcport \
    -e udp.dstport -e amt.type >"$WORK/tunnel.txt" 2>"$WORK/tshark.log" ||
    fail "tshark cannot read the tunnel capture: $(cat "$WORK/tshark.log")"
# Per gateway (its NAT port): the largest gap between Data packets, and the first Data after each
# new process said it runs.
ports=$(awk '$6 == 6 {print $5}' "$WORK/tunnel.txt" | sort -u)
[ "$(wc -w <<<"$ports")" -eq 2 ] || fail "Data to $(wc -w <<<"$ports") tunnel ports, 2 expected"
for port in $ports; do
    for restart in "planned:$planned_at" "sigkill:$crash_at"; do
        read -r gap first < <(awk -v p="$port" -v r="${restart#*:}" '
            $6 == 6 && $5 == p {
                if ($1 >= r && first == "") first = $1 - r
                if (last != "" && $1 >= r && gap == "") gap = $1 - last
                if ($1 < r) last = $1
            }
            END {printf "%.3f %s\n", gap, first == "" ? "none" : sprintf("%.3f", first)}' "$WORK/tunnel.txt")
        echo "tunnel port $port, ${restart%%:*} restart: stream gap ${gap} s, first Data ${first} s after 'relay running'"
        [ "$first" != none ] || fail "no Data to port $port after the ${restart%%:*} restart"
        awk -v f="$first" 'BEGIN {exit !(f <= 1.0)}' ||
            fail "port $port: first Data ${first} s after the ${restart%%:*} restart's 'relay running' (bound 1 s)"
    done
done
pass "after each restart both streams resumed within 1 s of 'relay running'"
requests=$(awk '$6 == 3' "$WORK/tunnel.txt" | wc -l)
[ "$requests" -eq 2 ] || fail "$requests Requests in the capture; 2 expected (one handshake per gateway)"
pass "no gateway sent a new Request: the 2 Requests are the first handshakes"
stop_upstream_capture
if awk -v s="$RELAY_REPORT_SOURCE" '$3 == "report" && $2 ~ s && $4 == "BLOCK"' "$WORK/upstream.txt" | grep -q .; then
    fail "the relay left upstream (IGMPv3 BLOCK) across a restart"
fi
pass "no leave upstream across both restarts (no BLOCK); $(upstream_name) kept the join"

# 3. A bad state file never stops the relay: it is moved aside with the reason logged.
stop_relay
head -c 100 /dev/urandom >"$STATE"
start_relay
grep -q "state: $STATE: not a relay state file; moved aside to $STATE.rejected, starting with no tunnels" \
    "$WORK/relay.log" || fail "no 'moved aside' line for a corrupt state file: $(grep 'state:' "$WORK/relay.log" | tail -n1)"
[ -f "$STATE.rejected" ] || fail "the corrupt state file was not moved aside"
"${CTL[@]}" --json status | grep -q '"state_restored": false' || fail "amtctl status says restored"
pass "a corrupt state file is moved aside with the reason, and the relay runs empty"
