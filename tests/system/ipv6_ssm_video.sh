#!/usr/bin/env bash
# IPv6 outside and inside: two gateways behind NAT66 reach the relay over IPv6 and receive an
# IPv6 SSM group (ff3e::/32) from an IPv6 source (ffmpeg). Upstream is a Linux bridge with MLDv2
# snooping (no pim6d in Debian 12: upstream.sh). Checks: the relay sends an MLDv2 report for
# (S,G) upstream from a link-local address (captured on the bridge port, decoded by tshark) and
# the bridge learns it; both gateways receive; gateway 1's capture decodes (ffprobe) without
# continuity errors; the relay answers the querier's general queries; after both leave, the relay
# sends BLOCK and the bridge forgets the group.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

build_topology_v6
start_upstream_capture
start_video 40
start_gateway 1 15
GW1=$LAST_PID
start_gateway 2 15 --output none
GW2=$LAST_PID
wait_for 30 "gateway 1 receives" gateway_receives 1
wait_for 30 "gateway 2 receives" gateway_receives 2
pass "both gateways behind NAT66 receive over IPv6"
upstream_has "$SOURCE_IP" "$GROUP" || fail "the bridge has no MLD membership for ($SOURCE_IP, $GROUP): $(switch_mdb)"
pass "the bridge learned ($SOURCE_IP, $GROUP) from the relay's report"

wait_exit "$GW1" 30 "gateway 1 exit"
wait_exit "$GW2" 30 "gateway 2 exit"
check_capture 1
pass "gateway 1's capture decodes (ffprobe), no continuity errors"
wait_upstream_left 20 "$GROUP"
pass "after the leaves the bridge dropped the group"

stop_upstream_capture
expect_report ALLOW "$SOURCE_IP" "$GROUP" "join, from link-local"
expect_report BLOCK "$SOURCE_IP" "$GROUP" "leave, from link-local"
expect_query_answered "$GROUP"
awk '$3 == "report" && $4 == "ALLOW" && $2 !~ /^fe80:/ {exit 1}' "$WORK/upstream.txt" ||
    fail "an MLDv2 report not from a link-local address"
pass "every MLDv2 report of the relay came from a link-local address (RFC 3810 §5)"
