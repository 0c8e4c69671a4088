#!/usr/bin/env bash
# Per-tunnel accounting over IPFIX (issue 15) against a real collector: nfdump's nfcapd in a
# namespace of its own, reached over the relay's management link (the relay's kernel side; its
# DPDK ports have no kernel address). Two gateways behind one NAT join different channels; gateway
# 2 leaves while the streams run, gateway 1 stays until the relay stops. Active timeout 4 s.
#
#   [col] 10.9.0.2:4739 nfcapd ──── m0 10.9.0.1 [relay] ... (topology.sh: NAT, gw1, gw2)
#
# Checked: `nfdump -r` has one record per session interval with the channel (S → G), the relay
# and the gateway's NAT-side address and port (the NAT translation fields), and packet counts that
# add up per session to what each gateway counted, within the packets in flight at the session's
# edges (one publish batch, 1 ms, at each of its two edges: at 50 packets/s per channel at most
# one packet per edge, so ±2). Gateway 2's record ends with flowEndReason 3 (end of flow: its
# leave), gateway 1's with 2 (active timeout) while it runs and 4 (forced end) when the relay
# stops. tshark's IPFIX dissector (cflow) decodes every message the relay sent, templates and data
# records, without a malformed or error-level expert flag.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

absent=$(missing_commands nfcapd nfdump)
[ -z "$absent" ] || fail "not installed: $absent (sudo scripts/setup installs nfdump)"

GROUP2=232.1.1.2
COLLECTOR=10.9.0.2
RELAY_SECTIONS="[ipfix]
collector = \"${COLLECTOR}:4739\"
observation_domain = 42
active_timeout = 4
template_refresh = 2"
build_topology

# The management link and the collector (the relay's exporter retries until it is up).
make_ns col
link_ns relay m0 col c0
in_ns relay ip addr add 10.9.0.1/24 dev m0
in_ns col ip addr add "$COLLECTOR/24" dev c0
mkdir -p "$WORK/flows"
spawn col tcpdump tcpdump -nni c0 -U -w "$WORK/ipfix.pcap" udp port 4739
TCPDUMP=$LAST_PID
wait_for 10 "capture running" grep -q "listening on" "$WORK/tcpdump.log"
spawn col nfcapd nfcapd -w "$WORK/flows" -b "$COLLECTOR" -p 4739 -t 3600
NFCAPD=$LAST_PID
nfcapd_listening() { in_ns col ss -lun | grep -q ':4739'; }
wait_for 10 "nfcapd listening" nfcapd_listening
# Over UDP a collector learns the templates at the next refresh (every 2 s here): wait for one
# sent while it listens, so that it can decode every data record.
sent=$(relay_metric amt_ipfix_template_sends_total)
templates_resent() { [ "$(relay_metric amt_ipfix_template_sends_total)" -gt "$sent" ]; }
wait_for 10 "templates sent to the listening collector" templates_resent
CTL=("$AMTCTL" --socket "$WORK/control.sock")

start_gateway 1 120 --output none
GW1=$LAST_PID
start_gateway 2 120 --output none --source "$SOURCE_IP" --group "$GROUP2"
GW2=$LAST_PID
sessions_open() { [ "$(relay_metric amt_ipfix_sessions)" -ge 2 ]; }
wait_for 20 "both gateways joined (two sessions)" sessions_open
# Each gateway's tunnel as the relay sees it (after NAT): the record must name this address:port.
"${CTL[@]}" --json tunnels >"$WORK/tunnels.json"
tunnel_of() {
    python3 -c 'import json,sys
for t in json.load(open(sys.argv[1]))["tunnels"]:
    if any(g["group"] == sys.argv[2] for g in t["groups"]): print(t["gateway"])' "$WORK/tunnels.json" "$1"
}
TUNNEL1=$(tunnel_of "$GROUP")
TUNNEL2=$(tunnel_of "$GROUP2")
[ -n "$TUNNEL1" ] && [ -n "$TUNNEL2" ] || fail "amtctl tunnels: $(cat "$WORK/tunnels.json")"
echo "tunnels: gateway 1 $TUNNEL1 on $GROUP, gateway 2 $TUNNEL2 on $GROUP2"

# 14 s of 50 packets/s on each channel; gateway 2 leaves in the middle (stopped, it leaves).
# (A process of its own: a backgrounded shell function would run this script's cleanup on exit.)
cat >"$WORK/sender.py" <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for i in range(700):
    for group in ("232.1.1.1", "232.1.1.2"):
        s.sendto(b"amt-ipfix-test %06d" % i, (group, 5000))
    time.sleep(0.02)
