"""Cutting a TCP byte stream into Diameter messages (RFC 6733 §3), sans-I/O.

Every message starts with a 20-byte header whose version is 1 and whose
24-bit Message Length covers the whole message, a multiple of 4.  A header
that breaks these rules leaves no way to find the next message: the framer
raises :class:`FramingError` and is dead from then on (the connection must be
closed, after an answer where one can be built from the header).
"""

from __future__ import annotations

from .errors import (
    DIAMETER_INVALID_MESSAGE_LENGTH,
    DIAMETER_UNSUPPORTED_VERSION,
    FramingError,
)

__all__ = ["HEADER_LENGTH", "DiameterFramer"]

HEADER_LENGTH = 20


class DiameterFramer:
    """Feed bytes, take whole messages (as bytes) out."""

    __slots__ = ("_buf", "_error", "max_message_size")

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def head(self) -> bytes:
        """The first header's worth of buffered bytes (for an error answer)."""
        return bytes(self._buf[:HEADER_LENGTH])

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def next_message(self) -> bytes | None:
        """The next complete message, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if len(buf) < 4:
            return None
        version = buf[0]
        length = int.from_bytes(buf[1:4], "big")
        if version != 1:
            self._error = FramingError(
                DIAMETER_UNSUPPORTED_VERSION, f"Diameter version {version} is not 1"
            )
            raise self._error
        if length < HEADER_LENGTH or length % 4 or length > self.max_message_size:
            self._error = FramingError(
                DIAMETER_INVALID_MESSAGE_LENGTH, f"invalid Message Length {length}"
            )
            raise self._error
        if len(buf) < length:
            return None
        message = bytes(buf[:length])
        del buf[:length]
        return message
