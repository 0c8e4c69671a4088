#!/usr/bin/python3
"""A minimal AMT peer for the system tests, independent of the project's C++ codec.

  amt_probe.py query-flags RELAY       Request → prints the Query's flags as JSON {"l": .., "g": ..}
  amt_probe.py send-bad RELAY          sends malformed AMT messages; prints {reason: count} as JSON
                                       (the relay must count each under that reason)
  amt_probe.py bad-mac-update RELAY    Request → Query → an Update with a wrong MAC (mac_mismatch)
"""
import json
import os
import socket
import struct
import sys

AMT_PORT = 2268


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def igmpv3_report(group: str, source: str) -> bytes:
    """IPv4 (Router Alert) + IGMPv3 report with one ALLOW_NEW_SOURCES record."""
    record = struct.pack("!BBH4s4s", 5, 0, 1, socket.inet_aton(group), socket.inet_aton(source))
    igmp = struct.pack("!BBHHH", 0x22, 0, 0, 0, 1) + record
    igmp = igmp[:2] + struct.pack("!H", checksum(igmp)) + igmp[4:]
    total = 24 + len(igmp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, total, 0, 0, 1, 2, 0,
                     socket.inet_aton("0.0.0.0"), socket.inet_aton("224.0.0.22"))
    ip += b"\x94\x04\x00\x00"  # Router Alert
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + igmp


def request_query(sock, relay):
    nonce = os.urandom(4)
    sock.sendto(bytes([3, 0, 0, 0]) + nonce, (relay, AMT_PORT))
    while True:
        data, _ = sock.recvfrom(2048)
        if len(data) >= 12 and data[0] == 4 and data[8:12] == nonce:
            return data


def main():
    command, relay = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_INET6 if ":" in relay else socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    if command == "query-flags":
        q = request_query(sock, relay)
        print(json.dumps({"l": bool(q[1] & 0x02), "g": bool(q[1] & 0x01)}))
    elif command == "send-bad":
        bad = {
            "unknown_type": [bytes([0x09]) + bytes(7)],
            "bad_version": [bytes([0x13]) + bytes(7)],
            "truncated_message": [bytes([0x03, 0x00, 0x00])],
            "empty_message": [b""],
        }
        for datagrams in bad.values():
            for d in datagrams:
                sock.sendto(d, (relay, AMT_PORT))
        print(json.dumps({reason: len(d) for reason, d in bad.items()}))
    elif command == "bad-mac-update":
        q = request_query(sock, relay)
        mac = bytes(b ^ 0xFF for b in q[2:8])  # surely not the relay's MAC
        update = bytes([5, 0]) + mac + q[8:12] + igmpv3_report("232.1.1.1", "10.0.0.2")
        sock.sendto(update, (relay, AMT_PORT))
        print(json.dumps({"mac_mismatch": 1}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
