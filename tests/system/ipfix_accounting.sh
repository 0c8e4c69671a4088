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
active_timeout = 4"
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
CTL=("$AMTCTL" --socket "$WORK/control.sock")

start_gateway 1 120 --output none
GW1=$LAST_PID
start_gateway 2 9 --output none --source "$SOURCE_IP" --group "$GROUP2"
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

# 14 s of 50 packets/s on each channel; gateway 2 leaves in the middle (its --duration).
send_multicast src "$GROUP $GROUP2" 5000 700 0.02 &
SENDER=$!
PIDS+=("$SENDER")
wait_exit "$GW2" 40 "gateway 2 leaves"
wait_exit "$SENDER" 60 "the streams end"
sleep 1  # the last packets reach gateway 1
gw2_packets=$(gateway_packets 2)
[ "$gw2_packets" -gt 50 ] || fail "gateway 2 received only $gw2_packets packets before it left"
stop_relay  # gateway 1's session ends with the relay (forced end)
kill -INT "$GW1"
wait_exit "$GW1" 10 "gateway 1 exits"
gw1_packets=$(gateway_packets 1)
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
    print(f.get("src addr"), f.get("dst addr"), f.get("src xlt ip", f.get("xlt src ip", "?")),
          f.get("dst xlt ip", f.get("xlt dst ip", "?")) + ":" + f.get("dst xlt port", f.get("xlt dst port", "?")),
          f.get("packets"), f.get("bytes"), f.get("end reason", "?"), f.get("first"), f.get("last"))
PY
cat "$WORK/records.txt"
[ -s "$WORK/records.txt" ] || fail "no flow records in nfdump's output: $(head -n 40 "$WORK/nfdump.txt")"

# records GROUP: that channel's records.
records() { awk -v g="$1" '$2 == g' "$WORK/records.txt"; }
[ "$(records "$GROUP2" | wc -l)" -eq 1 ] || fail "gateway 2: expected one record, got: $(records "$GROUP2")"
read -r src dst xsrc xdst packets _ reason _ <<<"$(records "$GROUP2")"
[ "$src" = "$SOURCE_IP" ] && [ "$xsrc" = "$RELAY_IP" ] && [ "$xdst" = "$TUNNEL2" ] ||
    fail "gateway 2's record names $src → $dst via $xsrc → $xdst (want $SOURCE_IP → $GROUP2 via $RELAY_IP → $TUNNEL2)"
[ $((packets - gw2_packets)) -le 2 ] && [ $((gw2_packets - packets)) -le 2 ] ||
    fail "gateway 2: record says $packets packets, the gateway counted $gw2_packets (bound ±2)"
pass "gateway 2: one record, ($SOURCE_IP, $GROUP2) to $TUNNEL2 from $RELAY_IP, $packets packets (gateway: $gw2_packets)"

gw1_records=$(records "$GROUP" | wc -l)
[ "$gw1_records" -ge 3 ] || fail "gateway 1: expected active-timeout records and a last one, got: $(records "$GROUP")"
bad=$(records "$GROUP" | awk -v s="$SOURCE_IP" -v r="$RELAY_IP" -v t="$TUNNEL1" '$1 != s || $3 != r || $4 != t')
[ -z "$bad" ] || fail "gateway 1's records name another tunnel or channel: $bad"
sum=$(records "$GROUP" | awk '{s += $5} END {print s}')
[ $((sum - gw1_packets)) -le 2 ] && [ $((gw1_packets - sum)) -le 2 ] ||
    fail "gateway 1: records add up to $sum packets, the gateway counted $gw1_packets (bound ±2)"
pass "gateway 1: $gw1_records records for ($SOURCE_IP, $GROUP) to $TUNNEL1 adding up to $sum packets (gateway: $gw1_packets)"

# ---- tshark: every message decodes as IPFIX, nothing malformed ----
tshark -r "$WORK/ipfix.pcap" -d udp.port==4739,cflow -T fields -E occurrence=a -E separator='|' \
    -e cflow.od_id -e cflow.flowset_id -e cflow.template_id -e cflow.flowendreason \
    -e cflow.postnatdstv4addr -e cflow.postnaptdestinationtransportport -e cflow.packets64 \
    -e _ws.malformed -e _ws.expert.severity >"$WORK/tshark.txt" 2>"$WORK/tshark.log" ||
    fail "tshark: $(cat "$WORK/tshark.log")"
messages=$(wc -l <"$WORK/tshark.txt")
[ "$messages" -gt 0 ] || fail "no IPFIX message captured"
malformed=$(awk -F'|' '$8 != "" || $9 ~ /8388608|6291456/' "$WORK/tshark.txt" | wc -l)
[ "$malformed" -eq 0 ] || fail "tshark flags $malformed message(s): $(awk -F'|' '$8 != "" || $9 != ""' "$WORK/tshark.txt" | head -n3)"
awk -F'|' '$1 != "42"' "$WORK/tshark.txt" | grep -q . && fail "a message with another observation domain than 42"
grep -q '|2|' "$WORK/tshark.txt" || fail "tshark saw no template set (set id 2)"
reasons=$(cut -d'|' -f4 "$WORK/tshark.txt" | tr ',' '\n' | grep -v '^$' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
echo "flowEndReason as tshark decodes it (count value): $reasons"
for r in 2 3 4; do
    cut -d'|' -f4 "$WORK/tshark.txt" | tr ',' '\n' | grep -qx "$r" || fail "no record with flowEndReason $r (tshark: $reasons)"
done
pass "tshark decodes $messages IPFIX messages (templates and data, domain 42) with no malformed or error flag; end reasons 2 (active), 3 (leave), 4 (relay stop) present"
