"""The recorded SIP and Diameter messages as a capture file Wireshark and
tshark read (pcapng, RFC-draft "PCAP Next Generation", link type
LINKTYPE_RAW: each packet an IPv4 or IPv6 datagram).

Each message becomes one packet with synthetic IP and UDP or TCP headers
carrying the real addresses and ports, so that the usual dissectors apply
(SIP on 5060/5070/5080, Diameter on 3868, or by "Decode As").  TCP segments
carry consecutive sequence numbers per direction (no handshake is shown;
checksums are zero, which Wireshark does not verify by default).  SIP over
WebSocket is written as plain SIP in TCP from and to the real ports, with a
packet comment saying so (the WebSocket framing and TLS are not recorded).
Every packet's comment names the element that recorded it.  OAuth summaries
are not packets.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

from .ladder import Exchange, exchanges
from .record import TraceRecord

__all__ = ["write_pcap"]

_LINKTYPE_RAW: Final = 101
_SNAPLEN: Final = 262144
_UDP: Final = 17
_TCP: Final = 6
_TCP_PSH_ACK: Final = 0x18


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _section_header() -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    body += _option(4, b"webims trace") + _option(0, b"")  # shb_userappl
    return _block(0x0A0D0D0A, body)


def _interface() -> bytes:
    body = struct.pack("<HHI", _LINKTYPE_RAW, 0, _SNAPLEN) + _option(0, b"")
    return _block(1, body)


def _packet(time: float, data: bytes, comment: str) -> bytes:
    micros = round(time * 1_000_000)
    body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data))
    body += data + b"\0" * (-len(data) % 4)
    body += _option(1, comment.encode("utf-8")) + _option(0, b"")
    return _block(6, body)


def _checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4 and d.version == 4:
        head = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, s.packed, d.packed
        )
        head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        return head + payload
    s6 = s if s.version == 6 else ipaddress.IPv6Address(f"::ffff:{s}")
    d6 = d if d.version == 6 else ipaddress.IPv6Address(f"::ffff:{d}")
    head = struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64, s6.packed, d6.packed)
    return head + payload


class _Streams:
    """TCP sequence numbers per direction of each address pair."""

    def __init__(self) -> None:
        self.next_seq: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}

    def segment(self, x: Exchange) -> bytes:
        key = (x.src, x.dst)
        seq = self.next_seq.get(key, 1)
        self.next_seq[key] = (seq + len(x.payload)) & 0xFFFFFFFF
        ack = self.next_seq.get((x.dst, x.src), 1)
        tcp = struct.pack(
            "!HHIIBBHHH", x.src[1], x.dst[1], seq, ack, 5 << 4, _TCP_PSH_ACK, 65535, 0, 0
        )
        return tcp + x.payload


def _comment(x: Exchange) -> str:
    what = f"{x.sender} -> {x.receiver}"
    if x.transport in ("ws", "wss"):
        what += f"; SIP over {x.transport.upper()} (RFC 7118), WebSocket framing and TLS not shown"
    elif x.transport == "tls":
        what += "; SIP over TLS, shown decrypted"
    return what


def write_pcap(path: Path | BinaryIO, records: Sequence[TraceRecord]) -> int:
    """Write the SIP and Diameter messages of ``records`` (each once); how many."""
    streams = _Streams()
    blocks = [_section_header(), _interface()]
    count = 0
    for x in exchanges(records):
        if x.protocol not in ("sip", "diameter"):
            continue
        if x.transport == "udp":
            udp = struct.pack("!HHHH", x.src[1], x.dst[1], 8 + len(x.payload), 0) + x.payload
            packet = _ip(x.src[0], x.dst[0], _UDP, udp)
        else:
            packet = _ip(x.src[0], x.dst[0], _TCP, streams.segment(x))
        blocks.append(_packet(x.time, packet, _comment(x)))
        count += 1
    data = b"".join(blocks)
    if isinstance(path, Path):
        path.write_bytes(data)
    else:
        path.write(data)
    return count
