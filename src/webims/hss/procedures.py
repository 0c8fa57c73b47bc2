"""The HSS's Cx procedures (TS 29.228 §6) as functions over the subscriber store.

Each procedure takes a request dataclass, reads the subscriber (one look-up;
a second only to tell an unknown identity from one of another subscription),
decides, writes the outcome in at most one
:meth:`SubscriberStore.set_registration` call, and returns an answer
dataclass.  Nothing here knows Diameter encoding:
the Cx application maps messages to and from these classes.  A refusal changes
nothing in the store.  Store failures (:class:`StoreError`) propagate, except a
subscriber removed between the read and the write, which answers 5001.

UAR, user registration status query (§6.1.1.1), :func:`perform_uar`
    Unknown IMPU, or one that only a wildcard or a PSI matches (a UE registers
    distinct public user identities): Exp 5001; unknown IMPI: 5001; an IMPI of
    another subscription or not linked to the IMPU: 5002.  Barring and roaming
    are checked except for DE_REGISTRATION and emergency registration: every
    identity of the implicit registration set barred gives Result-Code
    DIAMETER_AUTHORIZATION_REJECTED; a Visited-Network-Identifier that is
    neither a home network nor in ``roaming_networks`` (``*`` allows any)
    gives Exp 5004.  REGISTRATION_AND_CAPABILITIES always answers Result-Code
    DIAMETER_SUCCESS with Server-Capabilities, so that the I-CSCF selects
    afresh.  REGISTRATION: an S-CSCF stored for the subscription (serving this
    set or another one, or stored by a MAR while authentication is pending)
    gives Exp 2002 with its Server-Name; none gives Exp 2001 with
    Server-Capabilities.  DE_REGISTRATION: a registered or unregistered set
    gives Result-Code DIAMETER_SUCCESS with the Server-Name, otherwise Exp 5003.

SAR (§6.1.2.1), RTR (§6.1.3.1) and PPR (§6.2.2.1)
    In :mod:`webims.hss.assignment`, with the S-CSCF assignment they change.

LIR, user location query (§6.1.4.1), :func:`perform_lir`
    Unknown identity: Exp 5001.  Registered or unregistered: Result-Code
    DIAMETER_SUCCESS with the Server-Name.  Not registered, for an originating
    request or an identity with services in the unregistered state
    (:func:`has_unregistered_services`): DIAMETER_SUCCESS with the Server-Name
    if one is stored for the subscription, else Exp 2003 with
    Server-Capabilities.  Otherwise Exp 5003.  An identity found through a
    wildcard is answered with Wildcarded-Public-Identity.  IMS restoration is
    not supported, so User-Authorization-Type is not used.

MAR, authentication (§6.3.1), :func:`perform_mar`
    The identity checks of the UAR (5001, 5002).  Only SIP Digest is
    provisioned: the scheme ``SIP Digest`` or ``Unknown`` is answered with one
    SIP-Digest-Authenticate item (realm, qop ``auth``, the MD5 HA1, and the
    SHA-256 one as the alternate when provisioned); any other scheme is Exp
    5006.  The requesting S-CSCF is stored when none or another one is (the
    registration state does not change; a not-registered set with a stored
    name is what "authentication pending" looks like in the store).  Taking
    the user over from an S-CSCF at another Diameter host that serves some of
    its identities comes with an RTR NEW_SERVER_ASSIGNED for that S-CSCF
    (§8.1.1), for the caller to send.

Server-Capabilities carry the subscription's mandatory and optional
capabilities (§6.7) and no Server-Name; the answers that ask the I-CSCF to
select an S-CSCF always carry them, empty when none are provisioned.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..diameter.cx import Capabilities
from ..diameter.cxdefs import (
    DIAMETER_AUTHORIZATION_REJECTED,
    DIAMETER_SUCCESS,
    CxResult,
    DeregistrationReason,
    ExperimentalResult,
    UserAuthorizationType,
)
from .model import (
    IdentityType,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    Subscriber,
)
from .store import SubscriberNotFound, SubscriberStore
from .userdata import user_data_xml

__all__ = [
    "SIP_DIGEST",
    "Capabilities",
    "DigestItem",
    "LirAnswer",
    "LirRequest",
    "MarAnswer",
    "MarRequest",
    "RtrRequest",
    "UarAnswer",
    "UarRequest",
    "capabilities_of",
    "has_unregistered_services",
    "perform_lir",
    "perform_mar",
    "perform_uar",
]

#: SIP-Authentication-Scheme of SIP Digest (TS 29.229 §6.3.9).
SIP_DIGEST = "SIP Digest"

SUCCESS = CxResult.base(DIAMETER_SUCCESS)
#: States in which an S-CSCF serves an identity and keeps its profile.
SERVED = frozenset({RegistrationState.REGISTERED, RegistrationState.UNREGISTERED})


# -- parts of the answers, and the RTR ---------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One SIP-Auth-Data-Item of scheme SIP Digest: SIP-Digest-Authenticate
    (TS 29.228 Table 6.3.7).  ``ha1`` is for ``algorithm`` (MD5); the
    alternate pair, when present, is the SHA-256 HA1 (RFC 7616)."""

    realm: str
    qop: str
    ha1: str
    algorithm: str = "MD5"
    alternate_algorithm: str | None = None
    alternate_ha1: str | None = None


