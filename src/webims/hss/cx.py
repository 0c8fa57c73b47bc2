"""The HSS's Cx application: Diameter messages in, procedures, messages out.

:class:`CxServer` registers a handler per Cx command on a
:class:`~webims.diameter.node.DiameterNode`.  Each handler reads the AVPs of
TS 29.229 §6.1 into the request dataclass of :mod:`.procedures` or
:mod:`.assignment`, runs the procedure, and writes its answer.  What a
request lacks is answered here, before any procedure runs:

- a missing mandatory AVP: DIAMETER_MISSING_AVP (5005) with Failed-AVP;
- a Destination-Realm that is not the HSS's: DIAMETER_REALM_NOT_SERVED
  (3003); a Destination-Host that is not the HSS: DIAMETER_UNABLE_TO_DELIVER
  (3002): the HSS is no relay;
- an enumerated value outside its range: DIAMETER_INVALID_AVP_VALUE (5004).

The HSS-initiated procedures go the other way: :meth:`CxServer.send_rtr`
and :meth:`CxServer.send_ppr` build the Registration-Termination and
Push-Profile requests for the S-CSCF named by their Destination-Host, over
the connection that S-CSCF opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from diameter.message.avp import Avp

from ..diameter import cx
from ..diameter.base import Identity
from ..diameter.codec import AppMessage
from ..diameter.cx import (
    Capabilities,
    ChargingInfo,
    CxMessage,
    SessionIds,
    allowed_entities_avp,
    avp,
    base_avp,
    cx_answer,
    cx_request,
    user_names_avp,
)
from ..diameter.cxdefs import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    CxCommand,
    CxResult,
    ServerAssignmentType,
    UserAuthorizationType,
)
from ..diameter.errors import (
    DIAMETER_INVALID_AVP_VALUE,
    DIAMETER_REALM_NOT_SERVED,
    DIAMETER_UNABLE_TO_DELIVER,
    DiameterError,
)
from ..diameter.node import DiameterNode, Peer
from . import procedures as proc
from .assignment import PprRequest, SarRequest, perform_sar
from .store import SubscriberStore

__all__ = ["CxServer"]

log = logging.getLogger(__name__)

_E = TypeVar("_E")


def _enum(kind: Callable[[int], _E], value: Any, code: int) -> _E:
    try:
        return kind(int(value))
    except (TypeError, ValueError):
        raise DiameterError(
            DIAMETER_INVALID_AVP_VALUE,
            f"AVP {code}: {value!r} is not a valid value",
            [avp(code, value if isinstance(value, int) else 0)],
        ) from None


def _capabilities(found: Capabilities | None) -> list[Avp]:
    return [] if found is None else [found.to_avp()]


class CxServer:
    """The Cx commands of the HSS on a Diameter node."""

    def __init__(
        self,
        node: DiameterNode,
        store: SubscriberStore,
        *,
        home_networks: frozenset[str],
    ) -> None:
        self.node = node
        self.store = store
        self.home_networks = home_networks
        self.me: Identity = node.me
        self.sessions = SessionIds(node.me.origin_host)
        #: RTRs/PPRs that found no open connection to their S-CSCF, for the logs/tests.
        self.undelivered = 0

    def install(self) -> None:
        add = self.node.add_handler
        add(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, self.on_uar)
        add(CX_APPLICATION_ID, CxCommand.SERVER_ASSIGNMENT, self.on_sar)
        add(CX_APPLICATION_ID, CxCommand.MULTIMEDIA_AUTH, self.on_mar)
        add(CX_APPLICATION_ID, CxCommand.LOCATION_INFO, self.on_lir)

    # -- requests from the CSCFs -----------------------------------------------------

    def _read(self, request: AppMessage) -> CxMessage:
        msg = CxMessage(request)
        realm = msg.require(cx.DESTINATION_REALM, 0)
        if realm != self.me.realm_bytes:
            raise DiameterError(
                DIAMETER_REALM_NOT_SERVED, f"realm {realm.decode(errors='replace')} not served"
            )
        host = msg.first(cx.DESTINATION_HOST, 0)
        if host is not None and host != self.me.host_bytes:
            raise DiameterError(
                DIAMETER_UNABLE_TO_DELIVER, f"{host.decode(errors='replace')} is not this HSS"
            )
        msg.require(cx.SESSION_ID, 0)
        msg.require(cx.ORIGIN_HOST, 0)
        return msg

    async def on_uar(self, request: AppMessage, peer: Peer) -> AppMessage:
        msg = self._read(request)
        req = proc.UarRequest(
            impi=str(msg.require(cx.USER_NAME, 0)),
            impu=str(msg.require(cx.PUBLIC_IDENTITY)),
            visited_network=bytes(msg.require(cx.VISITED_NETWORK_IDENTIFIER)).decode(
                errors="replace"
            ),
            auth_type=_enum(
                UserAuthorizationType,
                msg.first(cx.USER_AUTHORIZATION_TYPE) or 0,
                cx.USER_AUTHORIZATION_TYPE,
            ),
            emergency=bool((msg.first(cx.UAR_FLAGS) or 0) & 1),
        )
        ans = await proc.perform_uar(self.store, req, home_networks=self.home_networks)
        avps: list[Avp] = []
        if ans.server_name:
            avps.append(avp(cx.SERVER_NAME, ans.server_name))
        avps += _capabilities(ans.capabilities)
        return cx_answer(self.me, request, ans.result, avps)

    async def on_sar(self, request: AppMessage, peer: Peer) -> AppMessage:
        msg = self._read(request)
        user_name = msg.first(cx.USER_NAME, 0)
        req = SarRequest(
            impi=str(user_name) if user_name is not None else None,
            impus=msg.texts(cx.PUBLIC_IDENTITY),
            server_name=str(msg.require(cx.SERVER_NAME)),
            diameter_host=msg.require(cx.ORIGIN_HOST, 0).decode(errors="replace"),
            assignment_type=_enum(
                ServerAssignmentType,
                msg.require(cx.SERVER_ASSIGNMENT_TYPE),
                cx.SERVER_ASSIGNMENT_TYPE,
            ),
            user_data_available=bool(msg.require(cx.USER_DATA_ALREADY_AVAILABLE)),
            multiple_registration=msg.first(cx.MULTIPLE_REGISTRATION_INDICATION) == 1,
        )
        ans = await perform_sar(self.store, req)
        avps: list[Avp] = []
        if ans.impi:
            avps.append(base_avp(cx.USER_NAME, ans.impi))
        if ans.user_data is not None:
            avps.append(avp(cx.USER_DATA, ans.user_data))
        if ans.ccf or ans.ecf:
            avps.append(ChargingInfo(ccf=ans.ccf, ecf=ans.ecf).to_avp())
        if ans.associated_impis:
            avps.append(user_names_avp(cx.ASSOCIATED_IDENTITIES, ans.associated_impis))
        if ans.loose_route:
            avps.append(avp(cx.LOOSE_ROUTE_INDICATION, 1))
        if ans.associated_registered_impis:
            avps.append(
                user_names_avp(cx.ASSOCIATED_REGISTERED_IDENTITIES, ans.associated_registered_impis)
            )
        if ans.server_name and not ans.result.success:
            avps.append(avp(cx.SERVER_NAME, ans.server_name))
        if ans.allowed_waf or ans.allowed_wwsf:
            avps.append(allowed_entities_avp(ans.allowed_waf, ans.allowed_wwsf))
        answer = cx_answer(self.me, request, ans.result, avps)
        if ans.rtr is not None:
            self.node.spawn(self._deliver_rtr(ans.rtr))
        return answer

    async def on_mar(self, request: AppMessage, peer: Peer) -> AppMessage:
        msg = self._read(request)
        scheme = "Unknown"
        for group in msg.all(cx.SIP_AUTH_DATA_ITEM):
            for item in group.value:
                if item.code == cx.SIP_AUTHENTICATION_SCHEME and item.vendor_id == VENDOR_3GPP:
                    scheme = str(item.value)
        req = proc.MarRequest(
            impi=str(msg.require(cx.USER_NAME, 0)),
            impu=str(msg.require(cx.PUBLIC_IDENTITY)),
            server_name=str(msg.require(cx.SERVER_NAME)),
            diameter_host=msg.require(cx.ORIGIN_HOST, 0).decode(errors="replace"),
            scheme=scheme,
            items=int(msg.require(cx.SIP_NUMBER_AUTH_ITEMS)),
        )
        msg.require(cx.SIP_AUTH_DATA_ITEM)
        ans = await proc.perform_mar(self.store, req)
        avps: list[Avp] = []
        if ans.impi:
            avps.append(base_avp(cx.USER_NAME, ans.impi))
        if ans.impu:
            avps.append(avp(cx.PUBLIC_IDENTITY, ans.impu))
        if ans.items:
            avps.append(avp(cx.SIP_NUMBER_AUTH_ITEMS, len(ans.items)))
        for number, item in enumerate(ans.items, 1):
            avps.append(
                cx.DigestItem(
                    realm=item.realm, ha1=item.ha1, qop=item.qop, algorithm=item.algorithm
                ).to_avp(number)
            )
        answer = cx_answer(self.me, request, ans.result, avps)
        if ans.rtr is not None:
            self.node.spawn(self._deliver_rtr(ans.rtr))
        return answer

    async def on_lir(self, request: AppMessage, peer: Peer) -> AppMessage:
        msg = self._read(request)
        auth_type = msg.first(cx.USER_AUTHORIZATION_TYPE)
        req = proc.LirRequest(
            impu=str(msg.require(cx.PUBLIC_IDENTITY)),
            originating=msg.first(cx.ORIGINATING_REQUEST) == 0,
            auth_type=_enum(UserAuthorizationType, auth_type, cx.USER_AUTHORIZATION_TYPE)
            if auth_type is not None
            else None,
        )
        ans = await proc.perform_lir(self.store, req)
        avps: list[Avp] = []
        if ans.server_name:
            avps.append(avp(cx.SERVER_NAME, ans.server_name))
        avps += _capabilities(ans.capabilities)
        if ans.wildcarded_impu:
            avps.append(avp(cx.WILDCARDED_PUBLIC_IDENTITY, ans.wildcarded_impu))
        return cx_answer(self.me, request, ans.result, avps)

    # -- requests to the S-CSCFs ---------------------------------------------------------

    async def send_rtr(self, rtr: proc.RtrRequest) -> CxResult:
        """Registration-Termination-Request (TS 29.229 §6.1.3) to the S-CSCF
        ``rtr.destination_host``; the result of its RTA."""
        reason = [avp(cx.REASON_CODE, int(rtr.reason))]
        if rtr.reason_info:
            reason.append(avp(cx.REASON_INFO, rtr.reason_info))
        avps = [base_avp(cx.USER_NAME, rtr.impi)]
        if rtr.associated_impis:
            avps.append(user_names_avp(cx.ASSOCIATED_IDENTITIES, rtr.associated_impis))
        avps += [avp(cx.PUBLIC_IDENTITY, i) for i in rtr.impus]
        avps.append(avp(cx.DEREGISTRATION_REASON, reason))
        return await self._send(CxCommand.REGISTRATION_TERMINATION, rtr.destination_host, avps)

    async def send_ppr(self, ppr: PprRequest) -> CxResult:
        """Push-Profile-Request (TS 29.229 §6.1.6) to the S-CSCF serving the user."""
        avps = [base_avp(cx.USER_NAME, ppr.impi)]
        if ppr.user_data is not None:
            avps.append(avp(cx.USER_DATA, ppr.user_data))
        if ppr.ccf or ppr.ecf:
            avps.append(ChargingInfo(ccf=ppr.ccf, ecf=ppr.ecf).to_avp())
        if ppr.allowed_waf or ppr.allowed_wwsf:
            avps.append(allowed_entities_avp(ppr.allowed_waf, ppr.allowed_wwsf))
        return await self._send(CxCommand.PUSH_PROFILE, ppr.destination_host, avps)

    async def _send(self, command: CxCommand, host: str, avps: list[Avp]) -> CxResult:
        peer = self.node.open_peer(CX_APPLICATION_ID, host)
        request = cx_request(
            self.me,
            command,
            session_id=self.sessions.next(),
            destination_realm=peer.realm or self.me.origin_realm,
            destination_host=host,
            avps=avps,
        )
        answer = await self.node.request(request, peer=peer)
        return CxMessage(answer).result()

    async def _deliver_rtr(self, rtr: proc.RtrRequest) -> None:
        try:
            result = await self.send_rtr(rtr)
        except Exception as err:
            self.undelivered += 1
            log.warning("RTR to %s not delivered: %s", rtr.destination_host, err)
            return
        if not result.success:
            log.warning("RTR to %s answered %s", rtr.destination_host, result)
