"""Cutting a byte stream into SIP messages (RFC 3261 §18.3, RFC 5626 §4.4.1).

Sans-I/O: :class:`StreamFramer` is fed whatever the socket read and hands back
complete messages, one at a time, as the bytes :func:`parse_message` takes::

    framer = StreamFramer(limits)
    framer.feed(chunk)
    while (item := framer.next_message()) is not None:
        if item is KEEPALIVE_PING: answer with CRLF_PONG
        elif item is KEEPALIVE_PONG: the peer is alive
        else: parse_message(item, limits)

On a stream the header section ends at the first empty line and the body is
exactly Content-Length bytes; Content-Length (or its compact form ``l``) is
mandatory there (§18.3), so a message without one cannot be delimited and is
an error.  Between messages, RFC 5626 §4.4.1 gives meaning to bare CRLFs: a
double CRLF is a keep-alive *ping* (answered with a single CRLF) and a lone
CRLF is the *pong*.  A CRLF pair that arrives alone is held until the next
bytes tell whether it is a pong or the first half of a ping, so that how the
stream was split never changes what comes out.

Errors carry the status to answer with (see :mod:`webims.sip.errors`)::

    ParseError (400)        no SIP start line, missing or bad Content-Length
     ├── MessageTooLarge    header section or whole message over the limit (513)
     └── BodyTooLarge       Content-Length over the body limit (413)

After an error the framer is dead: :meth:`StreamFramer.next_message` raises
the same error again, because the position of the next message is unknown.
The connection must be closed once the error has been answered;
:meth:`StreamFramer.error_head` gives what is needed to build that answer.
"""

from __future__ import annotations

import enum
import re
from typing import Final, NoReturn

from .errors import BodyTooLarge, MessageTooLarge, ParseError
from .grammar import is_token
from .message import DEFAULT_LIMITS, Limits

__all__ = [
    "CRLF_PING",
    "CRLF_PONG",
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "KeepAlive",
    "StreamFramer",
    "plain_request_line",
    "salvage_head",
]


class KeepAlive(enum.Enum):
    """The RFC 5626 §4.4.1 keep-alives seen between messages."""

    PING = "ping"
    PONG = "pong"


KEEPALIVE_PING: Final = KeepAlive.PING
KEEPALIVE_PONG: Final = KeepAlive.PONG

#: What a client sends to probe a flow, and what the server answers.
CRLF_PING: Final = b"\r\n\r\n"
CRLF_PONG: Final = b"\r\n"

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"

# A Content-Length field anywhere in the header section (each field follows a
# CRLF); the value may be folded onto the next line (LWS = [*WSP CRLF] 1*WSP).
_CONTENT_LENGTH = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(?:\r\n[ \t]+)?([^\r\n]*)",
    re.IGNORECASE,
)

# More digits than this is over any body limit anyway.
_MAX_LENGTH_DIGITS = 10


