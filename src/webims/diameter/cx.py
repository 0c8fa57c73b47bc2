"""Cx messages (TS 29.229 §6.1) and the client the CSCFs await.

Messages are built and read AVP by AVP with python-diameter's AVP codec and
dictionary.  The M bit follows TS 29.229 §6.3: AVPs 600–626 and 632–635
carry M and V, the later 3GPP ones (636 and up) V only; the dictionary's
default is overridden where it differs.

:class:`CxClient` is what the I-CSCF and S-CSCF use::

    cx = CxClient(node, destination_realm="home1.net")
    uaa = await cx.uar("user1_private@home1.net", "sip:user1_public1@home1.net", "home1.net")
    if uaa.result.code == ExperimentalResult.DIAMETER_FIRST_REGISTRATION: ...

An answer with an error result is returned, not raised: the CSCF turns it
into a SIP status.  A request that gets no answer raises
:class:`~.errors.RequestFailed`.  The S-CSCF side of the HSS-initiated
procedures is :meth:`CxClient.serve_rtr` and :meth:`CxClient.serve_ppr`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .avp import Avp
from .base import Identity, make_answer
from .codec import AppHeader, AppMessage
from .cxdefs import (
    CX_APPLICATION_ID,
    DIAMETER_MISSING_AVP,
    DIAMETER_SUCCESS,
    VENDOR_3GPP,
    CxCommand,
    CxResult,
    DeregistrationReason,
    ServerAssignmentType,
    UserAuthorizationType,
)
from .errors import DiameterError
from .node import DiameterNode, Peer

__all__ = [
    "Capabilities",
    "ChargingInfo",
    "CxClient",
    "CxMessage",
    "DigestItem",
    "LiAnswer",
    "MaAnswer",
    "PpRequest",
    "RtRequest",
    "SaAnswer",
    "UaAnswer",
]

# AVP codes (3GPP vendor 10415 unless marked base).
USER_NAME = 1  # base
DIGEST_REALM = 104  # base
DIGEST_QOP = 110  # base
DIGEST_ALGORITHM = 111  # base
DIGEST_HA1 = 121  # base
SESSION_ID = 263  # base
ORIGIN_HOST = 264  # base
VENDOR_ID = 266  # base
AUTH_APPLICATION_ID = 258  # base
VENDOR_SPECIFIC_APPLICATION_ID = 260  # base
RESULT_CODE = 268  # base
AUTH_SESSION_STATE = 277  # base
DESTINATION_REALM = 283  # base
DESTINATION_HOST = 293  # base
ORIGIN_REALM = 296  # base
EXPERIMENTAL_RESULT = 297  # base
EXPERIMENTAL_RESULT_CODE = 298  # base
VISITED_NETWORK_IDENTIFIER = 600
PUBLIC_IDENTITY = 601
SERVER_NAME = 602
SERVER_CAPABILITIES = 603
MANDATORY_CAPABILITY = 604
OPTIONAL_CAPABILITY = 605
USER_DATA = 606
SIP_NUMBER_AUTH_ITEMS = 607
SIP_AUTHENTICATION_SCHEME = 608
SIP_AUTH_DATA_ITEM = 612
SIP_ITEM_NUMBER = 613
SERVER_ASSIGNMENT_TYPE = 614
DEREGISTRATION_REASON = 615
REASON_CODE = 616
REASON_INFO = 617
CHARGING_INFORMATION = 618
PRIMARY_EVENT_CHARGING_FUNCTION_NAME = 619
SECONDARY_EVENT_CHARGING_FUNCTION_NAME = 620
PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME = 621
SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME = 622
USER_AUTHORIZATION_TYPE = 623
USER_DATA_ALREADY_AVAILABLE = 624
ASSOCIATED_IDENTITIES = 632
ORIGINATING_REQUEST = 633
WILDCARDED_PUBLIC_IDENTITY = 634
SIP_DIGEST_AUTHENTICATE = 635
UAR_FLAGS = 637
LOOSE_ROUTE_INDICATION = 638
ASSOCIATED_REGISTERED_IDENTITIES = 647
MULTIPLE_REGISTRATION_INDICATION = 648
ALLOWED_WAF_WWSF_IDENTITIES = 656
WEBRTC_AUTHENTICATION_FUNCTION_NAME = 657
WEBRTC_WEB_SERVER_FUNCTION_NAME = 658
RTR_FLAGS = 659

AUTH_SESSION_STATE_NO_STATE_MAINTAINED = 1

#: 3GPP AVPs defined after 635 carry no M bit (TS 29.229 §6.3).
_LAST_MANDATORY_3GPP = 635


def avp(code: int, value: Any, *, vendor: int = VENDOR_3GPP) -> Avp:
    """One AVP with the flags TS 29.229 gives it."""
    mandatory = True if vendor == 0 else code <= _LAST_MANDATORY_3GPP
    return Avp.new(code, value, vendor=vendor, mandatory=mandatory)


def base_avp(code: int, value: Any) -> Avp:
    return avp(code, value, vendor=0)


# -- reading ----------------------------------------------------------------------


class CxMessage:
    """The AVPs of a received Cx message, indexed by (code, vendor)."""

    __slots__ = ("_index", "message")

    def __init__(self, message: AppMessage) -> None:
        self.message = message
        index: dict[tuple[int, int], list[Avp]] = defaultdict(list)
        for item in message.avps:
            index[(item.code, item.vendor_id)].append(item)
        self._index = index

    def all(self, code: int, vendor: int = VENDOR_3GPP) -> list[Avp]:
        return self._index.get((code, vendor), [])

    def first(self, code: int, vendor: int = VENDOR_3GPP) -> Any:
        items = self._index.get((code, vendor))
        return items[0].value if items else None

    def require(self, code: int, vendor: int = VENDOR_3GPP) -> Any:
        """The value of a mandatory AVP; DIAMETER_MISSING_AVP (5005) if absent,
        with a Failed-AVP naming it (RFC 6733 §7.5)."""
        items = self._index.get((code, vendor))
        if not items:
            failed = Avp.example(code, vendor)
            raise DiameterError(DIAMETER_MISSING_AVP, f"missing AVP {code}", [failed])
        return items[0].value

    def text(self, code: int, vendor: int = VENDOR_3GPP) -> str | None:
        value = self.first(code, vendor)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value if value is None else str(value)

    def texts(self, code: int, vendor: int = VENDOR_3GPP) -> tuple[str, ...]:
        return tuple(_text(i.value) for i in self.all(code, vendor))

    def result(self) -> CxResult:
        """The Result-Code or the Experimental-Result of an answer."""
        code = self.first(RESULT_CODE, 0)
        if code is not None:
            return CxResult.base(int(code))
        for group in self.all(EXPERIMENTAL_RESULT, 0):
            for sub in group.value:
                if sub.code == EXPERIMENTAL_RESULT_CODE:
                    return CxResult(int(sub.value), True)
        return CxResult.base(0)


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _group(items: Iterable[Avp], code: int, vendor: int = VENDOR_3GPP) -> list[Avp]:
    return [i for i in items if i.code == code and i.vendor_id == vendor]


# -- values ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Server-Capabilities (603): what the I-CSCF selects an S-CSCF by."""

    mandatory: tuple[int, ...] = ()
    optional: tuple[int, ...] = ()
    server_names: tuple[str, ...] = ()

    def to_avp(self) -> Avp:
        return avp(
            SERVER_CAPABILITIES,
            [avp(MANDATORY_CAPABILITY, c) for c in self.mandatory]
            + [avp(OPTIONAL_CAPABILITY, c) for c in self.optional]
            + [avp(SERVER_NAME, n) for n in self.server_names],
        )

    @classmethod
    def from_avp(cls, group: Avp) -> Capabilities:
        items = group.value
        return cls(
            mandatory=tuple(int(i.value) for i in _group(items, MANDATORY_CAPABILITY)),
            optional=tuple(int(i.value) for i in _group(items, OPTIONAL_CAPABILITY)),
            server_names=tuple(_text(i.value) for i in _group(items, SERVER_NAME)),
        )


