#!/usr/bin/env bash
# System smoke test: amtrelayd on a DPDK af_packet port in one namespace, amtgw (kernel sockets)
# in another; the gateway's namespace also hosts the multicast source. Checks the handshake, that
# every datagram sent after the join arrives exactly once and intact, and that after the
# gateway leaves the stream stops.
source "$(dirname "$0")/lib.sh"

make_ns relay gw
link_ns relay r0 gw g0
in_ns gw ip addr add 192.0.2.2/24 dev g0
in_ns gw ip route add 232.0.0.0/8 dev g0
in_ns relay sysctl -qw net.ipv6.conf.all.disable_ipv6=1

start_one_port_relay <<T
[downstream]
next_hop = "192.0.2.2"
[upstream]
source_prefixes = ["192.0.2.2/32"]  # one port: the only host whose multicast is replicated
T

spawn gw gateway "$AMTGW" --relay 192.0.2.1 --source 192.0.2.2 --group 232.1.1.1 --port 5000 \
    --output "$WORK/stream.bin" --duration 12
wait_for 15 "gateway joined" grep -q "joined" "$WORK/gateway.log"
pass "handshake done, gateway joined"

send_multicast gw 232.1.1.1 5000 50
sleep 1
expect_stream_delivered "${PIDS[1]}" 50
for i in 000000 000025 000049; do
    grep -q "amt-system-test $i" "$WORK/stream.bin" || fail "datagram $i missing or corrupted"
done
pass "50 of 50 datagrams delivered intact"

# The gateway left: the relay stops replicating at once.
in_ns gw timeout 3 tcpdump -nni g0 -c 1 udp port 2268 and src 192.0.2.1 >"$WORK/after-leave.log" 2>&1 &
tcpdump_pid=$!
sleep 0.5
send_multicast gw 232.1.1.1 5000 20
if wait "$tcpdump_pid"; then
    fail "the relay still sends Data after the gateway left"
fi
pass "no Data after the leave"
