#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets: one valid example of every AMT message and of
every IGMP/MLD report kind, plus a few near-misses. Run it again after a format change."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(data: bytes, start: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    s = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto: int, src: bytes, dst: bytes, payload: bytes, options: bytes = b"\x94\x04\0\0") -> bytes:
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0xC0, ihl * 4 + len(payload), 0, 0, 1, proto, 0, src, dst)
    hdr += options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def igmp(msg: bytes) -> bytes:
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


V6_ZERO = bytes(16)


def v6(last: int, first: bytes = b"\xff\x02") -> bytes:
    return first + bytes(13) + bytes([last])


def ipv6_mld(src: bytes, dst: bytes, mld: bytes, hbh: bool = True) -> bytes:
    pseudo = src + dst + struct.pack("!IxxxB", len(mld), 58)
    mld = mld[:2] + struct.pack("!H", csum(mld, sum(struct.unpack("!20H", pseudo)))) + mld[4:]
    ext = bytes([58, 0, 5, 2, 0, 0, 1, 0]) if hbh else b""
    nh = 0 if hbh else 58
    return struct.pack("!IHBB", 6 << 28, len(ext) + len(mld), nh, 1) + src + dst + ext + mld


def v4addr(a, b, c, d) -> bytes:
    return bytes([a, b, c, d])


G4, S4, S4b = v4addr(232, 1, 1, 1), v4addr(198, 51, 100, 7), v4addr(198, 51, 100, 8)
G6, S6 = b"\xff\x3e" + bytes(13) + b"\x01", b"\x20\x01\x0d\xb8" + bytes(11) + b"\x07"

reports = {
    "igmpv3_include": ipv4(2, bytes(4), v4addr(224, 0, 0, 22), igmp(struct.pack("!BBHHH", 0x22, 0, 0, 0, 2)
        + struct.pack("!BBH", 1, 0, 2) + G4 + S4 + S4b + struct.pack("!BBH", 6, 0, 1) + G4 + S4)),
    "igmpv3_asm_vlc": ipv4(2, bytes(4), v4addr(224, 0, 0, 22), igmp(struct.pack("!BBHHH", 0x22, 0, 0, 0, 1)
        + struct.pack("!BBH", 4, 0, 0) + v4addr(239, 1, 2, 3) + bytes(4)), options=bytes(4)),
    "igmpv3_aux": ipv4(2, bytes(4), v4addr(224, 0, 0, 22), igmp(struct.pack("!BBHHH", 0x22, 0, 0, 0, 1)
        + struct.pack("!BBH", 5, 1, 1) + G4 + S4 + b"AUX!")),
    "igmpv2_report": ipv4(2, bytes(4), v4addr(239, 1, 2, 3), igmp(struct.pack("!BBH", 0x16, 0, 0) + v4addr(239, 1, 2, 3))),
    "igmpv2_leave": ipv4(2, bytes(4), v4addr(224, 0, 0, 2), igmp(struct.pack("!BBH", 0x17, 0, 0) + v4addr(239, 1, 2, 3))),
    "mldv2_allow": ipv6_mld(V6_ZERO, v6(0x16), struct.pack("!BBHHH", 143, 0, 0, 0, 2)
        + struct.pack("!BBH", 5, 0, 1) + G6 + S6 + struct.pack("!BBH", 4, 0, 0) + b"\xff\x0e" + bytes(13) + b"\x05"),
    "mldv2_no_hbh": ipv6_mld(V6_ZERO, v6(0x16), struct.pack("!BBHHH", 143, 0, 0, 0, 1)
        + struct.pack("!BBH", 1, 0, 1) + G6 + S6, hbh=False),
    "mldv1_report": ipv6_mld(V6_ZERO, G6, struct.pack("!BBHHH", 131, 0, 0, 0, 0) + G6),
    "mldv1_done": ipv6_mld(V6_ZERO, v6(2), struct.pack("!BBHHH", 132, 0, 0, 0, 0) + G6),
}
reports["igmpv3_bad_checksum"] = reports["igmpv3_include"][:-1] + b"\x00"
reports["igmpv3_overrun"] = reports["igmpv3_include"][:-4]