@dataclass(frozen=True, slots=True)
class ChargingInfo:
    """Charging-Information (618): CCF and ECF names, primary first."""

    ccf: tuple[str, ...] = ()
    ecf: tuple[str, ...] = ()

    def to_avp(self) -> Avp:
        items: list[Avp] = []
        for codes, names in (
            (
                (PRIMARY_EVENT_CHARGING_FUNCTION_NAME, SECONDARY_EVENT_CHARGING_FUNCTION_NAME),
                self.ecf,
            ),
            (
                (
                    PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME,
                    SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME,
                ),
                self.ccf,
            ),
        ):
            items += [avp(code, name) for code, name in zip(codes, names, strict=False)]
        return avp(CHARGING_INFORMATION, items)

    @classmethod
    def from_avp(cls, group: Avp) -> ChargingInfo:
        def names(*codes: int) -> tuple[str, ...]:
            return tuple(_text(i.value) for c in codes for i in _group(group.value, c))

        return cls(
            ccf=names(
                PRIMARY_CHARGING_COLLECTION_FUNCTION_NAME,
                SECONDARY_CHARGING_COLLECTION_FUNCTION_NAME,
            ),
            ecf=names(PRIMARY_EVENT_CHARGING_FUNCTION_NAME, SECONDARY_EVENT_CHARGING_FUNCTION_NAME),
        )


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One SIP-Auth-Data-Item for SIP Digest (SIP-Digest-Authenticate, 635)."""

    realm: str
    ha1: str
    qop: str = "auth"
    algorithm: str = "MD5"

    def to_avp(self, number: int) -> Avp:
        digest = [
            base_avp(DIGEST_REALM, self.realm),
            base_avp(DIGEST_ALGORITHM, self.algorithm),
            base_avp(DIGEST_QOP, self.qop),
            base_avp(DIGEST_HA1, self.ha1),
        ]
        return avp(
            SIP_AUTH_DATA_ITEM,
            [
                avp(SIP_ITEM_NUMBER, number),
                avp(SIP_AUTHENTICATION_SCHEME, "SIP Digest"),
                avp(SIP_DIGEST_AUTHENTICATE, digest),
            ],
        )

    @classmethod
    def from_avp(cls, group: Avp) -> DigestItem | None:
        for item in _group(group.value, SIP_DIGEST_AUTHENTICATE):
            values = {(i.code, i.vendor_id): _text(i.value) for i in item.value}
            return cls(
                realm=values.get((DIGEST_REALM, 0), ""),
                ha1=values.get((DIGEST_HA1, 0), ""),
                qop=values.get((DIGEST_QOP, 0), "auth"),
                algorithm=values.get((DIGEST_ALGORITHM, 0), "MD5"),
            )
        return None


def allowed_entities_avp(waf: Sequence[str], wwsf: Sequence[str]) -> Avp:
    return avp(
        ALLOWED_WAF_WWSF_IDENTITIES,
        [avp(WEBRTC_AUTHENTICATION_FUNCTION_NAME, n) for n in waf]
        + [avp(WEBRTC_WEB_SERVER_FUNCTION_NAME, n) for n in wwsf],
    )


def read_allowed_entities(msg: CxMessage) -> tuple[tuple[str, ...], tuple[str, ...]]:
    waf: list[str] = []
    wwsf: list[str] = []
    for group in msg.all(ALLOWED_WAF_WWSF_IDENTITIES):
        waf += [_text(i.value) for i in _group(group.value, WEBRTC_AUTHENTICATION_FUNCTION_NAME)]
        wwsf += [_text(i.value) for i in _group(group.value, WEBRTC_WEB_SERVER_FUNCTION_NAME)]
    return tuple(waf), tuple(wwsf)


def user_names_avp(code: int, names: Iterable[str]) -> Avp:
    return avp(code, [base_avp(USER_NAME, n) for n in names])


def read_user_names(msg: CxMessage, code: int) -> tuple[str, ...]:
    return tuple(
        _text(i.value) for group in msg.all(code) for i in _group(group.value, USER_NAME, 0)
    )


@dataclass(frozen=True, slots=True)
class UaAnswer:
    result: CxResult
    server_name: str | None = None
    capabilities: Capabilities | None = None


@dataclass(frozen=True, slots=True)
class SaAnswer:
    result: CxResult
    user_name: str | None = None
    user_data: bytes | None = None
    charging: ChargingInfo | None = None
    associated_identities: tuple[str, ...] = ()
    associated_registered_identities: tuple[str, ...] = ()
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()
    loose_route: bool = False


@dataclass(frozen=True, slots=True)
class MaAnswer:
    result: CxResult
    user_name: str | None = None
    public_identity: str | None = None
    items: tuple[DigestItem, ...] = ()


@dataclass(frozen=True, slots=True)
class LiAnswer:
    result: CxResult
    server_name: str | None = None
    capabilities: Capabilities | None = None
    wildcarded_public_identity: str | None = None


@dataclass(frozen=True, slots=True)
class RtRequest:
    """A Registration-Termination-Request as the S-CSCF sees it."""

    user_name: str
    public_identities: tuple[str, ...]
    associated_identities: tuple[str, ...]
    reason: DeregistrationReason
    reason_info: str | None = None


@dataclass(frozen=True, slots=True)
class PpRequest:
    """A Push-Profile-Request as the S-CSCF sees it."""

    user_name: str
    user_data: bytes | None = None
    charging: ChargingInfo | None = None
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()


# -- building requests -------------------------------------------------------------


class SessionIds:
    """Session-Id values <DiameterIdentity>;<high 32>;<low 32> (RFC 6733 §8.8)."""

    def __init__(self, origin_host: str) -> None:
        self._prefix = f"{origin_host};{int.from_bytes(os.urandom(4), 'big')};"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


def cx_request(
    me: Identity,
    command: CxCommand,
    *,
    session_id: str,
    destination_realm: str,
    destination_host: str | None,
    avps: Iterable[Avp],
) -> AppMessage:
    """A Cx request: the header, then Session-Id, Vendor-Specific-Application-Id,
    Auth-Session-State, Origin-*, Destination-* and ``avps`` (TS 29.229 §6.1)."""
    items = [base_avp(SESSION_ID, session_id)]
    items += _fixed_avps(me.origin_host, me.origin_realm, destination_host, destination_realm)
    items.extend(avps)
    header = AppHeader(
        command_flags=0xC0,  # Request, Proxiable
        command_code=int(command),
        application_id=CX_APPLICATION_ID,
    )
    return AppMessage(header, items)


@functools.lru_cache(maxsize=64)
def _fixed_avps(
    origin_host: str, origin_realm: str, destination_host: str | None, destination_realm: str
) -> tuple[Avp, ...]:
    """The AVPs every Cx request from one node to one peer repeats, made (and
    encoded) once."""
    items = [
        base_avp(
            VENDOR_SPECIFIC_APPLICATION_ID,
            [base_avp(VENDOR_ID, VENDOR_3GPP), base_avp(AUTH_APPLICATION_ID, CX_APPLICATION_ID)],
        ),
        base_avp(AUTH_SESSION_STATE, AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
        base_avp(ORIGIN_HOST, origin_host.encode()),
        base_avp(ORIGIN_REALM, origin_realm.encode()),
    ]
    if destination_host:
        items.append(base_avp(DESTINATION_HOST, destination_host.encode()))
    items.append(base_avp(DESTINATION_REALM, destination_realm.encode()))
    return tuple(items)


def cx_answer(
    me: Identity,
    request: AppMessage,
    result: CxResult,
    avps: Iterable[Avp] = (),
) -> AppMessage:
    """The answer to a Cx request with ``result`` in the AVP it belongs in."""
    if result.experimental:
        return make_answer(me, request, experimental=(VENDOR_3GPP, result.code), avps=avps)
    return make_answer(me, request, result.code, avps=avps)


# -- the client --------------------------------------------------------------------

RtrHandler = Callable[[RtRequest, Peer], Awaitable[CxResult]]
PprHandler = Callable[[PpRequest, Peer], Awaitable[CxResult]]


class CxClient:
    """UAR, SAR, MAR and LIR towards the HSS, over a :class:`DiameterNode`."""

    def __init__(
        self,
        node: DiameterNode,
        *,
        destination_realm: str,
        destination_host: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.node = node
        self.destination_realm = destination_realm
        self.destination_host = destination_host
        self.timeout = timeout
        self.sessions = SessionIds(node.me.origin_host)

    async def _ask(self, command: CxCommand, avps: list[Avp]) -> CxMessage:
        request = cx_request(
            self.node.me,
            command,
            session_id=self.sessions.next(),
            destination_realm=self.destination_realm,
            destination_host=self.destination_host,
            avps=avps,
        )
        peer = self.node.open_peer(CX_APPLICATION_ID, self.destination_host)
        answer = await self.node.request(request, peer=peer, timeout=self.timeout)
        return CxMessage(answer)

    async def uar(
        self,
        impi: str,
        impu: str,
        visited_network: str,
        auth_type: UserAuthorizationType = UserAuthorizationType.REGISTRATION,
        *,
        emergency: bool = False,
    ) -> UaAnswer:
        """User-Authorization-Request (TS 29.229 §6.1.1), from the I-CSCF."""
        avps = [
            base_avp(USER_NAME, impi),
            avp(PUBLIC_IDENTITY, impu),
            avp(VISITED_NETWORK_IDENTIFIER, visited_network.encode()),
            avp(USER_AUTHORIZATION_TYPE, int(auth_type)),
        ]
        if emergency:
            avps.append(avp(UAR_FLAGS, 1))
        msg = await self._ask(CxCommand.USER_AUTHORIZATION, avps)
        caps = msg.all(SERVER_CAPABILITIES)
        return UaAnswer(
            result=msg.result(),
            server_name=msg.text(SERVER_NAME),
            capabilities=Capabilities.from_avp(caps[0]) if caps else None,
        )

    async def sar(
        self,
        impus: Sequence[str],
        server_name: str,
        assignment_type: ServerAssignmentType,
        *,
        impi: str | None = None,
        user_data_available: bool = False,
        multiple_registration: bool = False,
    ) -> SaAnswer:
        """Server-Assignment-Request (TS 29.229 §6.1.2), from the S-CSCF."""
        avps: list[Avp] = []
        if impi is not None:
            avps.append(base_avp(USER_NAME, impi))
        avps += [avp(PUBLIC_IDENTITY, i) for i in impus]
        avps += [
            avp(SERVER_NAME, server_name),
            avp(SERVER_ASSIGNMENT_TYPE, int(assignment_type)),
            avp(USER_DATA_ALREADY_AVAILABLE, int(user_data_available)),
        ]
        if multiple_registration:
            avps.append(avp(MULTIPLE_REGISTRATION_INDICATION, 1))
        msg = await self._ask(CxCommand.SERVER_ASSIGNMENT, avps)
        charging = msg.all(CHARGING_INFORMATION)
        waf, wwsf = read_allowed_entities(msg)
        user_data = msg.first(USER_DATA)
        return SaAnswer(
            result=msg.result(),
            user_name=msg.text(USER_NAME, 0),
            user_data=bytes(user_data) if user_data is not None else None,
            charging=ChargingInfo.from_avp(charging[0]) if charging else None,
            associated_identities=read_user_names(msg, ASSOCIATED_IDENTITIES),
            associated_registered_identities=read_user_names(msg, ASSOCIATED_REGISTERED_IDENTITIES),
            allowed_waf=waf,
            allowed_wwsf=wwsf,
            loose_route=msg.first(LOOSE_ROUTE_INDICATION) == 1,
        )

    async def mar(
        self,
        impi: str,
        impu: str,
        server_name: str,
        *,
        scheme: str = "SIP Digest",
        items: int = 1,
    ) -> MaAnswer:
        """Multimedia-Auth-Request (TS 29.229 §6.1.7) for SIP Digest credentials."""
        avps = [
            base_avp(USER_NAME, impi),
            avp(PUBLIC_IDENTITY, impu),
            avp(SIP_NUMBER_AUTH_ITEMS, items),
            avp(SIP_AUTH_DATA_ITEM, [avp(SIP_AUTHENTICATION_SCHEME, scheme)]),
            avp(SERVER_NAME, server_name),
        ]
        msg = await self._ask(CxCommand.MULTIMEDIA_AUTH, avps)
        found = [DigestItem.from_avp(g) for g in msg.all(SIP_AUTH_DATA_ITEM)]
        return MaAnswer(
            result=msg.result(),
            user_name=msg.text(USER_NAME, 0),
            public_identity=msg.text(PUBLIC_IDENTITY),
            items=tuple(i for i in found if i is not None),
        )

    async def lir(
        self,
        impu: str,
        *,
        originating: bool = False,
        auth_type: UserAuthorizationType | None = None,
    ) -> LiAnswer:
        """Location-Info-Request (TS 29.229 §6.1.5), from the I-CSCF."""
        avps: list[Avp] = []
        if originating:
            avps.append(avp(ORIGINATING_REQUEST, 0))
        avps.append(avp(PUBLIC_IDENTITY, impu))
        if auth_type is not None:
            avps.append(avp(USER_AUTHORIZATION_TYPE, int(auth_type)))
        msg = await self._ask(CxCommand.LOCATION_INFO, avps)
        caps = msg.all(SERVER_CAPABILITIES)
        return LiAnswer(
            result=msg.result(),
            server_name=msg.text(SERVER_NAME),
            capabilities=Capabilities.from_avp(caps[0]) if caps else None,
            wildcarded_public_identity=msg.text(WILDCARDED_PUBLIC_IDENTITY),
        )

    # -- HSS-initiated procedures, S-CSCF side ------------------------------------------

    def serve_rtr(self, handler: RtrHandler) -> None:
        """Answer Registration-Termination-Requests with ``handler``'s result."""
        me = self.node.me

        async def on_rtr(request: AppMessage, peer: Peer) -> AppMessage:
            msg = CxMessage(request)
            reason = msg.require(DEREGISTRATION_REASON)
            values = {(i.code, i.vendor_id): i.value for i in reason}
            code = values.get((REASON_CODE, VENDOR_3GPP))
            rtr = RtRequest(
                user_name=_text(msg.require(USER_NAME, 0)),
                public_identities=msg.texts(PUBLIC_IDENTITY),
                associated_identities=read_user_names(msg, ASSOCIATED_IDENTITIES),
                reason=DeregistrationReason(code if code in (0, 1, 2, 3) else 0),
                reason_info=_text(values[(REASON_INFO, VENDOR_3GPP)])
                if (REASON_INFO, VENDOR_3GPP) in values
                else None,
            )
            return cx_answer(me, request, await handler(rtr, peer))

        self.node.add_handler(CX_APPLICATION_ID, CxCommand.REGISTRATION_TERMINATION, on_rtr)

    def serve_ppr(self, handler: PprHandler) -> None:
        """Answer Push-Profile-Requests with ``handler``'s result."""
        me = self.node.me

        async def on_ppr(request: AppMessage, peer: Peer) -> AppMessage:
            msg = CxMessage(request)
            charging = msg.all(CHARGING_INFORMATION)
            waf, wwsf = read_allowed_entities(msg)
            data = msg.first(USER_DATA)
            ppr = PpRequest(
                user_name=_text(msg.require(USER_NAME, 0)),
                user_data=bytes(data) if data is not None else None,
                charging=ChargingInfo.from_avp(charging[0]) if charging else None,
                allowed_waf=waf,
                allowed_wwsf=wwsf,
            )
            return cx_answer(me, request, await handler(ppr, peer))

        self.node.add_handler(CX_APPLICATION_ID, CxCommand.PUSH_PROFILE, on_ppr)


SUCCESS = CxResult.base(DIAMETER_SUCCESS)
