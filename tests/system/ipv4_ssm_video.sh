#!/usr/bin/env bash
# IPv4 SSM end to end with real parts: ffmpeg → FRR pimd (IGMPv3/SSM) → amtrelayd (DPDK
# af_packet) → nftables NAT → two amtgw behind one NAT address. Checks: the relay's IGMPv3 join
# makes pimd forward (S,G); both gateways (same public IP, different ports) get the stream and
# ffprobe decodes it without continuity errors; when one leaves its stream stops while the
# other's continues; after the last leave the router prunes the (S,G).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

build_topology
start_video 40
start_gateway 1 30
GW1=$LAST_PID
start_gateway 2 12
GW2=$LAST_PID
wait_for 15 "gateway 1 receives" gateway_receives 1
wait_for 15 "gateway 2 receives" gateway_receives 2
pass "both gateways behind one NAT address receive"
rtr_shows "show ip igmp sources" "$SOURCE_IP" || fail "pimd has no IGMPv3 source state"
pass "FRR pimd has the relay's (S,G) join"

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
# After the last leave, the relay leaves upstream and pimd prunes (≈ 2 s with these timers).
wait_pruned 15
pass "after the last leave the router dropped the (S,G) join"
