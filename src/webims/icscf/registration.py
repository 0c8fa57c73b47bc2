"""The I-CSCF's part of registration (TS 24.229 5.3.1.2): the UAR it asks
the HSS and what it does with the UAA.

UAR (TS 29.229 §6.1.1):

* User-Name: the username of the Authorization header's Digest credentials
  (with ``integrity-protected="auth-done"`` from an eP-CSCF, the IMPI the
  token named); without Authorization, the IMPI derived from the To IMPU by
  removing the scheme, the port and the URI and header parameters
  (:func:`derive_impi`).
* Public-Identity: the To IMPU.
* Visited-Network-Identifier: the P-Visited-Network-ID; a REGISTER without
  one came from a P-CSCF of the home network, so the home domain is sent.
* User-Authorization-Type: DE_REGISTRATION when the REGISTER removes every
  binding it names (:func:`is_deregistration`), else REGISTRATION.

UAA (SPEC §2.2, TS 29.228 §6.1.1):

* Exp 2001/2002, or Result-Code 2001 (de-registration, capabilities):
  with a Server-Name, forward there; else select by capabilities, and when no
  S-CSCF fits answer 600 (Busy Everywhere), as 5.3.1.2 asks when none can be
  selected.
* Any other permanent failure (Exp 5001 USER_UNKNOWN, 5002
  IDENTITIES_DONT_MATCH, 5004 ROAMING_NOT_ALLOWED, 5003
  IDENTITY_NOT_REGISTERED for a de-registration, Result-Code 5003
  AUTHORIZATION_REJECTED): 403 (Forbidden).
* After a failed S-CSCF (5.3.1.3, :mod:`.procedures`): the UAR is
  REGISTRATION_AND_CAPABILITIES and the failed S-CSCF is not selected again.
* Anything else (DIAMETER_UNABLE_TO_COMPLY, TOO_BUSY, UNABLE_TO_DELIVER), and
  no answer at all: 480 (Temporarily Unavailable), a project choice (SPEC §8
  statement 30).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..diameter.cx import UaAnswer
from ..diameter.cxdefs import (
    DIAMETER_AUTHORIZATION_REJECTED,
    ExperimentalResult,
    UserAuthorizationType,
)
from ..sip import grammar as g
from ..sip.auth import DigestCredentials
from ..sip.errors import ParseError
from ..sip.message import Request
from ..sip.uri import URI, SipURI, TelURI
from .routing import Outcome
from .selection import ScscfTable, select_scscf

__all__ = [
    "UarParameters",
    "derive_impi",
    "is_deregistration",
    "uaa_outcome",
    "uar_parameters",
]

_SUCCESS = frozenset(
    {
        ExperimentalResult.DIAMETER_FIRST_REGISTRATION,
        ExperimentalResult.DIAMETER_SUBSEQUENT_REGISTRATION,
    }
)


@dataclass(frozen=True, slots=True)
class UarParameters:
    impi: str
    impu: str
    visited_network: str
    auth_type: UserAuthorizationType


def canonical_impu(uri: URI) -> str:
    """A public identity as the HSS keys it: ``sip:user@host`` or ``tel:number``
    (no port, no parameters, no headers)."""
    if isinstance(uri, SipURI):
        user = f"{uri.user}@" if uri.user is not None else ""
        return f"{uri.scheme}:{user}{uri.host.lower()}"
    if isinstance(uri, TelURI):
        return f"tel:{uri.number}"
    raise ParseError(f"{uri} is not a public user identity")


def derive_impi(impu: URI) -> str:
    """The IMPI of a REGISTER without Authorization (TS 24.229 5.3.1.2,
    TS 23.003 §13.3): the IMPU without its scheme, port and parameters."""
    if isinstance(impu, SipURI):
        user = f"{impu.user_unescaped}@" if impu.user is not None else ""
        return f"{user}{impu.host.lower()}"
    if isinstance(impu, TelURI):
        return impu.number
    raise ParseError(f"cannot derive a private identity from {impu}")


def _digest_username(request: Request, domain: str) -> str | None:
    """The Digest username, from the credentials for the home realm if there
    are several."""
    digests = [c for c in request.authorization if isinstance(c, DigestCredentials) and c.username]
    for cred in digests:
        if (cred.realm or "").lower() == domain.lower():
            return cred.username
    return digests[0].username if digests else None


def is_deregistration(request: Request) -> bool:
    """Whether a REGISTER removes every binding it carries (RFC 3261 §10.2.2):
    ``Contact: *`` or Contacts all expiring at 0, each by its ``expires``
    parameter or else the Expires header.  A REGISTER without Contact (a
    query) is no de-registration."""
    header_expires = request.expires
    if request.contact_star:
        return header_expires == 0
    contacts = request.contacts
    if not contacts:
        return False
    for contact in contacts:
        value = contact.params.get("expires")
        if value is not None:
            if not g.is_digits(value.strip()):
                raise ParseError(f"invalid Contact expires {value!r}")
            expires: int | None = int(value)
        else:
            expires = header_expires
        if expires != 0:
            return False
    return True


def uar_parameters(request: Request, domain: str) -> UarParameters:
    """The UAR for ``request`` (see the module notes); :class:`ParseError`
    when a header it needs is malformed."""
    impu_uri = request.to.uri
    impu = canonical_impu(impu_uri)
    impi = _digest_username(request, domain) or derive_impi(impu_uri)
    visited = request.p_visited_network_id
    return UarParameters(
        impi=impi,
        impu=impu,
        visited_network=visited[0] if visited else domain,
        auth_type=(
            UserAuthorizationType.DE_REGISTRATION
            if is_deregistration(request)
            else UserAuthorizationType.REGISTRATION
        ),
    )


def uaa_outcome(uaa: UaAnswer, scscfs: ScscfTable, *, exclude: Collection[str] = ()) -> Outcome:
    """What to do with the REGISTER after ``uaa`` (see the module notes);
    ``exclude``: S-CSCFs not to select (one that failed to answer)."""
    result = uaa.result
    ok = (result.experimental and result.code in _SUCCESS) or (
        not result.experimental and result.success
    )
    if ok:
        if uaa.server_name and uaa.server_name not in exclude:
            return Outcome.forward(uaa.server_name)
        chosen = select_scscf(uaa.capabilities, scscfs, exclude=exclude)
        if chosen is None:
            return Outcome.answer(600, "No S-CSCF Available")
        return Outcome.forward(chosen)
    if (result.experimental and 5000 <= result.code < 6000) or (
        not result.experimental and result.code == DIAMETER_AUTHORIZATION_REJECTED
    ):
        return Outcome.answer(403)
    return Outcome.answer(480)
