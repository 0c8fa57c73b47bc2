"""What the I-CSCF does with a request once the HSS has answered: proxy it
to an S-CSCF (with a Route naming it) or answer it itself."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..sip.errors import ParseError
from ..sip.uri import SipURI, parse_uri

__all__ = ["Outcome", "route_to"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Forward to ``scscf`` (an S-CSCF's SIP URI), or answer ``status``."""

    scscf: str | None = None
    status: int = 0
    reason: str | None = None

    @classmethod
    def forward(cls, scscf: str) -> Outcome:
        return cls(scscf=scscf)

    @classmethod
    def answer(cls, status: int, reason: str | None = None) -> Outcome:
        return cls(status=status, reason=reason)


@functools.lru_cache(maxsize=256)  # a few S-CSCFs, one Route each: parsed once
def route_to(server_name: str) -> str:
    """The Route header value that sends a request to the S-CSCF
    ``server_name`` (a SIP URI, TS 29.228 §6.1.1): the URI as a loose
    router (RFC 3261 §16.12), ``<sip:scscf.home1.net:5080;transport=tcp;lr>``.

    Raises :class:`ParseError` when the name is not a SIP URI.
    """
    uri = parse_uri(server_name.strip())
    if not isinstance(uri, SipURI):
        raise ParseError(f"Server-Name {server_name!r} is not a SIP URI")
    uri = uri.copy()
    if not uri.lr:
        uri.params.set("lr")
    return f"<{uri}>"
