"""Trace records and the trace file format.

One file per element process, ``<element>-<pid>.trc`` in the trace directory
(``<data_dir>/trace``), rotated to ``<element>-<pid>.1.trc``.  Binary, so that
SIP and Diameter bytes are kept exactly as they were on the wire and a batch
is written without formatting text::

    file   = header *record
    header = "WIMSTRC1" u8(len) element-name(utf-8) u32(pid)
    record = u32(len of the rest) f64(time, Unix seconds) u8(kind)
             u8(transport) u8(len src ip) u8(len dst ip) u16(src port)
             u16(dst port) src-ip dst-ip payload

All integers little-endian.  ``kind`` is ``protocol << 1 | direction``
(direction 0 in, 1 out; protocol 1 SIP, 2 Diameter, 3 HTTP).  The payload is
the message (SIP, Diameter) or, for HTTP, a small JSON summary (method, path,
status, web user, IMPUs) that never holds a token or a password.  A record cut
short by a writer still at work ends the file for a reader.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "DIAMETER",
    "HTTP",
    "IN",
    "OUT",
    "SIP",
    "SUFFIX",
    "Address",
    "Rec",
    "TraceRecord",
    "file_header",
    "pack_record",
    "pack_records",
    "read_file",
    "read_trace",
    "trace_files",
]

Address = tuple[str, int]
#: A record in memory: (time, kind, transport, src, dst, payload).
Rec = tuple[float, int, str, Address, Address, bytes]

IN: Final = 0
OUT: Final = 1
SIP: Final = 1
DIAMETER: Final = 2
HTTP: Final = 3

SUFFIX: Final = ".trc"
MAGIC: Final = b"WIMSTRC1"

PROTOCOLS: Final = {SIP: "sip", DIAMETER: "diameter", HTTP: "http"}
TRANSPORTS: Final = ("", "udp", "tcp", "tls", "ws", "wss", "sctp", "http", "https")
TRANSPORT_CODES: Final = {name: code for code, name in enumerate(TRANSPORTS) if name}

#: length, time, kind, transport, len(src ip), len(dst ip), src port, dst port.
_RECORD: Final = struct.Struct("<IdBBBBHH")
_FIXED: Final = _RECORD.size - 4
_PID: Final = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One message an element handled, as read back from a trace file."""

    time: float
    element: str
    pid: int
    direction: str  # "in" | "out"
    protocol: str  # "sip" | "diameter" | "http"
    transport: str
    src: Address
    dst: Address
    payload: bytes

    @property
    def local(self) -> Address:
        """The recording element's own address."""
        return self.dst if self.direction == "in" else self.src

    @property
    def remote(self) -> Address:
        return self.src if self.direction == "in" else self.dst


def file_header(element: str, pid: int) -> bytes:
    name = element.encode("utf-8")[:255]
    return MAGIC + bytes((len(name),)) + name + _PID.pack(pid)


def pack_record(rec: Rec) -> bytes:
    """One record on disk (see the module docstring)."""
    return b"".join(pack_records([rec]))


def pack_records(batch: Iterable[Rec]) -> list[bytes]:
    """The pieces of ``batch`` on disk, to be joined once (no copy per record)."""
    parts: list[bytes] = []
    extend = parts.extend
    pack = _RECORD.pack
    codes = TRANSPORT_CODES
    ips: dict[str, bytes] = {}
    for time, kind, transport, src, dst, payload in batch:
        src_ip = ips.get(src[0])
        if src_ip is None:
            src_ip = ips[src[0]] = src[0].encode("ascii")
        dst_ip = ips.get(dst[0])
        if dst_ip is None:
            dst_ip = ips[dst[0]] = dst[0].encode("ascii")
        head = pack(
            _FIXED + len(src_ip) + len(dst_ip) + len(payload),
            time,
            kind,
            codes.get(transport, 0),
            len(src_ip),
            len(dst_ip),
            src[1] & 0xFFFF,
            dst[1] & 0xFFFF,
        )
        extend((head, src_ip, dst_ip, payload))
    return parts


def read_file(path: Path) -> Iterator[TraceRecord]:
    """The records of one trace file; nothing if it is not one."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 1:
        return
    pos = len(MAGIC)
    name_len = data[pos]
    pos += 1
    element = data[pos : pos + name_len].decode("utf-8", "replace")
    pos += name_len
    if len(data) < pos + 4:
        return
    (pid,) = _PID.unpack_from(data, pos)
    pos += 4
    end = len(data)
    while end - pos >= _RECORD.size:
        length, t, kind, transport, src_len, dst_len, src_port, dst_port = _RECORD.unpack_from(
            data, pos
        )
        stop = pos + 4 + length
        if length < _FIXED or stop > end:
            return  # a record still being written
        body = pos + _RECORD.size
        src_ip = data[body : body + src_len].decode("ascii", "replace")
        body += src_len
        dst_ip = data[body : body + dst_len].decode("ascii", "replace")
        body += dst_len
        yield TraceRecord(
            time=t,
            element=element,
            pid=pid,
            direction="out" if kind & 1 else "in",
            protocol=PROTOCOLS.get(kind >> 1, "?"),
            transport=TRANSPORTS[transport] if transport < len(TRANSPORTS) else "",
            src=(src_ip, src_port),
            dst=(dst_ip, dst_port),
            payload=data[body:stop],
        )
        pos = stop


def trace_files(directory: Path) -> list[Path]:
    """The trace files in ``directory``, oldest first (by modification time)."""
    try:
        entries = [p for p in directory.iterdir() if p.name.endswith(SUFFIX)]
    except OSError:
        return []

    def mtime(p: Path) -> float:
        try:
            return os.stat(p).st_mtime
        except OSError:
            return 0.0

    return sorted(entries, key=mtime)


def read_trace(directory: Path, files: Iterable[Path] | None = None) -> list[TraceRecord]:
    """Every record of every trace file in ``directory``, merged by time."""
    records: list[TraceRecord] = []
    for path in files if files is not None else trace_files(directory):
        records.extend(read_file(path))
    records.sort(key=lambda r: r.time)
    return records