MAC, NONCE = bytes.fromhex("a1b2c3d4e5f6"), bytes.fromhex("0badcafe")
query_v4 = ipv4(2, bytes(4), v4addr(224, 0, 0, 1), igmp(struct.pack("!BBHIBBH", 0x11, 1, 0, 0, 2, 125, 0)))
gw_fields = struct.pack("!H", 5000) + bytes(12) + v4addr(203, 0, 113, 9)
messages = {
    "discovery": bytes([1, 0, 0, 0]) + NONCE,
    "advertisement_v4": bytes([2, 0, 0, 0]) + NONCE + v4addr(192, 0, 2, 1),
    "advertisement_v6": bytes([2, 0, 0, 0]) + NONCE + S6,
    "request": bytes([3, 0, 0, 0]) + NONCE,
    "request_vlc": bytes([3, 0, 0, 0]) + NONCE + b"\0",
    "request_linux_mld": bytes([3, 0x80, 0, 0]) + NONCE,
    "query_v4": bytes([4, 0]) + MAC + NONCE + query_v4,
    "query_v4_g": bytes([4, 1]) + MAC + NONCE + query_v4 + gw_fields,
    "update_igmpv3": bytes([5, 0]) + MAC + NONCE + reports["igmpv3_include"],
    "update_mldv2": bytes([5, 0]) + MAC + NONCE + reports["mldv2_allow"],
    "update_junk_tail": bytes([5, 0]) + MAC + NONCE + reports["igmpv2_report"] + b"junk",
    "data": bytes([6, 0]) + ipv4(17, S4, G4, b"\x13\x88\x13\x88\x00\x0cxxxx", options=b""),
    "teardown": bytes([7, 0]) + MAC + NONCE + gw_fields,
    "bad_version": bytes([0x13, 0, 0, 0]) + NONCE,
    "truncated_update": bytes([5, 0]) + MAC + NONCE,
}



def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def state_file(payload: bytes, version: int = 1) -> bytes:
    """controlplane/relay_state.hpp: the header, then the payload."""
    return b"AMTSTATE" + struct.pack("<IIQII", version, 32, len(payload), crc32c(payload), 0) + payload


def addr4(a: bytes) -> bytes:
    return b"\x04" + a


def addr6(a: bytes) -> bytes:
    return b"\x06" + a


def saved_endpoint(gw: bytes, relay: bytes, groups: list) -> bytes:
    out = gw + struct.pack("<H", 40000) + relay + struct.pack("<H", 2268)
    out += struct.pack("<I", 7) + MAC + struct.pack("<qH", 100 * 10**9, len(groups))
    for group, mode, older, sources in groups:
        out += group + struct.pack("<BBH", mode, older, len(sources)) + b"".join(sources)
    return out


RELAY4, GW4 = addr4(bytes([192, 0, 2, 1])), addr4(bytes([198, 51, 100, 10]))
SECRETS = bytes(range(16)) + bytes(range(16, 32)) + struct.pack("<qq", 30 * 10**9, 200 * 10**9)
ep_ssm = saved_endpoint(GW4, RELAY4, [(addr4(G4), 0, 0, [addr4(S4)])])
ep_asm = saved_endpoint(GW4[:-1] + b"\x0b", RELAY4, [(addr4(bytes([239, 1, 1, 1])), 1, 0, [])])
ep_v6 = saved_endpoint(addr6(bytes(15) + b"\x10"), addr6(b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"),
                       [(addr6(b"\xff\x3e" + bytes(13) + b"\x01"), 0, 1, [addr6(b"\x20\x01" + bytes(14))])])
head = struct.pack("<q", 1_700_000_000 * 10**9) + struct.pack("<I", 1) + RELAY4 + SECRETS
states = {
    "empty_relay": state_file(head + struct.pack("<I", 0)),
    "three_endpoints": state_file(head + struct.pack("<I", 3) + ep_ssm + ep_asm + ep_v6),
    "bad_crc": state_file(head + struct.pack("<I", 1) + ep_ssm)[:-1] + b"\x00",
    "version_2": state_file(head + struct.pack("<I", 0), version=2),
    "truncated": state_file(head + struct.pack("<I", 1) + ep_ssm)[:60],
}

for target, items in (("membership_report", reports), ("amt_message", messages),
                      ("state_file", states)):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, data in items.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
print("seeds written")
