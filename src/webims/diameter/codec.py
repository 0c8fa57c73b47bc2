"""Decoding with python-diameter's message codec, with errors that say how to
answer, and the generic error answer (RFC 6733 §6.2, §7.2).

python-diameter gives every command of the base protocol and of Cx (TS 29.229)
as a class with its AVPs as attributes; what it cannot decode surfaces here as
:class:`DiameterError` with DIAMETER_INVALID_AVP_LENGTH (5014) or, for bits
it rejects, DIAMETER_INVALID_AVP_BITS (3009), never as another exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias

from diameter.message import Message

from .avp import Avp, encode_avps, parse_avps
from .errors import DIAMETER_INVALID_AVP_LENGTH, DIAMETER_INVALID_HDR_BITS, DiameterError
from .framing import HEADER_LENGTH

__all__ = ["DecodedMessage", "decode", "error_answer", "peek_header"]

# AVP codes of RFC 6733 used to build answers by hand.
AVP_RESULT_CODE = 268
AVP_ORIGIN_HOST = 264
AVP_ORIGIN_REALM = 296
AVP_SESSION_ID = 263
AVP_ERROR_MESSAGE = 281

_FLAG_REQUEST = 0x80
_FLAG_PROXIABLE = 0x40
_FLAG_ERROR = 0x20
_FLAG_RETRANSMIT = 0x10


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed header of a message, read without decoding its AVPs."""

    length: int
    flags: int
    command_code: int
    application_id: int
    hop_by_hop: int
    end_to_end: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & _FLAG_REQUEST)


class AppHeader:
    """The header of an application message, with the attribute names of
    python-diameter's ``MessageHeader`` so that both read alike."""

    __slots__ = (
        "application_id",
        "command_code",
        "command_flags",
        "end_to_end_identifier",
        "hop_by_hop_identifier",
    )

    def __init__(
        self,
        command_flags: int = 0,
        command_code: int = 0,
        application_id: int = 0,
        hop_by_hop_identifier: int = 0,
        end_to_end_identifier: int = 0,
    ) -> None:
        self.command_flags = command_flags
        self.command_code = command_code
        self.application_id = application_id
        self.hop_by_hop_identifier = hop_by_hop_identifier
        self.end_to_end_identifier = end_to_end_identifier

    def _flag(self, bit: int, on: bool) -> None:
        self.command_flags = (self.command_flags | bit) if on else (self.command_flags & ~bit)

    @property
    def is_request(self) -> bool:
        return bool(self.command_flags & _FLAG_REQUEST)

    @is_request.setter
    def is_request(self, on: bool) -> None:
        self._flag(_FLAG_REQUEST, on)

    @property
    def is_proxyable(self) -> bool:
        return bool(self.command_flags & _FLAG_PROXIABLE)

    @is_proxyable.setter
    def is_proxyable(self, on: bool) -> None:
        self._flag(_FLAG_PROXIABLE, on)

    @property
    def is_error(self) -> bool:
        return bool(self.command_flags & _FLAG_ERROR)

    @is_error.setter
    def is_error(self, on: bool) -> None:
        self._flag(_FLAG_ERROR, on)


class AppMessage:
    """An application message (Cx): a header and its AVPs in order
    (:mod:`.avp`), encoded and decoded without python-diameter's classes."""

    __slots__ = ("avps", "header")

    def __init__(self, header: AppHeader, avps: list[Avp]) -> None:
        self.header = header
        self.avps = avps

    def as_bytes(self) -> bytes:
        body = encode_avps(self.avps)
        h = self.header
        return (
            _APP_HEADER.pack(
                (1 << 24) | (HEADER_LENGTH + len(body)),
                (h.command_flags << 24) | h.command_code,
                h.application_id,
                h.hop_by_hop_identifier,
                h.end_to_end_identifier,
            )
            + body
        )


_APP_HEADER = struct.Struct(">IIIII")

#: What :func:`decode` returns: python-diameter's typed class for the
#: base-protocol commands, :class:`AppMessage` for the others.
DecodedMessage: TypeAlias = "Message | AppMessage"


def peek_header(data: bytes) -> Header:
    """The header of a framed message (at least 20 bytes)."""
    if len(data) < HEADER_LENGTH:
        raise DiameterError(DIAMETER_INVALID_HDR_BITS, "short Diameter header")
    return Header(
        length=int.from_bytes(data[1:4], "big"),
        flags=data[4],
        command_code=int.from_bytes(data[5:8], "big"),
        application_id=int.from_bytes(data[8:12], "big"),
        hop_by_hop=int.from_bytes(data[12:16], "big"),
        end_to_end=int.from_bytes(data[16:20], "big"),
    )


#: Commands the peer layer reads through python-diameter's typed attributes
#: (CER/CEA, DWR/DWA, DPR/DPA); every other message is decoded to its plain
#: AVP list, which the application reads by code (cheaper, and independent of
#: the library's per-command definitions).
_TYPED_COMMANDS = frozenset({257, 280, 282})


def decode(data: bytes, header: Header | None = None) -> DecodedMessage:
    """Decode one framed message (whose header the caller may have read
    already); bad AVPs raise :class:`DiameterError`."""
    if header is None:
        header = peek_header(data)
    if header.flags & 0x0F:
        raise DiameterError(DIAMETER_INVALID_HDR_BITS, "reserved header bits set")
    if header.is_request and header.flags & _FLAG_ERROR:
        raise DiameterError(DIAMETER_INVALID_HDR_BITS, "E bit set in a request")
    try:
        if header.command_code not in _TYPED_COMMANDS:
            return AppMessage(
                AppHeader(
                    header.flags,
                    header.command_code,
                    header.application_id,
                    header.hop_by_hop,
                    header.end_to_end,
                ),
                parse_avps(data, HEADER_LENGTH, min(header.length, len(data))),
            )
        typed: DecodedMessage = Message.from_bytes(data)
        return typed
    except DiameterError:
        raise
    except Exception as err:  # the codec raises several kinds for bad bytes
        raise DiameterError(DIAMETER_INVALID_AVP_LENGTH, f"undecodable AVPs: {err}") from None


def error_answer(
    request: Header,
    result_code: int,
    *,
    origin_host: bytes,
    origin_realm: bytes,
    session_id: str | None = None,
    error_message: str | None = None,
) -> bytes:
    """The answer to ``request`` carrying only ``result_code`` (§7.2).

    Built from the request header alone, so it works for a request whose AVPs
    could not be decoded.  Protocol errors (3xxx) set the E bit.
    """
    flags = request.flags & _FLAG_PROXIABLE
    if 3000 <= result_code < 4000:
        flags |= _FLAG_ERROR
    header = AppHeader(
        flags, request.command_code, request.application_id, request.hop_by_hop, request.end_to_end
    )
    avps: list[Avp] = []
    if session_id is not None:
        avps.append(Avp.new(AVP_SESSION_ID, session_id))
    avps += [
        Avp.new(AVP_ORIGIN_HOST, origin_host),
        Avp.new(AVP_ORIGIN_REALM, origin_realm),
        Avp.new(AVP_RESULT_CODE, result_code),
    ]
    if error_message:
        avps.append(Avp.new(AVP_ERROR_MESSAGE, error_message, mandatory=False))
    return AppMessage(header, avps).as_bytes()
