"""Building requests as a user agent client does (RFC 3261 §8.1.1, §9.1, §13.2.2.4).

These helpers build messages; sending them is the transaction layer's job.
"""

from __future__ import annotations

import secrets

from .address import Address
from .grammar import split_list
from .headers import Headers
from .message import Request, Response
from .uri import URI
from .via import MAGIC_COOKIE

__all__ = ["ack_for_2xx", "cancel_for", "new_branch", "new_call_id", "new_request"]


def new_branch() -> str:
    """A branch unique in space and time, with the RFC 3261 magic cookie (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_call_id(host: str = "") -> str:
    token = secrets.token_hex(12)
    return f"{token}@{host}" if host else token


def new_request(
    method: str,
    uri: URI | str,
    *,
    from_: Address | str,
    to: Address | str,
    call_id: str,
    cseq: int,
    via: str | None = None,
    contact: str | None = None,
    route: list[str] | None = None,
    max_forwards: int = 70,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A new out-of-dialog request with the six mandatory headers (§8.1.1).

    ``via`` is the full Via value (``SIP/2.0/UDP host:port;branch=...``); the
    transport layer may not know its address yet, so it is optional here.
    """
    pairs: list[tuple[str, str]] = []
    if via is not None:
        pairs.append(("Via", via))
    pairs += [
        ("Max-Forwards", str(max_forwards)),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    for r in route or []:
        pairs.append(("Route", r))
    if contact is not None:
        pairs.append(("Contact", contact))
    if extra:
        pairs += extra
    req = Request(method, uri, Headers.from_pairs(pairs))
    req.set_body(body, content_type)
    return req


def cancel_for(request: Request) -> Request:
    """The CANCEL of a pending request (§9.1).

    Same Request-URI, Call-ID, From, To and CSeq number; method CANCEL; only the
    top Via of the request (so it matches the same server transaction
    downstream); the request's Route headers.
    """
    pairs: list[tuple[str, str]] = [
        ("Via", split_list(request.headers.get("Via") or "")[0]),
        ("Max-Forwards", "70"),
        ("From", request.headers.get("From") or ""),
        ("To", request.headers.get("To") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} CANCEL"),
    ]
    pairs += [("Route", r) for r in request.headers.get_all("Route")]
    cancel = Request("CANCEL", request.uri_text, Headers.from_pairs(pairs))
    cancel.set_body(b"")
    return cancel


def ack_for_2xx(invite: Request, response: Response, *, via: str) -> Request:
    """The ACK a UAC sends for a 2xx to its INVITE (§13.2.2.4).

    A new transaction (new branch, given in ``via``) within the dialog: the
    Request-URI is the remote target (the 2xx's Contact), the route set is the
    2xx's Record-Route in reverse, CSeq number of the INVITE.
    """
    contacts = response.contacts
    target = str(contacts[0].uri) if contacts else invite.uri_text
    pairs: list[tuple[str, str]] = [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", response.headers.get("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    pairs += [("Route", f"<{rr.uri}>") for rr in reversed(response.record_routes)]
    ack = Request("ACK", target, Headers.from_pairs(pairs))
    ack.set_body(b"")
    return ack