PY
spawn src sender python3 "$WORK/sender.py"
SENDER=$LAST_PID
wait_for 30 "gateway 2 receives" gateway_receives 2 100
kill -INT "$GW2"
wait_exit "$GW2" 10 "gateway 2 leaves and exits"
wait_exit "$SENDER" 60 "the streams end"
sleep 1  # the last packets reach gateway 1
# What a gateway received, from its exit summary (its status line is up to a second old).
gateway_total() { grep -ao "[0-9]* packets received" "$WORK/gateway$1.log" | tail -n1 | cut -d' ' -f1; }
gw2_packets=$(gateway_total 2)
[ "$gw2_packets" -gt 100 ] || fail "gateway 2 received only $gw2_packets packets before it left"
# The export as the operator sees it: records exported, none dropped, and the metric the alert
# AmtRelayIpfixRecordsDropped watches present in a real scrape.
in_ns relay curl -sf http://127.0.0.1:9850/metrics >"$WORK/scrape"
exported=$(awk '$1 == "amt_ipfix_records_exported_total" {print $2}' "$WORK/scrape")
dropped=$(awk '$1 ~ /^amt_ipfix_records_dropped_total/ {s += $2} END {print s + 0}' "$WORK/scrape")
[ "${exported%.*}" -gt 0 ] && [ "$dropped" = 0 ] ||
    fail "metrics: exported ${exported:-none}, dropped $dropped"
promtool check metrics <"$WORK/scrape" >"$WORK/promtool.log" 2>&1 ||
    fail "promtool check metrics: $(cat "$WORK/promtool.log")"
for reason in queue_full send_failed; do  # what AmtRelayIpfixRecordsDropped watches
    grep -q "^amt_ipfix_records_dropped_total{reason=\"$reason\"}" "$WORK/scrape" ||
        fail "no amt_ipfix_records_dropped_total{reason=\"$reason\"} in the scrape"
done
pass "amt_ipfix_records_exported_total $exported, amt_ipfix_records_dropped_total 0 (both reasons exported); promtool accepts the scrape"
stop_relay  # gateway 1's session ends with the relay (forced end)
kill -INT "$GW1"
wait_exit "$GW1" 10 "gateway 1 exits"
gw1_packets=$(gateway_total 1)
echo "gateways counted: 1: $gw1_packets, 2: $gw2_packets"
grep -q "ipfix: .* record(s) exported, 0 dropped (queue full), 0 not sent" "$WORK/relay.log" ||
    fail "relay's export summary: $(grep 'ipfix:' "$WORK/relay.log" | tail -n3)"
sleep 1
kill -TERM "$NFCAPD" "$TCPDUMP"
wait_exit "$NFCAPD" 10 "nfcapd writes its file"
wait_exit "$TCPDUMP" 10 "capture written"
pass "the relay exported every record it made; nfcapd and tcpdump stopped"

# ---- nfdump: what the collector stored ----
files=$(find "$WORK/flows" -name 'nfcapd.*' | sort)
[ -n "$files" ] || fail "nfcapd wrote no file: $(ls -R "$WORK/flows")"
for f in $files; do nfdump -r "$f" -o raw; done >"$WORK/nfdump.txt" 2>"$WORK/nfdump.log" ||
    fail "nfdump -r: $(cat "$WORK/nfdump.log")"
# One line per record: src dst xlate-src xlate-dst:port packets bytes end-reason first last (ms).
python3 - "$WORK/nfdump.txt" >"$WORK/records.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
for block in re.split(r"\n\s*\n", text):
    f = {}
    for line in block.splitlines():
        m = re.match(r"\s*([a-z][a-z0-9 _]*?)\s*=\s*(\S+)", line)
        if m and m.group(1) not in f:
            f[m.group(1)] = m.group(2)
    if "src addr" not in f:
        continue
    print(f.get("src addr"), f.get("dst addr"), f.get("src xlt ip", "?"),
          f.get("dst xlt ip", "?") + ":" + f.get("dst xlt port", "?"), f.get("in packets"),
          f.get("in bytes"), f.get("end reason", "?"), f.get("first"), f.get("last"))
PY
cat "$WORK/records.txt"
[ -s "$WORK/records.txt" ] || fail "no flow records in nfdump's output: $(head -n 40 "$WORK/nfdump.txt")"

