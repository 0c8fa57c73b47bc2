"""A fast AVP codec for the application messages (RFC 6733 §4), on
python-diameter's dictionary.

python-diameter's message classes cost 100–200 µs to build or parse one Cx
message on this machine (generic packers over ``BytesIO``, attribute
machinery per AVP); at the 3,000 requests a second an HSS must serve on one
core, encoding and decoding alone would take the whole core.  This module
does the same work with ``struct`` on bytes: an AVP is its code, flags,
Vendor-Id and payload, the payload is turned into a value only when read,
and the type of each AVP (UTF8String, Unsigned32, Grouped …) still comes
from python-diameter's dictionary, which also handles the rare types
(Address, Time, Float) this module passes on to it.  The base-protocol
messages (CER, DWR, DPR) keep python-diameter's typed classes.

Errors: an AVP whose length runs past its container, or is shorter than its
header, raises :class:`~.errors.DiameterError` with
DIAMETER_INVALID_AVP_LENGTH (5014); a value that does not fit its type,
DIAMETER_INVALID_AVP_VALUE (5004).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from diameter.message.avp import avp as lib

from .errors import DIAMETER_INVALID_AVP_LENGTH, DIAMETER_INVALID_AVP_VALUE, DiameterError

__all__ = ["FLAG_MANDATORY", "FLAG_VENDOR", "Avp", "AvpType", "encode_avps", "parse_avps"]

FLAG_VENDOR = 0x80
FLAG_MANDATORY = 0x40

_HEAD = struct.Struct(">IB3s")
_HEAD_V = struct.Struct(">IB3sI")
_U32 = struct.Struct(">I")
_TWO = struct.Struct(">II")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


class AvpType:
    """How a payload becomes a value and back."""

    UTF8 = "utf8"
    OCTETS = "octets"
    U32 = "u32"
    I32 = "i32"
    U64 = "u64"
    I64 = "i64"
    GROUPED = "grouped"
    OTHER = "other"  # handed to python-diameter's class for the type


_KINDS: dict[type, str] = {
    lib.AvpUtf8String: AvpType.UTF8,
    lib.AvpOctetString: AvpType.OCTETS,
    lib.AvpUnsigned32: AvpType.U32,
    lib.AvpInteger32: AvpType.I32,
    lib.AvpUnsigned64: AvpType.U64,
    lib.AvpInteger64: AvpType.I64,
    lib.AvpGrouped: AvpType.GROUPED,
}

#: Types of AVPs python-diameter's dictionary lacks (TS 29.229 §6.3).
_EXTRA: dict[tuple[int, int], str] = {
    (659, 10415): AvpType.U32,  # RTR-Flags
}

_kind_cache: dict[tuple[int, int], tuple[str, type | None]] = {
    key: (kind, None) for key, kind in _EXTRA.items()
}

_EXAMPLE_SIZE = {AvpType.U32: 4, AvpType.I32: 4, AvpType.U64: 8, AvpType.I64: 8}


def kind_of(code: int, vendor: int) -> tuple[str, type | None]:
    """(kind, python-diameter class) of an AVP, from the dictionary; an
    unknown AVP is an OctetString."""
    key = (code, vendor)
    found = _kind_cache.get(key)
    if found is None:
        entry = lib.get_avp_dictionary_entry(code, vendor)
        cls = entry["type"] if entry else None
        if cls is None:
            found = (AvpType.OCTETS, None)
        else:
            # Enumerated AVPs are AvpInteger32 subclasses in the dictionary.
            kind = next((k for t, k in _KINDS.items() if issubclass(cls, t)), AvpType.OTHER)
            found = (kind, cls)
        _kind_cache[key] = found
    return found


class Avp:
    """One AVP: code, flags, Vendor-Id (0 for none) and payload bytes."""

    __slots__ = ("_wire", "code", "data", "flags", "vendor_id")

    def __init__(self, code: int, vendor_id: int, flags: int, data: bytes) -> None:
        self.code = code
        self.vendor_id = vendor_id
        self.flags = flags
        self.data = data
        self._wire: bytes | None = None

    @classmethod
    def new(cls, code: int, value: Any, *, vendor: int = 0, mandatory: bool = True) -> Avp:
        """An AVP holding ``value``, encoded by the AVP's dictionary type."""
        flags = (FLAG_VENDOR if vendor else 0) | (FLAG_MANDATORY if mandatory else 0)
        kind, lib_cls = kind_of(code, vendor)
        try:
            data = _encode_value(kind, lib_cls, code, vendor, value)
        except (struct.error, TypeError, ValueError, UnicodeError) as err:
            raise ValueError(f"AVP {code}/{vendor}: cannot encode {value!r}: {err}") from None
        return cls(code, vendor, flags, data)

    @classmethod
    def example(cls, code: int, vendor: int = 0) -> Avp:
        """A zero-filled AVP of the minimum length for its type, as Failed-AVP
        carries for a missing AVP (RFC 6733 §7.5)."""
        kind, _ = kind_of(code, vendor)
        flags = FLAG_VENDOR if vendor else 0
        return cls(code, vendor, flags | FLAG_MANDATORY, bytes(_EXAMPLE_SIZE.get(kind, 0)))

    @property
    def is_mandatory(self) -> bool:
        return bool(self.flags & FLAG_MANDATORY)

    @property
    def value(self) -> Any:
        """The payload as the AVP's type: str, bytes, int, or for a Grouped
        AVP the list of its AVPs."""
        kind, lib_cls = kind_of(self.code, self.vendor_id)
        data = self.data
        try:
            if kind == AvpType.UTF8:
                return data.decode("utf-8")
            if kind == AvpType.OCTETS:
                return data
            if kind == AvpType.U32:
                return _U32.unpack(data)[0]
            if kind == AvpType.I32:
                return _I32.unpack(data)[0]
            if kind == AvpType.GROUPED:
                return parse_avps(data)
            if kind == AvpType.U64:
                return _U64.unpack(data)[0]
            if kind == AvpType.I64:
                return _I64.unpack(data)[0]
            assert lib_cls is not None
            return lib_cls(self.code, vendor_id=self.vendor_id, payload=data).value
        except (struct.error, UnicodeError, ValueError) as err:
            raise DiameterError(
                DIAMETER_INVALID_AVP_VALUE, f"AVP {self.code}: invalid value: {err}", [self]
            ) from None

    def encode(self) -> bytes:
        """The AVP on the wire, padded (kept: an AVP is not changed once made)."""
        if self._wire is not None:
            return self._wire
        data = self.data
        length = (12 if self.vendor_id else 8) + len(data)
        pad = b"\0" * (-length % 4)
        if self.vendor_id:
            head = _HEAD_V.pack(self.code, self.flags, length.to_bytes(3, "big"), self.vendor_id)
        else:
            head = _HEAD.pack(self.code, self.flags, length.to_bytes(3, "big"))
        self._wire = head + data + pad
        return self._wire

    def __repr__(self) -> str:
        return f"Avp({self.code}, vendor={self.vendor_id}, flags={self.flags:#x}, {self.data!r})"


