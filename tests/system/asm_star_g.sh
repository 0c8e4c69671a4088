#!/usr/bin/env bash
# ASM (*,G) end to end: a gateway joins 239.1.1.1 from any source (amtgw without --source); the
# relay (relay.asm = true) sends IGMPv3 TO_EX{} upstream (seen by tshark on its upstream link);
# the upstream (FRR pimd with the RP on the router itself, or the snooping bridge: upstream.sh)
# holds an EXCLUDE-mode membership and forwards the source's stream; the gateway's capture
# decodes. When the gateway leaves, the relay sends TO_IN{} and the upstream drops the group.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

GROUP=239.1.1.1
PIM_RP=10.0.0.1
RELAY_EXTRA="asm = true"
build_topology
if [ "$UPSTREAM" = router ]; then
    vtysh_rtr "show ip pim group-type $GROUP" | grep -qi "ASM" || fail "pimd does not treat $GROUP as ASM"
fi
start_upstream_capture
start_video 40
start_gateway 1 15 --group "$GROUP"
GW1=$LAST_PID
wait_for 30 "gateway receives (*,G)" gateway_receives 1
pass "gateway joined (*,$GROUP) and receives"
upstream_has "*" "$GROUP" || fail "$(upstream_name) has no EXCLUDE-mode (*,$GROUP) membership"
pass "$(upstream_name) has the relay's IGMPv3 (*,$GROUP) join (EXCLUDE mode)"

wait_exit "$GW1" 30 "gateway exit"
check_capture 1
pass "the (*,G) capture decodes (ffprobe), no continuity errors"
wait_upstream_left 20 "$GROUP"
pass "after the leave (TO_IN{}) $(upstream_name) dropped the group"
stop_upstream_capture
expect_report TO_EX - "$GROUP" "(*,G) join: EXCLUDE no sources"
expect_report TO_IN - "$GROUP" "(*,G) leave: INCLUDE no sources"
expect_query_answered "$GROUP"
