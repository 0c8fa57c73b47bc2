"""The sanity checks every element runs on a request before acting on it
(RFC 3261 §8.2.1–§8.2.3 and §16.3), and building responses (§8.2.6).

:func:`check_request` raises the :class:`~webims.sip.errors.SipError` whose
status the element answers with; :func:`make_response` builds that answer.
"""

from __future__ import annotations

import secrets

from .errors import (
    BadExtension,
    ParseError,
    SipError,
    TooManyHops,
    UnsupportedURIScheme,
    VersionNotSupported,
)
from .headers import Field, Headers, header_key
from .message import Request, Response
from .status import reason_phrase
from .uri import AbsoluteURI, SipURI

__all__ = [
    "check_proxy_request",
    "check_request",
    "check_response",
    "make_response",
    "new_tag",
    "response_for_error",
]

#: Schemes an element of this stack can route on.
DEFAULT_SCHEMES = frozenset({"sip", "sips", "tel"})


def check_request(
    req: Request,
    *,
    supported: frozenset[str] | set[str] = frozenset(),
    schemes: frozenset[str] = DEFAULT_SCHEMES,
    check_require: bool = True,
) -> None:
    """Raise the error a UAS answers ``req`` with, or return None.

    Checks, in the order of §8.2: SIP version (505), the mandatory headers
    and their syntax, every Via, Contact and Record-Route included (400),
    CSeq method = request method (400), the Request-URI (400, 416 for a scheme
    we do not handle), Require and Proxy-Require against ``supported`` (420;
    not for ACK and CANCEL; Require is skipped with ``check_require=False``).
    """
    _check(req, supported, schemes, check_require, everything=True)


def _check(
    req: Request,
    supported: frozenset[str] | set[str],
    schemes: frozenset[str],
    check_require: bool,
    *,
    everything: bool,
) -> None:
    if req.version.upper() != "SIP/2.0":
        raise VersionNotSupported(f"unsupported version {req.version}")
    cseq = req.cseq
    if cseq.method != req.method:
        raise ParseError(f"CSeq method {cseq.method} does not match {req.method}")
    # Reading each accessor parses (and caches) the header, raising on bad syntax.
    # (Content-Length was checked by parse_message, which needs it to find the body.)
    _ = (req.top_via, req.call_id, req.from_tag, req.to_tag, req.max_forwards, req.routes)
    if everything:
        _ = (req.from_, req.to, req.vias, req.contacts, req.record_routes, req.content_length)
    uri = req.uri
    if isinstance(uri, AbsoluteURI) or uri.scheme not in schemes:
        raise UnsupportedURIScheme(f"unsupported URI scheme {uri.scheme}")
    if isinstance(uri, SipURI) and uri.headers is not None:
        # §19.1.5: URI headers are not allowed in a Request-URI.
        raise ParseError("header fields in the Request-URI")
    if req.method not in ("ACK", "CANCEL"):
        wanted = list(req.proxy_require)
        if check_require:
            wanted += req.require
        unknown = [tag for tag in wanted if tag not in supported]
        if unknown:
            raise BadExtension(unknown)


def check_proxy_request(
    req: Request, *, supported: frozenset[str] | set[str] = frozenset()
) -> None:
    """The checks of a proxy (§16.3 item 1: the syntax of what it uses).

    Those of :func:`check_request` for the start line, the top Via, From, To,
    Call-ID, CSeq, Max-Forwards, Route and Proxy-Require (not Require, and not
    the lower Vias, Contact or Record-Route, which a proxy passes on untouched:
    the element that uses them checks them, e.g. :func:`check_register`), then
    Max-Forwards (483).
    """
    _check(req, supported, DEFAULT_SCHEMES, False, everything=False)
    mf = req.max_forwards
    if mf is not None and mf <= 0:
        raise TooManyHops("Max-Forwards reached zero")


def check_register(req: Request) -> None:
    """What a registrar (or an edge proxy binding a registration) checks in a
    REGISTER beyond the common checks (RFC 3261 §10.3 steps 2 and 6).

    Every Contact must parse; ``Contact: *`` is allowed only alone and with
    ``Expires: 0`` (400 otherwise); ``expires`` parameters must be numbers.
    """
    contacts = req.contacts
    if req.contact_star:
        if req.expires != 0:
            raise ParseError("Contact: * needs Expires: 0")
        return
    for contact in contacts:
        value = contact.params.get("expires")
        if value is not None and (not value.isdigit() or not value.isascii()):
            raise ParseError(f"invalid Contact expires {value!r}")
    _ = req.expires


def check_response(resp: Response) -> None:
    """Raise :class:`ParseError` if a response must be discarded (§18.1.2, §16.7).

    Besides the headers every element needs, a response whose Via path leads
    to a broadcast address (RFC 4475 §3.3.10) is refused: nothing may be sent
    there.
    """
    if resp.version.upper() != "SIP/2.0":
        raise ParseError(f"unsupported version {resp.version}")
    vias = resp.vias
    if not vias:
        raise ParseError("response without Via")
    for via in vias:
        if via.host == "255.255.255.255" or via.received == "255.255.255.255":
            raise ParseError("broadcast address in Via")
    _ = (resp.call_id, resp.cseq, resp.from_, resp.to, resp.content_length)


def new_tag() -> str:
    """A From/To tag with at least 32 bits of randomness (§19.3)."""
    return secrets.token_hex(6)


# (name, lookup key) of the fields a response copies from its request.
_COPIED = (("Via", "via"), ("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq"))


def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``req`` per §8.2.6.2: Via, From, To, Call-ID, CSeq copied.

    ``to_tag`` is added to To when the request's To has none (never on 100).
    Record-Route is copied into responses to dialog-creating requests by the
    UAS layer, not here.
    """
    fields: list[Field] = []
    index = req.headers._lookup()
    for name, key in _COPIED:
        for value in index.get(key, ()):
            if key == "to" and status > 100 and to_tag is not None and "tag" not in req.to.params:
                value = f"{value};tag={to_tag}"
            fields.append((key, name, value, None))
    if extra:
        fields.extend([(header_key(n), n, v, None) for n, v in extra])
    resp = Response(status, reason or reason_phrase(status), Headers(fields))
    resp.set_body(body, content_type)
    return resp


def response_for_error(req: Request, err: SipError) -> Response:
    """The response an element sends when ``check_request`` (or parsing) fails."""
    extra: list[tuple[str, str]] = []
    if isinstance(err, BadExtension):
        extra.append(("Unsupported", ", ".join(err.unsupported)))
    try:
        return make_response(req, err.status, err.reason, to_tag=new_tag(), extra=extra)
    except ParseError:
        # The headers needed for a proper response are themselves broken:
        # answer with what can be copied verbatim.
        fields = [(n, v) for n, v in req.headers if n.lower() in ("via", "v", "call-id", "i")]
        resp = Response(err.status, err.reason, Headers.from_pairs(fields))
        resp.set_body(b"")
        return resp
