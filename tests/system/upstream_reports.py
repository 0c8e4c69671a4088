#!/usr/bin/python3
"""Decodes the IGMP/MLD messages of a capture with tshark, one line each, for the system tests:

    TIME SOURCE query general|GROUP MAX_RESPONSE_SECONDS
    TIME SOURCE report RECORD_TYPE GROUP SOURCES      (one line per group record; SOURCES
                                                        comma-separated, "-" for none)

RECORD_TYPE is IS_IN, IS_EX, TO_IN, TO_EX, ALLOW or BLOCK (RFC 3376 §4.2.12, RFC 3810 §5.2.12).
tshark is the judge of the wire format; this only lines its fields up per record.
Usage: upstream_reports.py CAPTURE.pcap"""
import subprocess
import sys

RECORD_TYPES = {1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}
FIELDS = [
    "frame.time_epoch", "ip.src", "ipv6.src",
    "igmp.type", "igmp.max_resp", "igmp.maddr", "igmp.record_type", "igmp.num_src", "igmp.saddr",
    "icmpv6.type", "icmpv6.mld.maximum_response_code", "icmpv6.mld.multicast_address",
    "icmpv6.mldr.mar.record_type", "icmpv6.mldr.mar.multicast_address",
    "icmpv6.mldr.mar.nb_sources", "icmpv6.mldr.mar.source_address",
]
UNSPECIFIED = ("0.0.0.0", "::")


def igmp_max_response_seconds(code):
    """IGMPv3 Max Resp Code (RFC 3376 §4.1.1): tenths of a second, a float form from 128."""
    if code >= 128:
        code = ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)
    return code / 10


def mld_max_response_seconds(code):
    """MLDv2 Maximum Response Code (RFC 3810 §5.1.3): milliseconds, a float form from 32768."""
    if code >= 32768:
        code = ((code & 0x0FFF) | 0x1000) << (((code >> 12) & 0x07) + 3)
    return code / 1000


def split(value):
    return [v for v in value.split(";") if v] if value else []


def records(types, groups, counts, sources):
    """Pairs each group record with its own sources: tshark lists all sources of a message in one
    field, in order, so each record's source count says how many are its own."""
    out, used = [], 0
    for t, g, n in zip(types, groups, counts):
        own = sources[used:used + int(n)]
        used += int(n)
        out.append((RECORD_TYPES.get(int(t), "type" + t), g, ",".join(own) or "-"))
    return out


def lines(row):
    f = dict(zip(FIELDS, row))
    time, source = f["frame.time_epoch"], f["ip.src"] or f["ipv6.src"]
    igmp_type = int(f["igmp.type"], 0) if f["igmp.type"] else None
    icmp_type = int(split(f["icmpv6.type"])[0]) if f["icmpv6.type"] else None
    if igmp_type == 0x11 or icmp_type == 130:
        if igmp_type == 0x11:
            group = split(f["igmp.maddr"])[0]
            max_resp = igmp_max_response_seconds(int(f["igmp.max_resp"] or 0, 0))
        else:
            group = split(f["icmpv6.mld.multicast_address"])[0]
            max_resp = mld_max_response_seconds(int(f["icmpv6.mld.maximum_response_code"] or 0))
        group = "general" if group in UNSPECIFIED else group
        return [f"{time} {source} query {group} {max_resp:g}"]
    if igmp_type == 0x22:
        recs = records(split(f["igmp.record_type"]), split(f["igmp.maddr"]),
                       split(f["igmp.num_src"]), split(f["igmp.saddr"]))
    elif icmp_type == 143:
        recs = records(split(f["icmpv6.mldr.mar.record_type"]),
                       split(f["icmpv6.mldr.mar.multicast_address"]),
                       split(f["icmpv6.mldr.mar.nb_sources"]),
                       split(f["icmpv6.mldr.mar.source_address"]))
    else:
        return []  # IGMPv1/v2, MLDv1 or other ICMPv6: not what the relay sends
    return [f"{time} {source} report {t} {g} {s}" for t, g, s in recs]


def main(path):
    cmd = ["tshark", "-r", path, "-Y", "igmp or icmpv6.type == 130 or icmpv6.type == 143",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=;"]
    for field in FIELDS:
        cmd += ["-e", field]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return 1
    for row in result.stdout.splitlines():
        for line in lines(row.split("\t")):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
