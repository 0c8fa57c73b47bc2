"""Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3), and the ACK
a client transaction builds for a 300-699 response (§17.1.1.3).

The keys are read from the raw top Via when it has the common shape (exact
``SIP/2.0/transport``, ``host[:port]``, plain parameters); anything else goes
through the full Via parser.  Both paths give the same key: branch as written,
host in lower case, port as an integer or None.
"""

from __future__ import annotations

import re

from . import grammar as g
from .headers import Headers
from .message import Message, Request, Response
from .via import MAGIC_COOKIE

__all__ = ["legacy_key", "make_ack", "server_key", "top_via_key"]

# The common shape of a top Via, read without the full Via parser: exact
# sent-protocol, host[:port], then simple parameters up to the next element.
# Anything else (quoted values, odd spacing, lower-case protocol ...) falls
# back to ``msg.top_via``; both paths normalise sent-by the same way.
_FAST_VIA = re.compile(
    r"SIP/2\.0/[A-Za-z0-9.\-!%*_+`'~]+ +"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?"
    r"((?: *;[^;,\"]*)*)\s*(?:,|\Z)"
)
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;\s]+)", re.IGNORECASE)


def top_via_key(msg: Message) -> tuple[str | None, str, int | None]:
    """``(branch, host in lower case, port)`` of the top Via."""
    value = msg.headers.get("Via")
    if value is not None:
        m = _FAST_VIA.match(value)
        if m is not None:
            host, port, params = m.groups()
            b = _BRANCH.search(params) if params else None
            return (b.group(1) if b else None), host.lower(), (int(port) if port else None)
    via = msg.top_via
    return via.branch, via.host.lower(), via.port


def legacy_key(req: Request, method: str) -> tuple[object, ...]:
    """RFC 2543 matching (§17.2.3) without the To tag, compared separately:
    Request-URI, From tag, Call-ID, CSeq number, method, top Via."""
    return (req.uri_text, req.from_.tag, req.call_id, req.cseq.seq, method, str(req.top_via))


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 response.

    See RFC 3261 §17.1.1.3: the Request-URI, Call-ID, From and CSeq number of
    the INVITE, the method ACK, the To of the response, the INVITE's top Via
    only, and its Route header fields.
    """
    h = invite.headers
    top = h.get("Via") or ""
    if "," in top:
        top = g.split_list(top)[0]
    to = response.headers.get("To") or h.get("To") or ""
    pairs = [("Via", top)]
    pairs.extend(("Route", route) for route in h.get_all("Route"))
    pairs += [
        ("Max-Forwards", "70"),
        ("From", h.get("From") or ""),
        ("To", to),
        ("Call-ID", h.get("Call-ID") or ""),
        ("CSeq", f"{invite.cseq.seq} ACK"),
        ("Content-Length", "0"),
    ]
    return Request("ACK", invite.uri_text, Headers.from_pairs(pairs))


def server_key(req: Request, method: str) -> tuple[tuple[object, ...], bool]:
    """The key of the server transaction ``req`` belongs to, and whether it is
    an RFC 2543 one (§17.2.3).

    ``method`` is the method of the transaction's request: INVITE for an ACK
    (or for a CANCEL looking for its INVITE).  With the magic cookie the key is
    branch, sent-by and method; without it, see :func:`legacy_key`.
    """
    branch, host, port = top_via_key(req)
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, host, port, method), False
    return legacy_key(req, method), True
