"""Decoding with python-diameter's message codec, with errors that say how to
answer, and the generic error answer (RFC 6733 §6.2, §7.2).

python-diameter gives every command of the base protocol and of Cx (TS 29.229)
as a class with its AVPs as attributes; what it cannot decode surfaces here as
:class:`DiameterError` with DIAMETER_INVALID_AVP_LENGTH (5014) or, for bits
it rejects, DIAMETER_INVALID_AVP_BITS (3009), never as another exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from diameter.message import Message, MessageHeader
from diameter.message.avp import Avp

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


DecodedMessage = Message


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


def decode(data: bytes) -> Message:
    """Decode one framed message; bad AVPs raise :class:`DiameterError`."""
    header = peek_header(data)
    if header.flags & 0x0F:
        raise DiameterError(DIAMETER_INVALID_HDR_BITS, "reserved header bits set")
    if header.is_request and header.flags & _FLAG_ERROR:
        raise DiameterError(DIAMETER_INVALID_HDR_BITS, "E bit set in a request")
    try:
        return Message.from_bytes(data, plain_msg=header.command_code not in _TYPED_COMMANDS)
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
    header = MessageHeader(
        command_flags=flags,
        command_code=request.command_code,
        application_id=request.application_id,
        hop_by_hop_identifier=request.hop_by_hop,
        end_to_end_identifier=request.end_to_end,
    )
    avps: list[Avp] = []
    if session_id is not None:
        avps.append(Avp.new(AVP_SESSION_ID, value=session_id))
    avps += [
        Avp.new(AVP_ORIGIN_HOST, value=origin_host),
        Avp.new(AVP_ORIGIN_REALM, value=origin_realm),
        Avp.new(AVP_RESULT_CODE, value=result_code),
    ]
    if error_message:
        avps.append(Avp.new(AVP_ERROR_MESSAGE, value=error_message))
    return bytes(Message(header, avps).as_bytes())
