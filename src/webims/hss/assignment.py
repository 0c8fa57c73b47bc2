"""The S-CSCF assignment: SAR, S-CSCF registration/deregistration notification
(TS 29.228 §6.1.2.1), and the HSS-initiated RTR and PPR (§6.1.3.1, §6.2.2.1),
as functions over the subscriber store.  UAR, LIR and MAR, and what the
procedures share, are in :mod:`webims.hss.procedures`.

SAR, :func:`perform_sar`
------------------------

The identities (steps 1-2): an unknown IMPI or IMPU is Exp 5001; an IMPU of
another subscription than the IMPI's, or not linked to it, is Exp 5002.
User-Name is required for REGISTRATION, RE_REGISTRATION and the
authentication types, and Public-Identity for all but the deregistrations,
which may name the IMPI alone (then every IMPU it may register) or several
IMPUs; a missing one is Result-Code DIAMETER_MISSING_AVP, a second IMPU where
only one may be DIAMETER_AVP_OCCURS_TOO_MANY_TIMES.  Every change applies to
whole implicit registration sets (§6.5.1) and is written in one
:meth:`SubscriberStore.set_registration` call, or none when nothing changes.

REGISTRATION, RE_REGISTRATION
    A PSI cannot register: Exp 5007.  The S-CSCF is stored, the set becomes
    registered, and the answer is Result-Code DIAMETER_SUCCESS with the
    User-Data, Charging-Information and Allowed-WAF-WWSF-Identities (§6.6),
    unless User-Data-Already-Available says the S-CSCF has them, and with
    Associated-Identities when the subscription has several IMPIs.
    Another S-CSCF stored: §6.1.2.1 answers Exp 5005 unless IMS restoration's
    "S-CSCF reassignment pending" flag is set.  The store keeps no such flag,
    and a registration authenticated by the eP-CSCF (``auth-done``) has no
    MAR to move the assignment first (§8.1), so refusing would leave a user
    whose S-CSCF failed unable to register anywhere until it came back.  The
    HSS therefore takes the registration as a reassignment: it stores the new
    S-CSCF, and answers with ``previous_assignment`` and, when the old S-CSCF
    (at another Diameter host) served identities, an RTR NEW_SERVER_ASSIGNED
    for it (§8.1.1) that the caller sends.  The other implicit registration
    sets keep their state in the HSS; the RTR deregisters them at the old
    S-CSCF, so their user registers them again through the new one.

UNREGISTERED_USER
    Another S-CSCF stored: Exp 5005 with its Server-Name.  Otherwise the
    S-CSCF is stored, a set not registered becomes unregistered (a registered
    one stays so), and the answer carries the profile as above, with an IMPI
    of the set as User-Name when the request had none.

NO_ASSIGNMENT
    The profile as above if the requester is the stored S-CSCF, else
    Result-Code DIAMETER_UNABLE_TO_COMPLY; nothing is written.

TIMEOUT_DEREGISTRATION, USER_DEREGISTRATION, DEREGISTRATION_TOO_MUCH_DATA,
ADMINISTRATIVE_DEREGISTRATION
    The sets become not registered; the assignment is cleared unless another
    identity of the subscription stays registered or unregistered.  Result-Code
    DIAMETER_SUCCESS.

TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME, USER_DEREGISTRATION_STORE_SERVER_NAME
    The HSS decides whether to keep the name (§6.1.2.1).  It keeps it when an
    identity of the sets has services in the unregistered state
    (:func:`~webims.hss.procedures.has_unregistered_services`), since only
    those make an S-CSCF that keeps the profile useful: the sets become
    unregistered and the answer is DIAMETER_SUCCESS.  Otherwise it answers as
    for the types above, with Exp 2004 DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED.

AUTHENTICATION_FAILURE, AUTHENTICATION_TIMEOUT
    The name a MAR stored is cleared if the set is not registered and no
    identity of the subscription is served; otherwise nothing changes.
    Result-Code DIAMETER_SUCCESS.

A deregistration or authentication type from an S-CSCF other than the one
stored is Result-Code DIAMETER_UNABLE_TO_COMPLY and changes nothing: the HSS
does not overwrite the name from a command other than MAR (§8.1), and an old
S-CSCF's deregistration must not undo a reassignment.

IMS restoration (TS 23.380) is not supported: Multiple-Registration-Indication
is accepted and not used, Associated-Registered-Identities (defined only with
restoration) stays empty, and Loose-Route-Indication is always "not
required", as the model has no loose-route setting.

RTR, network-initiated deregistration (§6.1.3.1, §6.5.2.2), :func:`prepare_rtr`
------------------------------------------------------------------------------

The implicit registration sets concerned (or the whole subscription) become
not registered, the assignment is cleared unless other identities stay
served, and the request for the assigned S-CSCF is returned for the caller
to send.  Nothing is assigned: nothing changes and there is no request.

PPR, HSS-initiated update of user information (§6.2.2.1, §6.5.2), :func:`prepare_ppr`
------------------------------------------------------------------------------------

The request for the assigned S-CSCF after a change of the user profile, the
charging information or the allowed WAF/WWSF identities, while that S-CSCF
serves the identities concerned (registered or unregistered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..diameter.cxdefs import (
    DIAMETER_MISSING_AVP,
    DIAMETER_UNABLE_TO_COMPLY,
    CxResult,
    DeregistrationReason,
    ExperimentalResult,
    ServerAssignmentType,
)
from .model import (
    IdentityType,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    Subscriber,
)
from .procedures import (
    SERVED,
    SUCCESS,
    Refusal,
    RtrRequest,
    associated_impis,
    exp,
    has_unregistered_services,
    impi_for,
    irs_members,
    new_server_rtr,
    other_impis,
    served_impus,
    user_data_of,
)
from .store import SubscriberNotFound, SubscriberStore
from .userdata import UserDataError

__all__ = [
    "DIAMETER_AVP_OCCURS_TOO_MANY_TIMES",
    "PprRequest",
    "SarAnswer",
    "SarRequest",
    "perform_sar",
    "prepare_ppr",
    "prepare_rtr",
]

#: Base Result-Code of RFC 6733 §7.1.5 (not among the Cx codes of cxdefs).
DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009

_T = ServerAssignmentType
_REGISTRATIONS = frozenset({_T.REGISTRATION, _T.RE_REGISTRATION})
_DEREGISTRATIONS = frozenset(
    {
        _T.TIMEOUT_DEREGISTRATION,
        _T.USER_DEREGISTRATION,
        _T.ADMINISTRATIVE_DEREGISTRATION,
        _T.DEREGISTRATION_TOO_MUCH_DATA,
    }
)
_STORE_NAME = frozenset(
    {_T.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME, _T.USER_DEREGISTRATION_STORE_SERVER_NAME}
)
_AUTHENTICATION_ENDED = frozenset({_T.AUTHENTICATION_FAILURE, _T.AUTHENTICATION_TIMEOUT})
_PSI = frozenset({IdentityType.DISTINCT_PSI, IdentityType.WILDCARDED_PSI})


# -- SAR ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SarRequest:
    impi: str | None
    impus: tuple[str, ...]
    server_name: str
    diameter_host: str  # the requesting S-CSCF's Origin-Host
    assignment_type: ServerAssignmentType
    user_data_available: bool = False
    multiple_registration: bool = False


@dataclass(frozen=True, slots=True)
class SarAnswer:
    result: CxResult
    impi: str | None = None
    user_data: bytes | None = None
    ccf: tuple[str, ...] = ()
    ecf: tuple[str, ...] = ()
    associated_impis: tuple[str, ...] = ()
    associated_registered_impis: tuple[str, ...] = ()
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()
    loose_route: bool = False
    #: With Exp 5005: the S-CSCF already assigned.
    server_name: str | None = None
    #: REGISTRATION from a new S-CSCF: the one it replaced.
    previous_assignment: ServerAssignment | None = None
    #: RTR NEW_SERVER_ASSIGNED for the replaced S-CSCF, for the caller to send.
    rtr: RtrRequest | None = None


@dataclass(frozen=True, slots=True)
class PprRequest:
    """What a Push-Profile-Request carries (TS 29.228 Table 6.2.2.1); a part
    that did not change is absent (None or empty)."""

    destination_host: str
    impi: str
    user_data: bytes | None = None
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()
    ccf: tuple[str, ...] = ()
    ecf: tuple[str, ...] = ()


async def perform_sar(store: SubscriberStore, req: SarRequest) -> SarAnswer:
    """S-CSCF registration/deregistration notification (TS 29.228 §6.1.2.1)."""
    try:
        sub, pubs = await _identities(store, req)
        kind = req.assignment_type
        if kind in _REGISTRATIONS:
            return await _register(store, req, sub, pubs[0])
        if kind == _T.UNREGISTERED_USER:
            return await _unregistered_user(store, req, sub, pubs[0])
        if kind == _T.NO_ASSIGNMENT:
            _require_assigned(sub, req, none_ok=False)
            return _profile_answer(sub, pubs[0], req.impi or impi_for(sub, pubs), req)
        if kind in _AUTHENTICATION_ENDED:
            return await _authentication_ended(store, req, sub, pubs[0])
        return await _deregister(store, req, sub, pubs)
    except Refusal as refusal:
        return SarAnswer(refusal.result, server_name=refusal.server_name)
    except SubscriberNotFound:  # removed between the read and the write
        return SarAnswer(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))


async def _identities(
    store: SubscriberStore, req: SarRequest
) -> tuple[Subscriber, tuple[PublicIdentity, ...]]:
    kind = req.assignment_type
    several = kind in _DEREGISTRATIONS or kind in _STORE_NAME
    needs_impi = kind in _REGISTRATIONS or kind in _AUTHENTICATION_ENDED
    if (req.impi is None and (needs_impi or not req.impus)) or (not req.impus and not several):
        raise Refusal(CxResult.base(DIAMETER_MISSING_AVP))
    if len(req.impus) > 1 and not several:
        raise Refusal(CxResult.base(DIAMETER_AVP_OCCURS_TOO_MANY_TIMES))
    unknown = Refusal(exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN))
    mismatch = Refusal(exp(ExperimentalResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH))
    sub = None
    if req.impi is not None:
        sub = await store.by_impi(req.impi)
        if sub is None:
            raise unknown
    pubs = []
    for impu in req.impus:
        pub = sub.public(impu) if sub is not None else None
        if sub is None or pub is None:
            owner = await store.by_impu(impu)
            pub = owner.public(impu) if owner is not None else None
            if owner is None or pub is None:
                raise unknown
            if sub is not None:
                raise mismatch
            sub = owner
        if req.impi is not None and not sub.linked(req.impi, pub.impu):
            raise mismatch
        pubs.append(pub)
    assert sub is not None, "an IMPI or an IMPU was required above"
    priv = sub.private(req.impi) if req.impi is not None else None
    if not pubs and priv is not None:  # deregistration by IMPI alone
        pubs = [p for p in sub.publics if p.impu in priv.impus]
    return sub, tuple(pubs)


async def _register(
    store: SubscriberStore, req: SarRequest, sub: Subscriber, pub: PublicIdentity
) -> SarAnswer:
    if pub.identity_type in _PSI:
        raise Refusal(exp(ExperimentalResult.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE))
    assert req.impi is not None, "checked by _identities"
    new = ServerAssignment(req.server_name, req.diameter_host)
    old = sub.assignment
    answer = _profile_answer(
        sub,
        pub,
        req.impi,
        req,
        previous=old if old is not None and old.server_name != new.server_name else None,
        rtr=new_server_rtr(sub, old, new, req.impi),
    )
    await _write(store, sub, irs_members(sub, [pub]), RegistrationState.REGISTERED, new)
    return answer


async def _unregistered_user(
    store: SubscriberStore, req: SarRequest, sub: Subscriber, pub: PublicIdentity
) -> SarAnswer:
    old = sub.assignment
    if old is not None and old.server_name != req.server_name:
        raise Refusal(
            exp(ExperimentalResult.DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED), old.server_name
        )
    answer = _profile_answer(sub, pub, req.impi or impi_for(sub, [pub]), req)
    registered = pub.state == RegistrationState.REGISTERED
    state = RegistrationState.REGISTERED if registered else RegistrationState.UNREGISTERED
    new = ServerAssignment(req.server_name, req.diameter_host)
    await _write(store, sub, irs_members(sub, [pub]), state, new)
    return answer


async def _deregister(
    store: SubscriberStore, req: SarRequest, sub: Subscriber, pubs: Sequence[PublicIdentity]
) -> SarAnswer:
    _require_assigned(sub, req, none_ok=True)
    targets = irs_members(sub, pubs)
    old = sub.assignment
    store_name = req.assignment_type in _STORE_NAME
    if store_name and old is not None and any(has_unregistered_services(sub, p) for p in targets):
        await _write(store, sub, targets, RegistrationState.UNREGISTERED, old)
        return SarAnswer(SUCCESS, impi=req.impi)
    remaining = served_impus(sub, exclude=(p.impu for p in targets))
    await _write(store, sub, targets, RegistrationState.NOT_REGISTERED, old if remaining else None)
    if store_name:
        return SarAnswer(
            exp(ExperimentalResult.DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED), impi=req.impi
        )
    return SarAnswer(SUCCESS, impi=req.impi)


async def _authentication_ended(
    store: SubscriberStore, req: SarRequest, sub: Subscriber, pub: PublicIdentity
) -> SarAnswer:
    _require_assigned(sub, req, none_ok=True)
    pending = pub.state == RegistrationState.NOT_REGISTERED and not served_impus(sub)
    if sub.assignment is not None and pending:
        targets = irs_members(sub, [pub])
        await _write(store, sub, targets, RegistrationState.NOT_REGISTERED, None)
    return SarAnswer(SUCCESS, impi=req.impi)


def _require_assigned(sub: Subscriber, req: SarRequest, *, none_ok: bool) -> None:
    """Refuse with DIAMETER_UNABLE_TO_COMPLY unless the requester is the
    stored S-CSCF (or, with ``none_ok``, none is stored)."""
    stored = sub.assignment
    if stored is None and none_ok:
        return
    if stored is None or stored.server_name != req.server_name:
        raise Refusal(CxResult.base(DIAMETER_UNABLE_TO_COMPLY))


def _profile_answer(
    sub: Subscriber,
    pub: PublicIdentity,
    impi: str,
    req: SarRequest,
    *,
    previous: ServerAssignment | None = None,
    rtr: RtrRequest | None = None,
) -> SarAnswer:
    """DIAMETER_SUCCESS with what §6.6 downloads: User-Data,
    Charging-Information and Allowed-WAF-WWSF-Identities, unless the S-CSCF
    said it has the data already."""
    if req.user_data_available:
        return SarAnswer(
            SUCCESS,
            impi=impi,
            associated_impis=associated_impis(sub),
            previous_assignment=previous,
            rtr=rtr,
        )
    try:
        user_data = user_data_of(sub, pub, impi)
    except UserDataError:
        raise Refusal(CxResult.base(DIAMETER_UNABLE_TO_COMPLY)) from None
    return SarAnswer(
        SUCCESS,
        impi=impi,
        user_data=user_data,
        ccf=sub.ccf,
        ecf=sub.ecf,
        associated_impis=associated_impis(sub),
        allowed_waf=sub.allowed_waf,
        allowed_wwsf=sub.allowed_wwsf,
        previous_assignment=previous,
        rtr=rtr,
    )


async def _write(
    store: SubscriberStore,
    sub: Subscriber,
    targets: Sequence[PublicIdentity],
    state: RegistrationState,
    assignment: ServerAssignment | None,
) -> None:
    """The one write of an SAR, skipped when it would change nothing."""
    if assignment == sub.assignment and all(p.state == state for p in targets):
        return
    await store.set_registration(sub.name, [p.impu for p in targets], state, assignment)


# -- HSS-initiated: RTR and PPR ----------------------------------------------------


async def prepare_rtr(
    store: SubscriberStore,
    name: str,
    reason: DeregistrationReason,
    impus: Sequence[str] | None = None,
    *,
    reason_info: str | None = None,
) -> RtrRequest | None:
    """Deregister in the HSS and build the RTR for the assigned S-CSCF
    (TS 29.228 §6.1.3.1, §6.5.2.2).

    ``impus`` (exact identities of subscriber ``name``) deregister their
    implicit registration sets; None deregisters the whole subscription and
    the RTR then names no identity, except for NEW_SERVER_ASSIGNED, which
    §6.1.3.1 requires to list them.  Returns None, changing nothing, when no
    S-CSCF is assigned.  Raises :class:`SubscriberNotFound` for an unknown
    subscriber or identity.
    """
    sub = await store.get(name)
    if sub is None:
        raise SubscriberNotFound(f"no subscriber {name!r}")
    if impus is None:
        targets = sub.publics
    else:
        chosen = []
        for impu in impus:
            pub = next((p for p in sub.publics if p.impu == impu), None)
            if pub is None:
                raise SubscriberNotFound(f"{impu!r} is not an identity of {name!r}")
            chosen.append(pub)
        targets = irs_members(sub, chosen)
    old = sub.assignment
    if old is None:
        return None
    gone = {p.impu for p in targets}
    remaining = served_impus(sub, exclude=gone)
    await store.set_registration(
        sub.name,
        [p.impu for p in targets],
        RegistrationState.NOT_REGISTERED,
        old if remaining else None,
    )
    impi = impi_for(sub, targets)
    listed = impus is not None or reason == DeregistrationReason.NEW_SERVER_ASSIGNED
    return RtrRequest(
        destination_host=old.diameter_host,
        impi=impi,
        associated_impis=other_impis(sub, impi, gone),
        impus=tuple(p.impu for p in targets) if listed else (),
        reason=reason,
        reason_info=reason_info,
    )


def prepare_ppr(
    sub: Subscriber,
    impu: str | None = None,
    *,
    profile_changed: bool = True,
    charging_changed: bool = True,
    waf_wwsf_changed: bool = True,
) -> PprRequest | None:
    """The PPR for the assigned S-CSCF after a provisioning change (TS 29.228
    §6.2.2.1, §6.5.2.1, §6.5.2.3, §6.5.2.5), or None when no S-CSCF serves the
    identities concerned.

    The User-Data is that of the implicit registration set of ``impu`` (an
    identity of ``sub``), or of the first set the S-CSCF serves; with several
    served sets, call once per set.  The parts not marked changed are left
    out.  ``sub`` is the subscriber as it is after the change.
    """
    if sub.assignment is None:
        return None
    served = [p for p in sub.publics if p.state in SERVED]
    if impu is not None:
        served = [p for p in served if p in sub.implicit_set(impu)]
    if not served:
        return None
    pub = served[0]
    impi = impi_for(sub, [pub])
    return PprRequest(
        destination_host=sub.assignment.diameter_host,
        impi=impi,
        user_data=user_data_of(sub, pub, impi) if profile_changed else None,
        allowed_waf=sub.allowed_waf if waf_wwsf_changed else (),
        allowed_wwsf=sub.allowed_wwsf if waf_wwsf_changed else (),
        ccf=sub.ccf if charging_changed else (),
        ecf=sub.ecf if charging_changed else (),
    )
