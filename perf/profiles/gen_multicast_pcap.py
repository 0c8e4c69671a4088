#!/usr/bin/python3
"""Writes a pcap of native multicast streams for replay toward an AMT relay's upstream port
(tcpreplay, pktgen-dpdk -s P:file.pcap, TRex push_pcap, ...).

Many (S,G) channels, each with one packet size (a channel is a video stream: 1316 octets is seven
MPEG-TS packets), IPv4 (232/8 SSM) and/or IPv6 (ff3e::/96 SSM); packets are interleaved
round-robin over the channels and time-stamped at the requested total rate, so a replay tool that
honours timestamps (tcpreplay without --topspeed, TRex push_pcap with ipg_usec=None) sends at
that rate. Every payload starts with the channel number and a per-channel sequence number
(big-endian u32 each) so that a capture of the relay's output can be checked for loss.

Example: 1000 IPv4 channels of 1316-octet packets at 100 kpps for 1 s, and 1000 IPv6 ones:
    gen_multicast_pcap.py -o mc.pcap --channels 1000 --family both --size 1316 --rate 100000 --duration 1
"""
import argparse
import ipaddress
import struct
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1


def multicast_mac(group: ipaddress._BaseAddress) -> str:
    """RFC 1112 §6.4 (01:00:5e + low 23 bits) and RFC 2464 §7 (33:33 + low 32 bits)."""
    g = group.packed
    if group.version == 4:
        b = [0x01, 0x00, 0x5E, g[1] & 0x7F, g[2], g[3]]
    else:
        b = [0x33, 0x33, g[12], g[13], g[14], g[15]]
    return ":".join(f"{x:02x}" for x in b)


class Channel:
    def __init__(self, index, source, group, size, args):
        self.index = index
        self.source = source
        self.group = group
        self.size = size
        self.seq = 0
        l3 = (IP(src=str(source), dst=str(group), ttl=args.ttl, tos=args.tos)
              if group.version == 4 else
              IPv6(src=str(source), dst=str(group), hlim=args.ttl, tc=args.tos))
        self.head = Ether(src=args.src_mac, dst=multicast_mac(group)) / l3 / UDP(
            sport=args.sport, dport=args.dport)
        # One frame built by scapy (lengths, checksums); each packet patches its sequence number
        # into a copy and updates the UDP checksum incrementally (RFC 1624), which is far faster
        # than building every packet with scapy.
        payload = struct.pack("!II", index, 0) + bytes([0x47]) * (size - 8)
        self.template = bytes(self.head / payload)
        self.seq_at = len(self.template) - size + 4
        self.csum_at = self.seq_at - 4 - 8 + 6
        self.csum = struct.unpack_from("!H", self.template, self.csum_at)[0]

    def next_frame(self) -> bytes:
        frame = bytearray(self.template)
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        struct.pack_into("!I", frame, self.seq_at, seq)
        # The template's sequence number is 0, so the new sum is ~HC + hi + lo (folded).
        s = (~self.csum & 0xFFFF) + (seq >> 16) + (seq & 0xFFFF)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        c = ~s & 0xFFFF
        struct.pack_into("!H", frame, self.csum_at, c if c != 0 else 0xFFFF)
        return bytes(frame)


def build_channels(args):
    families = {"4": [4], "6": [6], "both": [4, 6]}[args.family]
    channels = []
    for i in range(args.channels):
        version = families[i % len(families)]
        n = i // len(families)
        if version == 4:
            group = ipaddress.IPv4Address(args.group4) + n
            source = ipaddress.IPv4Address(args.source4) + (n % args.sources)
            if not group.is_multicast:
                sys.exit(f"group {group} is not multicast: fewer --channels or another --group4")
        else:
            group = ipaddress.IPv6Address(args.group6) + n
            source = ipaddress.IPv6Address(args.source6) + (n % args.sources)
        size = args.size[i % len(args.size)]
        channels.append(Channel(i, source, group, size, args))
    return channels


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, help="pcap file to write")
    p.add_argument("--channels", type=int, default=16, help="number of (S,G) channels")
    p.add_argument("--sources", type=int, default=1,
                   help="distinct sources; channel n uses source base + n %% SOURCES")
    p.add_argument("--family", choices=["4", "6", "both"], default="4",
                   help="IPv4, IPv6, or both (channels alternate)")
    p.add_argument("--size", type=int, nargs="+", default=[1316],
                   help="UDP payload octets; several sizes are given to channels in turn")
    p.add_argument("--rate", type=float, default=10000.0,
                   help="total packets per second (the timestamps' spacing)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--count", type=int, help="packets to write")
    g.add_argument("--duration", type=float, default=1.0, help="seconds of traffic to write")
    p.add_argument("--group4", default="232.1.0.1", help="first IPv4 group (SSM: 232/8)")
    p.add_argument("--source4", default="198.51.100.1", help="first IPv4 source")
    p.add_argument("--group6", default="ff3e::8000:1", help="first IPv6 group (SSM: ff3x::/96)")
    p.add_argument("--source6", default="2001:db8:5::1", help="first IPv6 source")
    p.add_argument("--src-mac", default="02:00:00:00:00:01", help="source MAC (the router)")
    p.add_argument("--sport", type=int, default=5000)
    p.add_argument("--dport", type=int, default=5000)
    p.add_argument("--ttl", type=int, default=32, help="IPv4 TTL / IPv6 hop limit (> 1)")
    p.add_argument("--tos", type=int, default=0, help="IPv4 TOS / IPv6 traffic class")
    p.add_argument("--start", type=float, default=1_700_000_000.0,
                   help="timestamp of the first packet (epoch seconds)")
    args = p.parse_args()
    if args.channels < 1 or args.sources < 1 or args.rate <= 0:
        p.error("--channels, --sources and --rate must be positive")
    if any(s < 8 or s > 8952 for s in args.size):
        p.error("--size must be 8..8952 (the payload carries two u32 counters)")
    count = args.count if args.count is not None else int(round(args.rate * args.duration))

    channels = build_channels(args)
    with open(args.output, "wb") as out:
        out.write(struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for i in range(count):
            frame = channels[i % len(channels)].next_frame()
            # From the packet index, not accumulated: no drift over long files.
            t_us = int(round(args.start * 1e6)) + int(round(i * 1e6 / args.rate))
            out.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame),
                                  len(frame)))
            out.write(frame)
    print(f"{args.output}: {count} packets, {len(channels)} channels, {args.rate:g} pps",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