class StreamFramer:
    """Finds SIP message boundaries in a stream of bytes.

    The buffer is a :class:`bytearray` consumed from the front; the search for
    the end of the header section resumes where the previous one stopped, so
    a message that trickles in byte by byte costs linear time.
    """

    __slots__ = ("_buf", "_error", "_limits", "_line_checked", "_need", "_pos", "_scan")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        #: Start of the unconsumed bytes in ``_buf``.
        self._pos = 0
        #: Where the search for CRLFCRLF resumes.
        self._scan = 0
        #: End of the current message once its header section is known, else -1.
        self._need = -1
        self._line_checked = False
        self._error: ParseError | None = None

    @property
    def failed(self) -> bool:
        """True once a framing error happened (the stream is lost)."""
        return self._error is not None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed back."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the stream.  Ignored after an error."""
        if self._error is not None:
            return
        pos = self._pos
        if pos:
            # bytearray deletes from the front without copying the rest.
            del self._buf[:pos]
            self._scan -= pos
            if self._need >= 0:
                self._need -= pos
            self._pos = 0
        self._buf += data

    def next_message(self) -> bytes | KeepAlive | None:
        """The next complete message, a keep-alive, or None if more bytes are needed.

        Raises the :class:`ParseError` subclass that says how to answer when
        the stream breaks a rule or a limit; the framer is dead afterwards.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        if self._need < 0:
            if buf.startswith(_CRLF, pos):
                if buf.startswith(_HEAD_END, pos):
                    self._advance(pos + 4)
                    return KEEPALIVE_PING
                rest = len(buf) - pos
                if rest == 2 or (rest == 3 and buf[pos + 2] == 0x0D):
                    return None  # a pong, or the first half of a ping
                self._advance(pos + 2)
                return KEEPALIVE_PONG
            if not self._line_checked and not self._check_start_line(buf, pos):
                return None
            limits = self._limits
            end = buf.find(_HEAD_END, max(self._scan, pos))
            if end < 0:
                if len(buf) - pos > limits.max_header_size:
                    self._fail(MessageTooLarge("header section exceeds the configured limit"))
                self._scan = max(pos, len(buf) - 3)
                return None
            if end - pos > limits.max_header_size:
                self._fail(MessageTooLarge("header section exceeds the configured limit"))
            length = self._content_length(buf, pos, end)
            if length > limits.max_body_size:
                self._fail(BodyTooLarge(f"Content-Length {length} exceeds the configured limit"))
            self._need = end + 4 + length
            if self._need - pos > limits.max_message_size:
                self._fail(MessageTooLarge("message size exceeds the configured limit"))
        need = self._need
        if len(buf) < need:
            return None
        message = bytes(buf[pos:need])
        self._need = -1
        self._advance(need)
        return message

    def error_head(self) -> bytes | None:
        """After an error: the start line and the fields needed to answer it.

        See :func:`salvage_head`; None if no complete start line was received.
        """
        return salvage_head(bytes(self._buf[self._pos :]), self._limits.max_header_size)

    # -- internals ---------------------------------------------------------
    def _advance(self, pos: int) -> None:
        self._pos = pos
        self._scan = pos
        self._line_checked = False
        if pos == len(self._buf):
            self._buf.clear()
            self._pos = self._scan = 0

    def _fail(self, error: ParseError) -> NoReturn:
        self._error = error
        raise error

    def _check_start_line(self, buf: bytearray, pos: int) -> bool:
        """Reject a stream that does not start with a SIP start line, early.

        Returns False while the first line is incomplete.
        """
        eol = buf.find(_CRLF, pos, pos + self._limits.max_line_length + 2)
        if eol < 0:
            if len(buf) - pos > self._limits.max_line_length:
                self._fail(MessageTooLarge("start line exceeds the configured limit"))
            return False
        # Request-Line ends with SIP-Version, Status-Line starts with it.
        if b"SIP/" not in buf[pos:eol].upper():
            self._fail(ParseError("the stream does not carry a SIP start line"))
        self._line_checked = True
        return True

    def _content_length(self, buf: bytearray, pos: int, end: int) -> int:
        found: int | None = None
        # end + 2 keeps the CRLF closing the last field in the searched range.
        for match in _CONTENT_LENGTH.finditer(buf, pos, end + 2):
            text = match.group(1).strip(b" \t")
            if not text.isdigit():
                self._fail(ParseError(f"invalid Content-Length {bytes(text)[:20]!r}"))
            if len(text) > _MAX_LENGTH_DIGITS:
                self._fail(BodyTooLarge("Content-Length exceeds the configured limit"))
            value = int(text)
            if found is not None and found != value:
                self._fail(ParseError("conflicting Content-Length headers"))
            found = value
        if found is None:
            self._fail(ParseError("missing Content-Length on a stream transport (RFC 3261 §18.3)"))
        return found


# Fields response_for_error copies into an answer (RFC 3261 §8.2.6.2).
_ANSWER_FIELDS = re.compile(rb"(?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:", re.IGNORECASE)


def salvage_head(data: bytes, max_size: int = DEFAULT_LIMITS.max_header_size) -> bytes | None:
    """The part of a rejected message needed to answer it, as a parseable message.

    Keeps the start line and the Via, From, To, Call-ID and CSeq fields among
    the complete lines of the first ``max_size`` bytes, then an empty line.
    Content-Length and everything else is dropped, so that the result parses
    even when the original broke a size limit or had an unusable length.
    Returns None when ``data`` holds no complete start line.
    """
    start = 0
    while data.startswith(_CRLF, start):
        start += 2
    window = data[start : start + max_size]
    end = window.find(_HEAD_END)
    if end >= 0:
        window = window[: end + 2]
    else:
        last = window.rfind(_CRLF)
        if last < 0:
            return None
        window = window[: last + 2]
    lines = window.split(_CRLF)
    keep = [lines[0]]
    current = False
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if current:
                keep.append(line)
            continue
        current = _ANSWER_FIELDS.match(line) is not None
        if current:
            keep.append(line)
    return _CRLF.join(keep) + _HEAD_END


def plain_request_line(head: bytes) -> bytes | None:
    """``head`` (as :func:`salvage_head` gives it) with its first line replaced
    by ``METHOD sip:invalid SIP/2.0`` when that line starts with a method
    token, else None (a response, or junk): the header fields of a request
    whose Request-Line is malformed (RFC 4475 §3.1.2.7-10) can then be read to
    answer it.  The URI is never used."""
    line, sep, rest = head.partition(b"\r\n")
    words = line.split()
    if len(words) < 2 or words[0].startswith(b"SIP/") or not words[0].isascii():
        return None
    method = words[0].decode("ascii")
    if not is_token(method):
        return None
    return method.encode("ascii") + b" sip:invalid SIP/2.0" + sep + rest
