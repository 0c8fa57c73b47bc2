"""Errors of the SIP core.

Every error a peer can cause carries the SIP status a server answers it with, so
that an element turns any parse or check failure into the right response without
a table of its own::

    SipError                      (status, reason; the base of everything here)
     ├── ParseError               the bytes are not a SIP message (400)
     │    ├── MessageTooLarge     a size, line or header-count limit (513)
     │    └── BodyTooLarge        Content-Length over the body limit (413)
     ├── UnsupportedURIScheme     Request-URI scheme not handled (416)
     ├── BadExtension            Require names an option we lack (420)
     ├── TooManyHops              Max-Forwards reached 0 (483)
     ├── LoopDetected             the request came back unchanged (482)
     └── VersionNotSupported      SIP version other than 2.0 (505)

``LocalError`` is separate: it means the caller misused the API (for example
sent a final response twice), never that the peer did something wrong.
"""

from __future__ import annotations

__all__ = [
    "BadExtension",
    "BodyTooLarge",
    "LocalError",
    "LoopDetected",
    "MessageTooLarge",
    "ParseError",
    "SipError",
    "TooManyHops",
    "UnsupportedURIScheme",
    "VersionNotSupported",
]


class SipError(Exception):
    """A failure caused by a remote peer, with the status to answer it with."""

    status: int = 500
    default_reason: str = "Server Internal Error"

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or self.default_reason)
        if status is not None:
            self.status = status
        self.detail = message or self.default_reason

    @property
    def reason(self) -> str:
        """Reason phrase for the status line."""
        return self.default_reason


class ParseError(SipError):
    status = 400
    default_reason = "Bad Request"


class MessageTooLarge(ParseError):
    status = 513
    default_reason = "Message Too Large"


class BodyTooLarge(ParseError):
    status = 413
    default_reason = "Request Entity Too Large"


class UnsupportedURIScheme(SipError):
    status = 416
    default_reason = "Unsupported URI Scheme"


class BadExtension(SipError):
    """Carries the option tags to list in the Unsupported header of the 420."""

    status = 420
    default_reason = "Bad Extension"

    def __init__(self, unsupported: list[str]) -> None:
        super().__init__("unsupported option tags: " + ", ".join(unsupported))
        self.unsupported = unsupported


class TooManyHops(SipError):
    status = 483
    default_reason = "Too Many Hops"


class LoopDetected(SipError):
    status = 482
    default_reason = "Loop Detected"


class VersionNotSupported(SipError):
    status = 505
    default_reason = "Version Not Supported"


class LocalError(Exception):
    """The API was used in a way the protocol forbids (a bug in the caller)."""