@dataclass(frozen=True, slots=True)
class RtrRequest:
    """What a Registration-Termination-Request carries (TS 29.228 Table 6.1.3.1).

    ``impus`` empty means every identity of ``impi`` and ``associated_impis``.
    """

    destination_host: str
    impi: str
    associated_impis: tuple[str, ...]
    impus: tuple[str, ...]
    reason: DeregistrationReason
    reason_info: str | None = None


# -- UAR ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UarRequest:
    impi: str
    impu: str
    visited_network: str
    auth_type: UserAuthorizationType = UserAuthorizationType.REGISTRATION
    emergency: bool = False  # UAR-Flags bit 0, IMS emergency registration


@dataclass(frozen=True, slots=True)
class UarAnswer:
    result: CxResult
    server_name: str | None = None
    capabilities: Capabilities | None = None


async def perform_uar(
    store: SubscriberStore, req: UarRequest, *, home_networks: frozenset[str]
) -> UarAnswer:
    """User registration status query (TS 29.228 §6.1.1.1)."""
    try:
        sub, pub = await registering_identity(store, req.impi, req.impu)
    except Refusal as refusal:
        return UarAnswer(refusal.result)
    dereg = req.auth_type == UserAuthorizationType.DE_REGISTRATION
    if not (dereg or req.emergency):
        if all(p.barred for p in sub.implicit_set(pub.impu)):
            return UarAnswer(CxResult.base(DIAMETER_AUTHORIZATION_REJECTED))
        if not may_visit(sub, req.visited_network, home_networks):
            return UarAnswer(exp(ExperimentalResult.DIAMETER_ERROR_ROAMING_NOT_ALLOWED))
    if req.auth_type == UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
        return UarAnswer(SUCCESS, capabilities=capabilities_of(sub))
    name = sub.assignment.server_name if sub.assignment is not None else None
    if dereg:
        if pub.state in SERVED and name is not None:
            return UarAnswer(SUCCESS, server_name=name)
        return UarAnswer(exp(ExperimentalResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED))
    if name is not None:
        return UarAnswer(exp(ExperimentalResult.DIAMETER_SUBSEQUENT_REGISTRATION), name)
    return UarAnswer(
        exp(ExperimentalResult.DIAMETER_FIRST_REGISTRATION), capabilities=capabilities_of(sub)
    )


def may_visit(sub: Subscriber, visited_network: str, home_networks: Iterable[str]) -> bool:
    """Whether the subscription may register from ``visited_network``."""
    visited = visited_network.lower()
    allowed = {n.lower() for n in (*home_networks, *sub.roaming_networks)}
    return visited in allowed or "*" in allowed


# -- LIR ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LirRequest:
    impu: str
    originating: bool = False
    auth_type: UserAuthorizationType | None = None


@dataclass(frozen=True, slots=True)
class LirAnswer:
    result: CxResult
    server_name: str | None = None
    capabilities: Capabilities | None = None
    wildcarded_impu: str | None = None


async def perform_lir(store: SubscriberStore, req: LirRequest) -> LirAnswer:
    """User location query (TS 29.228 §6.1.4.1)."""
    sub = await store.by_impu(req.impu)
    pub = sub.public(req.impu) if sub is not None else None
    if sub is None or pub is None:
        return LirAnswer(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))
    wildcard = pub.impu if pub.impu != req.impu else None
    name = sub.assignment.server_name if sub.assignment is not None else None
    if name is not None and pub.state in SERVED:
        return LirAnswer(SUCCESS, server_name=name, wildcarded_impu=wildcard)
    if req.originating or has_unregistered_services(sub, pub):
        if name is not None:
            return LirAnswer(SUCCESS, server_name=name, wildcarded_impu=wildcard)
        return LirAnswer(
            exp(ExperimentalResult.DIAMETER_UNREGISTERED_SERVICE),
            capabilities=capabilities_of(sub),
            wildcarded_impu=wildcard,
        )
    return LirAnswer(exp(ExperimentalResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED))


