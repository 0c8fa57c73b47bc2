"""What never reaches a trace file: credentials inside recorded messages.

- SIP: the OAuth 2.0 access token of ``Authorization: Bearer <token>`` and
  ``Bearer access_token="<token>"`` (TS 24.371 Table A.3.2-1) in requests — a
  bearer token is the credential itself (RFC 6750 §5.1).
- Diameter Cx: the authentication secrets a Multimedia-Auth-Answer carries
  in SIP-Auth-Data-Item (TS 29.229 §6.3.13): Digest-HA1 (RFC 4740), and for
  AKA the XRES (SIP-Authorization), Confidentiality-Key and Integrity-Key.

Secrets are overwritten in place with the same number of bytes (``REDACTED***``),
so lengths and Content-Length stay right and the message still decodes.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["redact_diameter", "redact_sip"]

#: What follows the word "Bearer": the token (RFC 6750 §2.1 b64token), bare or quoted.
_TOKEN: Final = re.compile(rb'(?i)[ \t]+(?:access_token[ \t]*=[ \t]*"?)?([\w\-.~+/]+=*)')

_MARK: Final = b"REDACTED"

_CMD_MULTIMEDIA_AUTH: Final = 303
_FLAG_REQUEST: Final = 0x80
_FLAG_VENDOR: Final = 0x80
_VENDOR_3GPP: Final = 10415
#: Grouped AVPs walked into: SIP-Auth-Data-Item, SIP-Digest-Authenticate.
_GROUPS: Final = frozenset({(612, _VENDOR_3GPP), (635, _VENDOR_3GPP)})
#: Secrets: Digest-HA1 (RFC 4740), SIP-Authorization (XRES), CK, IK.
_SECRETS: Final = frozenset(
    {(121, 0), (610, _VENDOR_3GPP), (625, _VENDOR_3GPP), (626, _VENDOR_3GPP)}
)


def _mask(n: int) -> bytes:
    return (_MARK + b"*" * max(0, n - len(_MARK)))[:n]


def redact_sip(data: bytes) -> bytes:
    """``data`` with every Bearer token masked (a scan for the word, then a
    match where it is: a case-insensitive search through the whole message
    costs ten times more)."""
    if data.startswith(b"SIP/"):
        return data  # a response: credentials travel in requests (RFC 3261 §22.2)
    lower = data.lower()
    pos = lower.find(b"bearer")
    if pos < 0:
        return data
    out = bytearray(data)
    while pos >= 0:
        m = _TOKEN.match(data, pos + 6)
        if m is not None and (pos == 0 or not lower[pos - 1 : pos].isalnum()):
            start, end = m.span(1)
            out[start:end] = _mask(end - start)
            pos = end
        pos = lower.find(b"bearer", pos + 6)
    return bytes(out)


def redact_diameter(data: bytes) -> bytes:
    """``data`` with the secrets of a Multimedia-Auth-Answer masked."""
    if len(data) < 20 or data[4] & _FLAG_REQUEST:
        return data
    if int.from_bytes(data[5:8], "big") != _CMD_MULTIMEDIA_AUTH:
        return data
    out = bytearray(data)
    _walk(out, 20, len(out))
    return bytes(out)


def _walk(buf: bytearray, pos: int, end: int) -> None:
    while end - pos >= 8:
        code = int.from_bytes(buf[pos : pos + 4], "big")
        flags = buf[pos + 4]
        length = int.from_bytes(buf[pos + 5 : pos + 8], "big")
        vendor = 0
        body = pos + 8
        if flags & _FLAG_VENDOR:
            if pos + 12 > end:
                return
            vendor = int.from_bytes(buf[pos + 8 : pos + 12], "big")
            body = pos + 12
        stop = pos + length
        if length < body - pos or stop > end:
            return
        if (code, vendor) in _SECRETS:
            buf[body:stop] = _mask(stop - body)
        elif (code, vendor) in _GROUPS:
            _walk(buf, body, stop)
        pos = stop + (-length & 3)
