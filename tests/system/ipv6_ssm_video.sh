#!/usr/bin/env bash
# IPv6 outside and inside: two gateways behind NAT66 reach the relay over IPv6 and receive an
# IPv6 SSM group (ff3e::/32) from an IPv6 source (ffmpeg). Upstream is a Linux bridge with MLDv2
# snooping (no pim6d in Debian 12). Checks: the relay sends an MLDv2 report for (S,G) upstream
# from a link-local address (captured on the bridge port) and the bridge learns it; both gateways receive; gateway 1's
# capture decodes (ffprobe) without continuity errors; after both leave, the bridge forgets the
# group.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

build_topology_v6
# MLD comes after a Hop-by-Hop header, which tcpdump's "icmp6" does not look past.
spawn sw tcpdump tcpdump -nni sw-rel -U -w "$WORK/upstream.pcap" ip6 and not udp
TCPDUMP=$LAST_PID
wait_for 10 "capture running" grep -q "listening on" "$WORK/tcpdump.log"
start_video 40
start_gateway 1 15
GW1=$LAST_PID
start_gateway 2 15 --output none
GW2=$LAST_PID
wait_for 30 "gateway 1 receives" gateway_receives 1
wait_for 30 "gateway 2 receives" gateway_receives 2
pass "both gateways behind NAT66 receive over IPv6"
in_ns sw bridge mdb show >"$WORK/mdb.log"
grep -q "$GROUP" "$WORK/mdb.log" || fail "the bridge has no MLD membership for $GROUP: $(cat "$WORK/mdb.log")"
pass "the bridge learned $GROUP from the relay's report"

wait_exit "$GW1" 30 "gateway 1 exit"
wait_exit "$GW2" 30 "gateway 2 exit"
check_capture 1
pass "gateway 1's capture decodes (ffprobe), no continuity errors"
wait_for 20 "the bridge forgets $GROUP" bash -c "! ip netns exec $(ns sw) bridge mdb show | grep -q '$GROUP'"
pass "after the leaves the bridge dropped the group"

kill -TERM "$TCPDUMP"
wait_exit "$TCPDUMP" 10 "capture written"
# ICMPv6 143 = MLDv2 report; record types 5 ALLOW (join) and 6 BLOCK (leave), with source S.
tshark -r "$WORK/upstream.pcap" -Y "icmpv6.type == 143" -T fields -e ipv6.src \
    -e icmpv6.mldr.mar.record_type -e icmpv6.mldr.mar.multicast_address \
    -e icmpv6.mldr.mar.source_address >"$WORK/mld.txt" 2>"$WORK/tshark.log" ||
    fail "tshark cannot read the capture: $(cat "$WORK/tshark.log")"
cat "$WORK/mld.txt"
# Columns: source, record type, group, source address. RFC 3810 §5: reports from link-local only.
reports() { awk -v t="$1" -v g="$GROUP" -v s="$SOURCE_IP" '$2 == t && $3 == g && $4 == s' "$WORK/mld.txt"; }
[ -n "$(reports 5)" ] || fail "no MLDv2 ALLOW ($SOURCE_IP, $GROUP) report from the relay upstream"
[ -n "$(reports 6)" ] || fail "no MLDv2 BLOCK ($SOURCE_IP, $GROUP) report from the relay upstream"
awk '$1 !~ /^fe80:/ {exit 1}' "$WORK/mld.txt" || fail "MLDv2 reports not from a link-local address"
pass "the relay sent MLDv2 ALLOW and BLOCK for ($SOURCE_IP, $GROUP) upstream, from link-local"