# The SessionCase values of TS 29.228 Annex B that only a registered user has:
# ORIGINATING_REGISTERED (0) and TERMINATING_REGISTERED (1).
_REGISTERED_SESSION_CASES = frozenset({"0", "1"})
_UNREGISTERED_PART = "1"  # ProfilePartIndicator UNREGISTERED


def has_unregistered_services(sub: Subscriber, pub: PublicIdentity) -> bool:
    """Whether ``pub`` has services in the unregistered state (TS 29.228
    §6.1.4.1, §6.1.2.1): its service profile holds an initial filter criterion
    that can fire while the identity is not registered, that is one whose
    ProfilePartIndicator is absent or UNREGISTERED and whose trigger point
    either names no SessionCase or names one besides ORIGINATING_REGISTERED
    and TERMINATING_REGISTERED (Annex B).  Conditions are not evaluated
    further: a criterion that might fire counts.  A fragment that does not
    parse counts as none (provisioning checks it with
    :func:`webims.hss.userdata.check_ifc_xml`)."""
    try:
        ifc_xml = sub.profile(pub.service_profile).ifc_xml
    except KeyError:
        return False
    if not ifc_xml.strip():
        return False
    try:
        # Wrapped in an element, the fragment cannot carry a DTD, so no
        # entity but the predefined ones can appear.
        root = ET.fromstring(f"<iFC>{ifc_xml}</iFC>")
    except ET.ParseError:
        return False
    return any(
        _fires_unregistered(ifc) for ifc in root if _local(ifc.tag) == "InitialFilterCriteria"
    )


def _fires_unregistered(ifc: ET.Element) -> bool:
    parts = [(e.text or "").strip() for e in ifc if _local(e.tag) == "ProfilePartIndicator"]
    if parts and parts[0] != _UNREGISTERED_PART:
        return False
    cases = {(e.text or "").strip() for e in ifc.iter() if _local(e.tag) == "SessionCase"}
    return not cases or not cases <= _REGISTERED_SESSION_CASES


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


# -- MAR ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarRequest:
    impi: str
    impu: str
    server_name: str
    diameter_host: str
    scheme: str = SIP_DIGEST
    items: int = 1


@dataclass(frozen=True, slots=True)
class MarAnswer:
    result: CxResult
    impi: str | None = None
    impu: str | None = None
    items: tuple[DigestItem, ...] = ()
    #: The S-CSCF the user was taken over from, if another was stored.
    previous_assignment: ServerAssignment | None = None
    #: RTR NEW_SERVER_ASSIGNED for the previous S-CSCF, for the caller to send.
    rtr: RtrRequest | None = None


_DIGEST_SCHEMES = frozenset({SIP_DIGEST.lower(), "unknown"})


async def perform_mar(store: SubscriberStore, req: MarRequest) -> MarAnswer:
    """Authentication (TS 29.228 §6.3.1, §8.1), SIP Digest only."""
    try:
        sub, pub = await registering_identity(store, req.impi, req.impu)
    except Refusal as refusal:
        return MarAnswer(refusal.result)
    if req.scheme.strip().lower() not in _DIGEST_SCHEMES:
        return MarAnswer(exp(ExperimentalResult.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED))
    priv = sub.private(req.impi)
    assert priv is not None, "registering_identity checked the IMPI"
    item = DigestItem(
        realm=priv.realm,
        qop="auth",
        ha1=priv.ha1,
        alternate_algorithm="SHA-256" if priv.ha1_sha256 is not None else None,
        alternate_ha1=priv.ha1_sha256,
    )
    new = ServerAssignment(req.server_name, req.diameter_host)
    old = sub.assignment
    if old != new:
        irs = sub.implicit_set(pub.impu)
        try:
            await store.set_registration(sub.name, [p.impu for p in irs], pub.state, new)
        except SubscriberNotFound:
            return MarAnswer(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))
    taken_over = old if old is not None and old.server_name != new.server_name else None
    return MarAnswer(
        SUCCESS,
        impi=req.impi,
        impu=req.impu,
        items=(item,) if req.items > 0 else (),
        previous_assignment=taken_over,
        rtr=new_server_rtr(sub, old, new, req.impi),
    )


# -- shared with assignment.py -----------------------------------------------------


class Refusal(Exception):
    """A procedure stops with ``result`` (and, for Exp 5005, the Server-Name of
    the S-CSCF already assigned)."""

    def __init__(self, result: CxResult, server_name: str | None = None) -> None:
        super().__init__(result)
        self.result = result
        self.server_name = server_name

    def __str__(self) -> str:
        return str(self.result)


