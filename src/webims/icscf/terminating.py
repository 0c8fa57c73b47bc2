"""Terminating routing at the I-CSCF (TS 24.229 5.3.2.1): the LIR for the
Request-URI and what the I-CSCF does with the LIA.

A request is for this procedure when it is an initial request (no To tag)
other than REGISTER, has no Route left once the I-CSCF's own was removed,
and its Request-URI is a public identity of the home network: a SIP URI
whose host is the home domain, or a tel URI (:func:`is_home_identity`).

LIA (SPEC §2.2, TS 29.228 §6.1.4):

* Result-Code 2001 with a Server-Name: forward to that S-CSCF.
* Exp 2003 UNREGISTERED_SERVICE (or 2001 without a name) with
  Server-Capabilities: select an S-CSCF for the unregistered user's
  services; none fits: 480.
* Exp 5001 USER_UNKNOWN: 404 (Not Found).
* Exp 5003 IDENTITY_NOT_REGISTERED: 480 (Temporarily Unavailable).
* Any other failure, or no answer: 480.
"""

from __future__ import annotations

from ..diameter.cx import LiAnswer
from ..diameter.cxdefs import ExperimentalResult
from ..sip.message import Request
from ..sip.uri import SipURI, TelURI
from .routing import Outcome
from .selection import ScscfTable, select_scscf

__all__ = ["is_home_identity", "is_terminating", "lia_outcome"]


def is_home_identity(request: Request, domain: str) -> bool:
    """Whether the Request-URI is a public identity of the home network."""
    uri = request.uri
    if isinstance(uri, TelURI):
        return True
    return isinstance(uri, SipURI) and uri.host_bare == domain.lower()


def is_terminating(request: Request, domain: str) -> bool:
    """Whether ``request`` (its own Route already removed) asks for 5.3.2.1."""
    return (
        request.method not in ("REGISTER", "ACK", "CANCEL")
        and request.to_tag is None
        and not request.routes
        and is_home_identity(request, domain)
    )


def lia_outcome(lia: LiAnswer, scscfs: ScscfTable) -> Outcome:
    """What to do with the request after ``lia`` (see the module notes)."""
    result = lia.result
    unregistered = (
        result.experimental and result.code == ExperimentalResult.DIAMETER_UNREGISTERED_SERVICE
    )
    if (not result.experimental and result.success) or unregistered:
        if lia.server_name:
            return Outcome.forward(lia.server_name)
        chosen = select_scscf(lia.capabilities, scscfs)
        if chosen is None:
            return Outcome.answer(480, "No S-CSCF Available")
        return Outcome.forward(chosen)
    if result.experimental and result.code == ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN:
        return Outcome.answer(404)
    return Outcome.answer(480)
