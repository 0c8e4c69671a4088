#!/usr/bin/python3
"""Smoke test of the load profiles (meson suite 'perf'): generates a tiny pcap with both families
and two sizes and reads it back with scapy (count, addresses, sizes, timestamps, sequence numbers,
checksums), then byte-compiles the TRex profile (TRex itself is not installed here)."""
import os
import py_compile
import struct
import subprocess
import sys
import tempfile

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

HERE = os.path.dirname(os.path.abspath(__file__))


def check_pcap(path: str, count: int, rate: float, channels: int) -> None:
    packets = rdpcap(path)
    assert len(packets) == count, f"{len(packets)} packets, expected {count}"
    seen_families, sizes, next_seq = set(), set(), {}
    for i, p in enumerate(packets):
        l3 = p[IP] if IP in p else p[IPv6]
        seen_families.add(4 if IP in p else 6)
        if IP in p:
            assert l3.dst.startswith("232."), l3.dst
        else:
            assert l3.dst.startswith("ff3e::"), l3.dst
        udp = p[UDP]
        payload = bytes(udp.payload)
        sizes.add(len(payload))
        channel, seq = struct.unpack_from("!II", payload)
        assert channel == i % channels, (i, channel)
        assert seq == next_seq.get(channel, 0), (channel, seq)
        next_seq[channel] = seq + 1
        # The checksum written must be the one scapy computes from scratch.
        fresh = l3.copy()
        del fresh[UDP].chksum
        recomputed = fresh.__class__(bytes(fresh))[UDP].chksum
        assert udp.chksum == recomputed, (i, hex(udp.chksum), hex(recomputed))
        expected_t = float(packets[0].time) + i / rate
        assert abs(float(p.time) - expected_t) < 2e-6, (i, float(p.time), expected_t)
    assert seen_families == {4, 6}, seen_families
    assert sizes == {64, 1316}, sizes


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "mc.pcap")
        subprocess.run([sys.executable, os.path.join(HERE, "gen_multicast_pcap.py"), "-o", pcap,
                        "--channels", "8", "--family", "both", "--size", "64", "1316",
                        "--rate", "20000", "--count", "200"], check=True)
        check_pcap(pcap, 200, 20000.0, 8)
        py_compile.compile(os.path.join(HERE, "trex_multicast.py"),
                           cfile=os.path.join(tmp, "trex.pyc"), doraise=True)
    print("pcap generator and TRex profile: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