def exp(code: ExperimentalResult) -> CxResult:
    return CxResult.exp(code)


async def registering_identity(
    store: SubscriberStore, impi: str, impu: str
) -> tuple[Subscriber, PublicIdentity]:
    """The subscriber and identity a UAR or MAR is about (TS 29.228 §6.1.1.1
    steps 1-2, §6.3.1 steps 1-3); raises :class:`Refusal` with Exp 5001 or 5002."""
    sub = await store.by_impu(impu)
    pub = sub.public(impu) if sub is not None else None
    if (
        sub is None
        or pub is None
        or pub.impu != impu
        or pub.identity_type != IdentityType.PUBLIC_USER_IDENTITY
    ):
        raise Refusal(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))
    if sub.private(impi) is None and await store.by_impi(impi) is None:
        raise Refusal(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))
    if not sub.linked(impi, impu):
        raise Refusal(exp(ExperimentalResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH))
    return sub, pub


def capabilities_of(sub: Subscriber) -> Capabilities:
    return Capabilities(sub.mandatory_capabilities, sub.optional_capabilities)


def irs_members(sub: Subscriber, pubs: Iterable[PublicIdentity]) -> tuple[PublicIdentity, ...]:
    """Every identity of the implicit registration sets of ``pubs``, in the
    subscription's order (TS 29.228 §6.5)."""
    sets = {p.irs for p in pubs}
    return tuple(p for p in sub.publics if p.irs in sets)


def served_impus(sub: Subscriber, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The registered or unregistered identities, but those in ``exclude``."""
    skip = set(exclude)
    return tuple(p.impu for p in sub.publics if p.state in SERVED and p.impu not in skip)


def impi_for(sub: Subscriber, pubs: Sequence[PublicIdentity]) -> str:
    """An IMPI to name ``pubs`` by: the first one linked to any of them
    (§6.1.2.1 and §6.2.2.1 let the HSS pick one)."""
    wanted = {p.impu for p in pubs}
    for priv in sub.privates:
        if wanted.intersection(priv.impus):
            return priv.impi
    return sub.privates[0].impi


def associated_impis(sub: Subscriber) -> tuple[str, ...]:
    """Associated-Identities of an SAA: every IMPI of the subscription, when
    it has more than one (TS 29.228 Table 6.1.2.2)."""
    return tuple(p.impi for p in sub.privates) if len(sub.privates) > 1 else ()


def other_impis(sub: Subscriber, impi: str, impus: Iterable[str]) -> tuple[str, ...]:
    """Associated-Identities of an RTR: the other IMPIs linked to ``impus``."""
    wanted = set(impus)
    return tuple(p.impi for p in sub.privates if p.impi != impi and wanted.intersection(p.impus))


def new_server_rtr(
    sub: Subscriber, old: ServerAssignment | None, new: ServerAssignment, impi: str
) -> RtrRequest | None:
    """RTR NEW_SERVER_ASSIGNED for the S-CSCF ``old`` when ``new`` takes the
    user over from it (TS 29.228 §8.1.1): only when it is another S-CSCF at
    another Diameter host, and it serves some identity (``sub`` as read before
    the take-over)."""
    if old is None or old.server_name == new.server_name:
        return None
    if old.diameter_host == new.diameter_host:
        return None
    served = served_impus(sub)
    if not served:
        return None
    return RtrRequest(
        destination_host=old.diameter_host,
        impi=impi,
        associated_impis=other_impis(sub, impi, served),
        impus=served,
        reason=DeregistrationReason.NEW_SERVER_ASSIGNED,
        reason_info=f"user taken over by {new.server_name}",
    )


def user_data_of(sub: Subscriber, pub: PublicIdentity, impi: str | None) -> bytes:
    """The User-Data XML of the implicit registration set of ``pub``.

    Kept for as long as what it is made of stays the same (the identities,
    their barring and profiles, the IMPIs; not the registration state, which
    the document does not carry): making one costs ~40 µs, every SAR
    REGISTRATION needs one.
    """
    key = (
        pub.impu,
        impi,
        tuple(
            (p.impu, p.irs, p.service_profile, p.barred, p.identity_type, p.display_name)
            for p in sub.publics
        ),
        sub.profiles,
        sub.privates,
    )
    found = _user_data.get(key)
    if found is None:
        found = user_data_xml(sub, pub.impu, impi=impi)
        if len(_user_data) >= _USER_DATA_KEPT:
            _user_data.clear()
        _user_data[key] = found
    return found


_USER_DATA_KEPT = 20_000
_user_data: dict[object, bytes] = {}
