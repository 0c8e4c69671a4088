"""TRex stateless (STL) profile: native multicast toward an AMT relay's upstream port.

Many (S,G) channels in 232/8 (IPv4) or ff3e::/96 (IPv6), one stream per packet size, sent
continuously; a field engine varies the group (and the source) per packet, so one stream covers
thousands of channels. The checksums stay valid without a NIC offload: for every varied 16-bit
address word a second variable, written into the payload, moves the opposite way, so the UDP
checksum of the template (computed by scapy) holds for every packet. The Ethernet destination
follows the group (01:00:5e / 33:33 + its low bits).

    trex-console> start -f perf/profiles/trex_multicast.py -p 0 -m 1mpps \\
                  -t --family 4 --groups 1000 --sources 1 --sizes 1316
    (TRex before v2.89 takes "-t family=4,groups=1000,...".)

Channels: packet n goes to group G0 + n % groups from source S0 + n % sources (choose co-prime
counts, or sources=1, for every combination). At most 65536 groups and sources: only the low
16 bits of each address vary. The relay must have gateways joined to these channels to
replicate anything (amtgw --emulate N, see README.md).
"""
import argparse
import ipaddress

from trex_stl_lib.api import (STLPktBuilder, STLScVmRaw, STLStream, STLTXCont, STLVmFixIpv4,
                              STLVmFlowVar, STLVmWrFlowVar)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

DEFAULTS = {
    "family": "4",          # 4, 6 or both (one stream set per family)
    "groups": 1000,
    "sources": 1,
    "sizes": "1316",        # UDP payload octets, comma-separated; one stream per size
    "pps": 100000.0,        # per stream before -m; the console's -m scales it
    "group4": "232.1.0.1",
    "source4": "198.51.100.1",
    "group6": "ff3e::8000:1",
    "source6": "2001:db8:5::1",
    "ttl": 32,
    "src_mac": "02:00:00:00:00:01",
}

# Payload layout: [u16 group compensation][u16 source compensation][0x47 fill...]
COMP_GROUP = 0
COMP_SOURCE = 2


def parse_tunables(tunables, kwargs):
    opts = dict(DEFAULTS)
    if isinstance(tunables, list):  # TRex >= v2.89: argparse-style tunables
        parser = argparse.ArgumentParser(description="AMT relay multicast load",
                                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        for key, value in DEFAULTS.items():
            parser.add_argument("--" + key.replace("_", "-"), dest=key, default=value,
                                type=type(value))
        opts.update(vars(parser.parse_args(tunables)))
    elif isinstance(tunables, dict):
        opts.update({k: v for k, v in tunables.items() if k in DEFAULTS})
    opts.update({k: v for k, v in kwargs.items() if k in DEFAULTS})  # older "-t key=value"
    for key in ("groups", "sources", "ttl"):
        opts[key] = int(opts[key])
    opts["pps"] = float(opts["pps"])
    if not 1 <= opts["groups"] <= 65536 or not 1 <= opts["sources"] <= 65536:
        raise ValueError("groups and sources: 1..65536 (the low 16 address bits vary)")
    return opts


def multicast_mac(group):
    g = group.packed
    if group.version == 4:
        return "01:00:5e:%02x:%02x:%02x" % (g[1] & 0x7F, g[2], g[3])
    return "33:33:%02x:%02x:%02x:%02x" % (g[12], g[13], g[14], g[15])


def low16(addr):
    return int.from_bytes(addr.packed[-2:], "big")


class AmtMulticast(object):
    def stream(self, version, size, o):
        group = ipaddress.ip_address(o["group%d" % version])
        source = ipaddress.ip_address(o["source%d" % version])
        g0, s0 = low16(group), low16(source)
        if g0 + o["groups"] - 1 > 0xFFFF or s0 + o["sources"] - 1 > 0xFFFF:
            raise ValueError("the group/source range must not carry out of the low 16 bits")
        l3 = (IP(src=str(source), dst=str(group), ttl=o["ttl"]) if version == 4 else
              IPv6(src=str(source), dst=str(group), hlim=o["ttl"]))
        # Compensation words start at their maximum and count down while the address words
        # count up: their sum, hence the checksum, is the same in every packet.
        payload = (0xFFFF - g0).to_bytes(2, "big") + (0xFFFF - s0).to_bytes(2, "big")
        payload += b"\x47" * max(0, size - len(payload))
        pkt = Ether(src=o["src_mac"], dst=multicast_mac(group)) / l3 / UDP(
            sport=5000, dport=5000) / payload
        base = len(Ether() / l3 / UDP())  # payload offset
        l3_name = "IP" if version == 4 else "IPv6"
        # The low 16 bits of an address, from the start of its field ("IP.dst", "IPv6.src").
        dst_low = src_low = 2 if version == 4 else 14
        ins = [
            STLVmFlowVar(name="g", init_value=g0, min_value=g0,
                         max_value=g0 + o["groups"] - 1, size=2, op="inc"),
            # init_value defaults to min_value: the decrementing twin must start at its max.
            STLVmFlowVar(name="gc", init_value=0xFFFF - g0,
                         min_value=0xFFFF - g0 - o["groups"] + 1, max_value=0xFFFF - g0,
                         size=2, op="dec"),
            STLVmWrFlowVar(fv_name="g", pkt_offset=l3_name + ".dst", offset_fixup=dst_low),
            STLVmWrFlowVar(fv_name="g", pkt_offset=4),  # Ethernet destination, low 16 bits
            STLVmWrFlowVar(fv_name="gc", pkt_offset=base + COMP_GROUP),
        ]
        if o["sources"] > 1:
            ins += [
                STLVmFlowVar(name="s", init_value=s0, min_value=s0,
                             max_value=s0 + o["sources"] - 1, size=2, op="inc"),
                STLVmFlowVar(name="sc", init_value=0xFFFF - s0,
                             min_value=0xFFFF - s0 - o["sources"] + 1, max_value=0xFFFF - s0,
                             size=2, op="dec"),
                STLVmWrFlowVar(fv_name="s", pkt_offset=l3_name + ".src", offset_fixup=src_low),
                STLVmWrFlowVar(fv_name="sc", pkt_offset=base + COMP_SOURCE),
            ]
        if version == 4:
            ins.append(STLVmFixIpv4(offset="IP"))  # the IPv4 header checksum is not offset
        return STLStream(packet=STLPktBuilder(pkt=pkt, vm=STLScVmRaw(ins)),
                         mode=STLTXCont(pps=o["pps"]))

    def get_streams(self, tunables=None, direction=0, **kwargs):
        o = parse_tunables(tunables, kwargs)
        versions = {"4": [4], "6": [6], "both": [4, 6]}[str(o["family"])]
        sizes = [int(s) for s in str(o["sizes"]).split(",") if s]
        return [self.stream(v, size, o) for v in versions for size in sizes]


def register():
    return AmtMulticast()
