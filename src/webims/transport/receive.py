"""What the server transport does to every message it receives (RFC 3261 §18.2.1).

* :func:`stamp_received` records where a request really came from in its top
  Via, so that responses find their way back through NATs: ``received`` when
  the sent-by host is not the packet's source address (always, for the
  ``.invalid`` hosts of WebSocket clients, RFC 7118 §5.2), and with RFC 3581
  ``rport`` the source port as well.
* :func:`answer_for` builds the stateless answer to a request that could not
  be used (400, 413, 513 ...), from whatever part of it is still readable,
  including a request whose Request-Line itself is malformed (RFC 4475
  §3.1.2.7-10: a Request-URI in angle brackets or with LWS inside, extra or
  trailing SPs), as long as it starts with a method and its Via, From, To,
  Call-ID and CSeq can be read.
"""

from __future__ import annotations

import ipaddress

from ..sip.checks import response_for_error
from ..sip.errors import SipError
from ..sip.framing import plain_request_line, salvage_head
from ..sip.message import Limits, Request, Response, parse_message
from .flow import Address

__all__ = ["answer_for", "stamp_received"]


def _same_ip(host: str, source: str) -> bool:
    if host == source:
        return True
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(source)
    except ValueError:
        return False  # a domain name (or junk): never the source address


def stamp_received(req: Request, source: Address) -> bool:
    """Add ``received`` (and fill an empty ``rport``) to the top Via of ``req``.

    Returns True if the Via was changed.  Raises
    :class:`~webims.sip.errors.ParseError` if the top Via does not parse.
    """
    via = req.top_via
    ip, port = source
    changed = False
    if via.wants_rport:
        # RFC 3581 §4: rport set to the source port, and received added even
        # when it equals sent-by.
        via.params.set("rport", str(port))
        via.params.set("received", ip)
        changed = True
    elif not _same_ip(via.host_bare, ip):
        via.params.set("received", ip)
        changed = True
    if changed:
        req.replace_top_via(via)
    return changed


# Generous limits for re-reading the salvaged start line and Via/From/To/
# Call-ID/CSeq of a rejected message; salvage_head already bounded its size.
_SALVAGE_LIMITS = Limits(
    max_message_size=1 << 20,
    max_header_size=1 << 20,
    max_line_length=1 << 20,
    max_headers=1 << 16,
    max_body_size=0,
)


def answer_for(data: bytes | None, error: SipError, limits: Limits) -> Response | None:
    """The stateless response to a request rejected with ``error``, if any.

    ``data`` is the raw message (or the head a framer salvaged).  None when
    it is not a request, is an ACK (never answered, §17.2.1), or when not even
    its start line and Via can be read.
    """
    if not data:
        return None
    head = salvage_head(data, limits.max_header_size)
    if head is None:
        return None
    try:
        req = parse_message(head, _SALVAGE_LIMITS)
    except SipError:
        # Perhaps only the Request-Line is broken: read the header fields
        # under a well-formed Request-Line of the same method.
        head = plain_request_line(head)
        if head is None:
            return None
        try:
            req = parse_message(head, _SALVAGE_LIMITS)
        except SipError:
            return None
    if not isinstance(req, Request) or req.method == "ACK" or "Via" not in req.headers:
        return None
    try:
        return response_for_error(req, error)
    except (SipError, ValueError):
        return None
