#!/usr/bin/env bash
# Issue 18, item 7: on net_af_packet the frames the kernel drops because the PMD socket's ring
# is full (the relay is behind) count in amt_port_rx_missed_total; DPDK 22.11's PMD leaves
# imissed at 0, so the relay reads the sockets' PACKET_STATISTICS itself.
# Overrun made deterministic: the relay is paused (SIGSTOP) while a peer sends FRAMES frames, so
# each socket's ring (framecnt = 64 frames) fills and the kernel drops the rest; after SIGCONT the
# relay reads what its rings hold. Then every frame that reached the interface (its kernel
# rx_packets) is either received (amt_port_rx_packets_total) or missed, give or take 2 frames.
source "$(dirname "$0")/lib.sh"

FRAMES=3000
make_ns relay peer
for n in relay peer; do
    in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
link_ns relay r0 peer p0

start_one_port_relay framecnt=64 <<T
[downstream]
next_hop_mac = "02:00:00:00:00:02"
T

metric() {
    in_ns relay curl -sf http://127.0.0.1:9850/metrics |
        awk -v m="$1" '$1 ~ "^" m "[{]" && $1 ~ "port=\"downstream\"" {s += $2} END {printf "%d", s}'
}
iface_rx() { in_ns relay cat /sys/class/net/r0/statistics/rx_packets; }

rx0=$(metric amt_port_rx_packets_total)
missed0=$(metric amt_port_rx_missed_total)
kernel0=$(iface_rx)

kill -STOP "$RELAY_PID"
# Broadcast frames of a local experimental ethertype: received and dropped by the relay, never
# answered, nothing else on the link.
in_ns peer /usr/bin/python3 - "$FRAMES" <<'PY'
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("p0", 0))
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x88\xb5" + b"amt-missed-test".ljust(46, b".")
for _ in range(int(sys.argv[1])):
    s.send(frame)
PY
kernel=$(($(iface_rx) - kernel0))
kill -CONT "$RELAY_PID"
echo "frames sent $FRAMES, reached r0 $kernel"
[ "$kernel" -ge $((FRAMES - 2)) ] || fail "only $kernel of $FRAMES frames reached the relay's interface"

accounted() { [ $(($(metric amt_port_rx_packets_total) - rx0 + $(metric amt_port_rx_missed_total) - missed0)) -ge "$kernel" ]; }
wait_for 20 "received + missed to reach $kernel" accounted || true
rx=$(($(metric amt_port_rx_packets_total) - rx0))
missed=$(($(metric amt_port_rx_missed_total) - missed0))
echo "relay received $rx, missed $missed (sum $((rx + missed)))"
[ "$missed" -gt 0 ] || fail "amt_port_rx_missed_total stayed 0 while the relay was paused"
diff=$((rx + missed - kernel))
[ "${diff#-}" -le 2 ] || fail "received $rx + missed $missed = $((rx + missed)), $kernel reached the interface"
pass "af_packet overrun: $missed of $kernel frames counted as missed, $rx received; the sum matches"
