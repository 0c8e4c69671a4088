#!/usr/bin/env bash
# What only a real PIM router can show of the relay's upstream behaviour: FRR pimd builds an
# (S,G) multicast route toward the relay from its IGMPv3 join (show ip mroute: in on r-src, out on
# r-rel), treats a non-232/8 group as ASM with the configured RP and holds the relay's (*,G) join
# in EXCLUDE mode, and prunes both after the leaves. Needs kernel multicast routing; where the
# kernel has none this test is skipped with the reason (the other system tests then judge the
# relay's reports on a snooping bridge and with tshark: upstream.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"

skip_unless_router() {
    local why
    why=$(router_unavailable_reason)
    [ -z "$why" ] || skip "PIM router checks need FRR pimd as a multicast router, and $why"
    [ "${AMT_UPSTREAM:-router}" = router ] || skip "AMT_UPSTREAM=$AMT_UPSTREAM asks for the switched upstream"
}
skip_unless_router

ASM_GROUP=239.1.1.1
PIM_RP=10.0.0.1
RELAY_EXTRA="asm = true"
build_topology
[ "$UPSTREAM" = router ] || fail "upstream.sh chose $UPSTREAM although the router can run"
vtysh_rtr "show ip pim group-type $ASM_GROUP" | grep -qi "ASM" || fail "pimd does not treat $ASM_GROUP as ASM"
pass "pimd: $ASM_GROUP is ASM (RP $PIM_RP), $GROUP is SSM"
start_video 40
VIDEO_GROUP=$ASM_GROUP start_video 40
start_gateway 1 15
GW1=$LAST_PID
start_gateway 2 15 --group "$ASM_GROUP" --output none
GW2=$LAST_PID
wait_for 30 "gateway 1 receives (S,G)" gateway_receives 1
wait_for 30 "gateway 2 receives (*,G)" gateway_receives 2
pass "both gateways receive: (S,G) and (*,G)"

vtysh_rtr "show ip mroute" >"$WORK/mroute.txt"
cat "$WORK/mroute.txt"
grep "$SOURCE_IP" "$WORK/mroute.txt" | grep "$GROUP" | grep -q "r-rel" ||
    fail "pimd has no (S,G) route toward the relay (r-rel)"
pass "pimd routes ($SOURCE_IP, $GROUP) out of r-rel toward the relay"
vtysh_rtr "show ip igmp sources" >"$WORK/igmp-sources.txt"
grep "$GROUP" "$WORK/igmp-sources.txt" | grep "$SOURCE_IP" | grep -q "Y" ||
    fail "pimd's IGMPv3 source state for ($SOURCE_IP, $GROUP) does not forward: $(cat "$WORK/igmp-sources.txt")"
pass "pimd's IGMPv3 source state for ($SOURCE_IP, $GROUP) forwards (Fwd Y)"
upstream_has "*" "$ASM_GROUP" || fail "pimd has no EXCLUDE-mode (*,$ASM_GROUP) membership"
pass "pimd holds the relay's (*,$ASM_GROUP) join in EXCLUDE mode"

wait_exit "$GW1" 30 "gateway 1 exit"
wait_exit "$GW2" 30 "gateway 2 exit"
wait_for 20 "pimd prunes ($SOURCE_IP, $GROUP)" rtr_lacks "show ip igmp sources" "$SOURCE_IP"
wait_for 20 "pimd drops (*,$ASM_GROUP)" rtr_lacks "show ip igmp groups" "$ASM_GROUP"
wait_for 20 "the (S,G) route toward the relay goes" bash -c \
    "! vtysh --vty_socket '$WORK/frr' -c 'show ip mroute' 2>/dev/null | grep '$GROUP' | grep -q r-rel"
pass "after the leaves pimd pruned the (S,G) and dropped the (*,G) toward the relay"
