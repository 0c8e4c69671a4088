#!/usr/bin/env bash
# IPv4 SSM end to end with real parts: ffmpeg → upstream (FRR pimd, or an IGMPv3-snooping
# bridge where the kernel cannot route multicast: upstream.sh) → amtrelayd (DPDK af_packet) →
# nftables NAT → two amtgw behind one NAT address. Checks: the relay's IGMPv3 join makes the
# upstream forward (S,G); both gateways (same public IP, different ports) get the stream and
# ffprobe decodes it without continuity errors; when one leaves the other's continues; after the
# last leave the upstream drops the (S,G). On the relay's upstream link tshark sees the IGMPv3
# ALLOW at the join, the BLOCK at the leave and the answers to the querier's general queries.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

build_topology
start_upstream_capture
start_video 40
# Before any join the upstream sends the relay nothing (no router forwarding, no switch flooding).
sleep 3
unjoined=$(relay_metric amt_dropped_packets_total 'reason="no_flow"')
[ "$unjoined" -eq 0 ] || fail "the relay got $unjoined multicast packets before any join: the upstream floods"
pass "nothing reaches the relay from $(upstream_name) before a join (no_flow drops 0)"
start_gateway 1 30
GW1=$LAST_PID
start_gateway 2 12
GW2=$LAST_PID
wait_for 15 "gateway 1 receives" gateway_receives 1
wait_for 15 "gateway 2 receives" gateway_receives 2
pass "both gateways behind one NAT address receive"
upstream_has "$SOURCE_IP" "$GROUP" || fail "$(upstream_name) has no state for the relay's (S,G) join"
pass "$(upstream_name) has the relay's ($SOURCE_IP, $GROUP) join"

# Gateway 2 stops after 12 s (it leaves); gateway 1 goes on.
wait_exit "$GW2" 20 "gateway 2 exit"
check_capture 2
pass "gateway 2's capture decodes (ffprobe), no continuity errors"
size_after_leave=$(stat -c %s "$WORK/gw2.ts")
before=$(gateway_packets 1)
sleep 3
after=$(gateway_packets 1)
[ "$after" -gt "$before" ] || fail "gateway 1's stream stopped when gateway 2 left ($before → $after)"
pass "gateway 1 keeps receiving after gateway 2 left"

wait_exit "$GW1" 30 "gateway 1 exit"
check_capture 1
# After the last leave, the relay leaves upstream and the upstream drops the (S,G) (≈ 2 s).
wait_upstream_left 15 "$GROUP"
pass "after the last leave $(upstream_name) dropped the (S,G) join"
stop_upstream_capture
expect_report ALLOW "$SOURCE_IP" "$GROUP" "join"
expect_report BLOCK "$SOURCE_IP" "$GROUP" "leave after the last gateway"
expect_query_answered "$GROUP"
