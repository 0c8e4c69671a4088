-- pktgen-dpdk: native IPv4 multicast toward an AMT relay's upstream port, in range mode.
--
--   pktgen -l 0-2 -n 4 -a 0000:3b:00.0 -- -P -m "[1:2].0" -f perf/profiles/pktgen_multicast.lua
--
-- Sends GROUPS channels (S0, 232.1.0.1 + n) round-robin at RATE % of the line, PKT_SIZE-octet
-- frames. The destination MAC follows the group (01:00:5e + its low 23 bits): both ranges have
-- the same length and step, so they stay in lockstep. For IPv6 channels, several sizes or exact
-- timing, replay a pcap from gen_multicast_pcap.py instead (pktgen -s 0:file.pcap, README.md).
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local port = "0"
local GROUPS = 1000            -- ≤ 65535: only the group's last two octets vary
local PKT_SIZE = 1358          -- frame without FCS: 14 + 20 + 8 + 1316 (seven MPEG-TS packets)
local RATE = 10                -- percent of line rate (10 % of 100GbE ≈ 0.9 Mpps at 1358 B)
local SOURCE = "198.51.100.1"
local SRC_MAC = "02:00:00:00:00:01"

local last = GROUPS - 1
local third, fourth = math.floor((1 + last) / 256), (1 + last) % 256
local last_group = string.format("232.1.%d.%d", third, fourth)
local last_mac = string.format("01:00:5e:01:%02x:%02x", third, fourth)

pktgen.set_proto(port, "udp")
pktgen.set(port, "rate", RATE)

pktgen.range.src_mac(port, "start", SRC_MAC)
pktgen.range.dst_mac(port, "start", "01:00:5e:01:00:01")
pktgen.range.dst_mac(port, "inc", "00:00:00:00:00:01")
pktgen.range.dst_mac(port, "min", "01:00:5e:01:00:01")
pktgen.range.dst_mac(port, "max", last_mac)

pktgen.range.dst_ip(port, "start", "232.1.0.1")
pktgen.range.dst_ip(port, "inc", "0.0.0.1")
pktgen.range.dst_ip(port, "min", "232.1.0.1")
pktgen.range.dst_ip(port, "max", last_group)

pktgen.range.src_ip(port, "start", SOURCE)
pktgen.range.src_ip(port, "inc", "0.0.0.0")
pktgen.range.src_ip(port, "min", SOURCE)
pktgen.range.src_ip(port, "max", SOURCE)

pktgen.range.src_port(port, "start", 5000)
pktgen.range.src_port(port, "inc", 0)
pktgen.range.src_port(port, "min", 5000)
pktgen.range.src_port(port, "max", 5000)
pktgen.range.dst_port(port, "start", 5000)
pktgen.range.dst_port(port, "inc", 0)
pktgen.range.dst_port(port, "min", 5000)
pktgen.range.dst_port(port, "max", 5000)

pktgen.range.ttl(port, "start", 32)
pktgen.range.ttl(port, "inc", 0)
pktgen.range.ttl(port, "min", 32)
pktgen.range.ttl(port, "max", 32)

pktgen.range.pkt_size(port, "start", PKT_SIZE)
pktgen.range.pkt_size(port, "inc", 0)
pktgen.range.pkt_size(port, "min", PKT_SIZE)
pktgen.range.pkt_size(port, "max", PKT_SIZE)

pktgen.set_range(port, "on")
pktgen.start(port)
printf("amt multicast: %d groups 232.1.0.1..%s from %s, %d B frames at %d%%\n",
       GROUPS, last_group, SOURCE, PKT_SIZE, RATE)