def _encode_value(kind: str, lib_cls: type | None, code: int, vendor: int, value: Any) -> bytes:
    if kind == AvpType.UTF8:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if kind == AvpType.OCTETS:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if kind == AvpType.U32:
        return _U32.pack(value)
    if kind == AvpType.I32:
        return _I32.pack(value)
    if kind == AvpType.GROUPED:
        return encode_avps(value)
    if kind == AvpType.U64:
        return _U64.pack(value)
    if kind == AvpType.I64:
        return _I64.pack(value)
    assert lib_cls is not None
    item = lib_cls(code, vendor_id=vendor)
    item.value = value
    return bytes(item.payload)


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join(a.encode() for a in avps)


def parse_avps(data: bytes, start: int = 0, end: int | None = None) -> list[Avp]:
    """The AVPs in ``data[start:end]``; DIAMETER_INVALID_AVP_LENGTH (5014)
    when one does not fit."""
    end = len(data) if end is None else end
    out: list[Avp] = []
    append = out.append
    unpack = _TWO.unpack_from
    pos = start
    while pos < end:
        if end - pos < 8:
            raise DiameterError(DIAMETER_INVALID_AVP_LENGTH, "truncated AVP header")
        code, flags_length = unpack(data, pos)
        flags = flags_length >> 24
        length = flags_length & 0xFFFFFF
        if flags & FLAG_VENDOR:
            if length < 12 or end - pos < 12:
                raise DiameterError(DIAMETER_INVALID_AVP_LENGTH, f"AVP {code}: bad length")
            vendor = _U32.unpack_from(data, pos + 8)[0]
            body = pos + 12
        else:
            if length < 8:
                raise DiameterError(DIAMETER_INVALID_AVP_LENGTH, f"AVP {code}: bad length")
            vendor = 0
            body = pos + 8
        stop = pos + length
        if stop > end:
            raise DiameterError(DIAMETER_INVALID_AVP_LENGTH, f"AVP {code}: length {length}")
        append(Avp(code, vendor, flags, data[body:stop]))
        pos = stop + (-length & 3)
    return out
