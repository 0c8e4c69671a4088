#!/usr/bin/env bash
# ASM (*,G) end to end: a gateway joins 239.1.1.1 from any source (amtgw without --source); the
# relay (relay.asm = true) sends IGMPv3 TO_EX{} upstream; FRR pimd (RP on the router itself)
# forwards the source's stream; the gateway's capture decodes. When the gateway leaves, the relay
# sends TO_IN{} and pimd drops the group.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

GROUP=239.1.1.1
PIM_RP=10.0.0.1
RELAY_EXTRA="asm = true"
build_topology
vtysh_rtr "show ip pim group-type $GROUP" | grep -qi "ASM" || fail "pimd does not treat $GROUP as ASM"
start_video 40
start_gateway 1 15 --group "$GROUP"
GW1=$LAST_PID
wait_for 30 "gateway receives (*,G)" gateway_receives 1
pass "gateway joined (*,$GROUP) and receives"
vtysh_rtr "show ip igmp groups" >"$WORK/igmp-groups.log"
grep "$GROUP" "$WORK/igmp-groups.log" | grep -qi "EXCL" ||
    fail "pimd has no EXCLUDE-mode (*,G) membership: $(cat "$WORK/igmp-groups.log")"
pass "FRR pimd has the relay's IGMPv3 (*,$GROUP) join (EXCLUDE mode)"

wait_exit "$GW1" 30 "gateway exit"
check_capture 1
pass "the (*,G) capture decodes (ffprobe), no continuity errors"
wait_for 20 "pimd drops (*,$GROUP)" rtr_lacks "show ip igmp groups" "$GROUP"
pass "after the leave (TO_IN{}) the router dropped the group"
