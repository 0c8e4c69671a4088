#!/usr/bin/env bash
# Gateways on the relay's own link (issue 18, item 9): amtrelayd on a DPDK af_packet port into a
# bridge with two kernel-stack gateway namespaces on the relay's subnet (no router between). With
# downstream.prefixes the relay resolves each gateway's MAC with ARP (the gateways' kernels
# answer) and both receive the stream; without it every replica would go to the one next-hop MAC
# and the second gateway would receive nothing. gw1 also hosts the multicast source.
#
#   [relay] r0 ──── l-rel [lan: br0] ─┬─ l-gw1 ──── g0 [gw1] 192.0.2.2 (and the source)
#   192.0.2.1                         └─ l-gw2 ──── g0 [gw2] 192.0.2.3
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topology.sh"  # relay_metric
need bridge  # the gateways and the relay share one bridged segment

make_ns relay lan gw1 gw2
in_ns lan ip link add br0 type bridge mcast_snooping 0
in_ns lan ip link set br0 up
link_ns relay r0 lan l-rel
link_ns gw1 g0 lan l-gw1
link_ns gw2 g0 lan l-gw2
for port in l-rel l-gw1 l-gw2; do in_ns lan ip link set "$port" master br0; done
in_ns gw1 ip addr add 192.0.2.2/24 dev g0
in_ns gw2 ip addr add 192.0.2.3/24 dev g0
in_ns gw1 ip route add 232.0.0.0/8 dev g0
in_ns relay sysctl -qw net.ipv6.conf.all.disable_ipv6=1

start_one_port_relay <<T
[downstream]
prefixes = ["192.0.2.0/24"]
[upstream]
source_prefixes = ["192.0.2.2/32"]  # one port: the only host whose multicast is replicated
[metrics]
listen = "127.0.0.1:9850"
[control]
socket = "${WORK}/control.sock"
T
grep -q "gateways on the relay.s link (192.0.2.0/24) are resolved with ARP" "$WORK/relay.log" ||
    fail "no start-up line about the on-link prefixes"

for g in 1 2; do
    spawn "gw$g" "gateway$g" "$AMTGW" --relay 192.0.2.1 --source 192.0.2.2 --group 232.1.1.1 \
        --port 5000 --output "$WORK/stream$g.bin" --duration 20
    eval "GW${g}_PID=$LAST_PID"
done
for g in 1 2; do wait_for 15 "gateway $g joined" grep -q "joined" "$WORK/gateway$g.log"; done
both_reachable() { [ "$(relay_metric amt_neighbors 'state="reachable"')" -eq 2 ]; }
wait_for 10 "both gateways resolved (amt_neighbors{state=reachable} = 2)" both_reachable
pass "both on-link gateways joined and resolved by ARP"

send_multicast gw1 232.1.1.1 5000 50
sleep 1
for g in 1 2; do
    pid_var="GW${g}_PID"
    kill -INT "${!pid_var}"
    wait_for 5 "gateway $g exit" bash -c "! kill -0 ${!pid_var} 2>/dev/null"
    received=$(grep -ao "amt-system-test [0-9]*" "$WORK/stream$g.bin" | sort -u | wc -l)
    copies=$(grep -ao "amt-system-test [0-9]*" "$WORK/stream$g.bin" | wc -l)
    [ "$copies" -eq "$received" ] || fail "gateway $g: $copies datagrams for $received distinct ones"
    [ "$received" -eq 50 ] || fail "gateway $g received $received of 50 datagrams"
done
pass "50 of 50 datagrams delivered to each on-link gateway"

sent=$(relay_metric amt_neighbor_messages_total 'direction="sent".*type="arp_request"')
[ "$sent" -ge 2 ] || fail "amt_neighbor_messages_total{arp_request, sent} = $sent, expected >= 2"
unresolved=$(relay_metric amt_dropped_packets_total 'reason="neighbor_unresolved"')
[ "$unresolved" -eq 0 ] || fail "$unresolved replicas withheld after resolution"
pass "metrics: $sent ARP requests sent, no replica withheld"