# records GROUP: that channel's records.
records() { awk -v g="$1" '$2 == g' "$WORK/records.txt"; }
# check_session GROUP TUNNEL GATEWAY-COUNT LAST-REASON WHO: the channel's records all name the
# source, the relay and TUNNEL; they follow each other (each starts where the previous ended);
# all but the last end with 0x02 (active timeout), the last with LAST-REASON; their packets add
# up to what the gateway counted, ±2 (one packet in flight at each of the session's two edges).
check_session() {
    local group=$1 tunnel=$2 counted=$3 last_reason=$4 who=$5 problems
    records "$group" | sort -k8,8n >"$WORK/session.txt"
    [ -s "$WORK/session.txt" ] || fail "no record for $group"
    problems=$(awk -v s="$SOURCE_IP" -v r="$RELAY_IP" -v t="$tunnel" -v last="$last_reason" '
        $1 != s || $3 != r || $4 != t { print "names another tunnel or channel: " $0 }
        NR > 1 && $8 != end { print "does not start where the previous ended: " $0 }
        { end = $9; reason[NR] = $7 }
        END { for (i = 1; i < NR; ++i) if (reason[i] != "0x02") print "record " i " ends with " reason[i]
              if (reason[NR] != last) print "last record ends with " reason[NR] ", not " last }' "$WORK/session.txt")
    [ -z "$problems" ] || fail "$group: $problems"
    sum=$(awk '{s += $5} END {print s}' "$WORK/session.txt")
    [ $((sum - counted)) -le 2 ] && [ $((counted - sum)) -le 2 ] ||
        fail "$group: records add up to $sum packets, the gateway counted $counted (bound ±2)"
    pass "$who: ($SOURCE_IP, $group) to $tunnel from $RELAY_IP, last record $last_reason: $(wc -l <"$WORK/session.txt") record(s), $sum packets (gateway counted $counted)"
}
check_session "$GROUP2" "$TUNNEL2" "$gw2_packets" 0x03 "gateway 2 (left: end of flow)"
check_session "$GROUP" "$TUNNEL1" "$gw1_packets" 0x04 "gateway 1 (stayed: forced end at the relay's stop)"
# ---- tshark: every message decodes as IPFIX, nothing malformed ----
tshark -r "$WORK/ipfix.pcap" -d udp.port==4739,cflow -T fields -E occurrence=a -E separator='|' \
    -e cflow.od_id -e cflow.flowset_id -e cflow.flow_end_reason -e cflow.packets \
    -e cflow.mulpackets -e _ws.malformed -e _ws.expert.severity >"$WORK/tshark.txt" \
    2>"$WORK/tshark.log" || fail "tshark: $(cat "$WORK/tshark.log")"
messages=$(wc -l <"$WORK/tshark.txt")
[ "$messages" -gt 0 ] || fail "no IPFIX message captured"
# Expert severities: 6291456 warning (e.g. data without a template), 8388608 error.
flagged=$(awk -F'|' '$6 != "" || $7 ~ /6291456|8388608/' "$WORK/tshark.txt")
[ -z "$flagged" ] || fail "tshark flags: $(echo "$flagged" | head -n3)"
awk -F'|' '$1 != "42"' "$WORK/tshark.txt" | grep -q . && fail "a message with another observation domain than 42"
awk -F'|' '$2 ~ /(^|,)2(,|$)/' "$WORK/tshark.txt" | grep -q . || fail "tshark saw no template set (set id 2)"
# Every data record decoded: as many as nfdump stored, with the same packets; the replicas
# (postMCastPacketDeltaCount, which nfdump does not store) equal to them.
decoded=$(cut -d'|' -f4 "$WORK/tshark.txt" | tr ',' '\n' | grep -c .)
stored=$(wc -l <"$WORK/records.txt")
[ "$decoded" -eq "$stored" ] || fail "tshark decodes $decoded data records, nfdump stored $stored"
[ "$(cut -d'|' -f4 "$WORK/tshark.txt" | tr ',' '\n' | grep . | awk '{s += $1} END {print s}')" -eq \
  "$(awk '{s += $5} END {print s}' "$WORK/records.txt")" ] || fail "tshark's and nfdump's packet totals differ"
[ "$(cut -d'|' -f4 "$WORK/tshark.txt")" = "$(cut -d'|' -f5 "$WORK/tshark.txt")" ] ||
    fail "postMCastPacketDeltaCount differs from packetDeltaCount"
reasons=$(cut -d'|' -f3 "$WORK/tshark.txt" | tr ',' '\n' | grep . | sort | uniq -c | tr -s ' ' | tr '\n' ';')
pass "tshark decodes $messages IPFIX messages (templates and $decoded data records, domain 42) with no malformed or warning flag; flowEndReason counts: $reasons"
