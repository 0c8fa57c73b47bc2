"""The eP-CSCF's procedures over the proxy core (TS 24.371 6.3/7.3, TS 24.229 5.2).

Which side a request came from decides what happens to it:

* on a WebSocket flow (``ws``/``wss``, the W2 side) it comes from a WIC: a REGISTER
  is the web-authenticated registration (``register.py``), anything else an
  originating or in-dialog request of a registered WIC (``routing.py``);
* on UDP/TCP (Mw) from a core peer it comes from the core: a request for a WIC through a Path or
  Record-Route flow token (``routing.py``), or a NOTIFY of the eP-CSCF's own
  reg event subscription (``regevent.py``);
* on UDP/TCP from a source that is no core peer it comes from a plain SIP UE
  (``gm.py``: SIP Digest registration, then the WIC's identity rules).

This module holds what the procedures share (the bindings, the flow tokens, the
icid generator, the configuration), answers the W2 side's responses (charging
headers removed), notes closed connections (SPEC §1.4 E) and expires registrations
at their own time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ims.charging import IcidGenerator
from ..sip.message import Response
from ..sip.proxy import ProxyContext
from ..transport.flow import Flow
from . import gm, regevent, register, routing
from .bindings import Bindings, Registration, RegSubscription
from .dialogs import Dialogs
from .routing import CHARGING_HEADERS
from .token import TokenValidator

if TYPE_CHECKING:
    from ..ims.element import Cscf
    from ..sip.proxy import ProxyCore
    from ..transport.layer import TransportLayer

__all__ = ["CHARGING_HEADERS", "WIC_TRANSPORTS", "EpCscf", "PcscfConfig"]

log = logging.getLogger(__name__)

#: Transports of the W2 side (RFC 7118).
WIC_TRANSPORTS = frozenset({"ws", "wss"})


@dataclass(frozen=True, slots=True)
class PcscfConfig:
    """The eP-CSCF's settings, resolved."""

    domain: str
    #: P-Visited-Network-ID and orig-ioi (TS 24.229 5.2.2.1).
    network_id: str
    #: Our name and Mw port, for Path, Record-Route and the reg event Contact.
    host: str
    port: int
    icscf_uri: str
    #: The WAF, named in ``authz_server`` of the Bearer challenge (RFC 8898 §2.1).
    authz_server: str
    send_authorization_entity: bool = True
    subscribe_reg_event: bool = True
    #: SPEC §9.6 item 22 (project option): deregister a WIC whose WebSocket closed.
    deregister_on_close: bool = False
    #: WICs may register with SIP Digest instead of a token (``gm.handle_register``).
    ims_auth: bool = False
    #: Check again the token a WIC sends on a request outside a dialog (``routing``).
    revalidate_tokens: bool = True
    #: Expires of the reg event SUBSCRIBE (TS 24.229 5.2.3: 600 000 seconds).
    reg_event_expires: int = 600000


class EpCscf:
    """The eP-CSCF application (a :class:`~webims.sip.proxy.ProxyApplication`)."""

    def __init__(self, cscf: Cscf, validator: TokenValidator, config: PcscfConfig) -> None:
        self.cscf = cscf
        self.validator = validator
        self.config = config
        self.bindings = Bindings()
        #: The UEs' dialogs and their route sets (``dialogs.py``).
        self.dialogs = Dialogs()
        self.icid = IcidGenerator(config.host)
        self.transport: TransportLayer = cscf.endpoint.transport
        #: Mw peers on the SIP port; any other source there is a UE (``gm.py``).
        self.core_peers = gm.core_peers(cscf.topology)
        # What every flow-token URI of ours ends with (Path adds ``;ob``).
        self.uri_tail = f"@{config.host}:{config.port};transport=tcp;lr"
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: Refresh times of the reg event subscriptions, by Call-ID, on one heap
        #: with one loop timer (a timer and a closure per subscription cost about
        #: 0.6 KiB each, for 20,000 idle WICs 12 MiB).
        self._refreshes: dict[str, tuple[float, RegSubscription]] = {}
        self._refresh_heap: list[tuple[float, int, RegSubscription]] = []
        self._refresh_seq = itertools.count()
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._refresh_timer_at: float | None = None

    @property
    def core(self) -> ProxyCore:
        return self.cscf.core

    # -- ProxyApplication ------------------------------------------------------------------
    def on_request(self, ctx: ProxyContext, now: float) -> None:
        source = ctx.source
        if isinstance(source, Flow) and source.transport in WIC_TRANSPORTS:
            if ctx.request.method == "REGISTER":
                register.handle_register(self, ctx, now)
            else:
                routing.from_wic(self, ctx, now)
        elif not gm.from_ue(self, ctx, now):
            routing.from_core(self, ctx, now)

    def ims_auth_register(self, ctx: ProxyContext, now: float) -> None:
        """A WIC's REGISTER with IMS credentials (``ims_auth``): a SIP phone's
        procedure, over TLS claiming ``tls-pending`` (TS 24.229 5.2.2.1)."""
        flow = ctx.source
        tls = isinstance(flow, Flow) and flow.transport == "wss"
        gm.handle_register(self, ctx, now, integrity="tls-pending" if tls else None)

    def ims_auth_challenge(self) -> str:
        """The Digest challenge a WIC with IMS credentials answers with its IMPI."""
        return gm.identity_challenge(self.config.domain)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        routing.on_ue_response(self, ctx, response)
        source = ctx.source
        wic = isinstance(source, Flow) and source.transport in WIC_TRANSPORTS
        if not (wic or gm.UE_SIDE in ctx.data):
            return
        attempt = ctx.data.get("register")
        if isinstance(attempt, register.RegisterAttempt):
            register.on_register_response(self, attempt, response, now)
        for name in CHARGING_HEADERS:
            response.headers.remove(name)

    # -- shared by the procedures ------------------------------------------------------------
    def flow_uri(self, token: str) -> str:
        """``sip:<flow token>@<host>:<port>;transport=tcp;lr``: Record-Route, and Path
        with ``;ob`` (RFC 5626 §5.2, contract item 2 and 6)."""
        return f"sip:{token}{self.uri_tail}"

    def is_live(self, flow: Flow) -> bool:
        return self.transport.is_live(flow)

    def bound(self, reg: Registration) -> None:
        """A registration was added or refreshed: its expiry may be the next one."""
        when = reg.expires_at
        if self._timer_at is None or when < self._timer_at:
            self._arm(when)

    def drop(self, reg: Registration, why: str) -> None:
        self.dialogs.drop_flow(reg.flow)
        if self.bindings.remove(reg):
            log.debug("eP-CSCF: %s unbound from %s (%s)", reg.impi, reg.flow, why)

    # -- reg event subscription refreshes ------------------------------------------------------
    def schedule_refresh(self, sub: RegSubscription, when: float) -> None:
        """Refresh ``sub`` at loop time ``when`` (RFC 6665 §4.1.2.1), replacing any
        refresh already scheduled for it.

        A cancelled or replaced entry stays on the heap until it comes up, unless
        such entries outnumber the live ones: then the heap is rebuilt.
        """
        self._refreshes[sub.call_id] = (when, sub)
        heap = self._refresh_heap
        if len(heap) > 2 * len(self._refreshes) + 1024:
            heap[:] = [(at, next(self._refresh_seq), s) for at, s in self._refreshes.values()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (when, next(self._refresh_seq), sub))
        if self._refresh_timer_at is None or when < self._refresh_timer_at:
            self._arm_refresh(when)

    async def close(self) -> None:
        """Stop the timers (the element is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None
            self._refresh_timer_at = None
        self._refreshes.clear()
        self._refresh_heap.clear()

    def cancel_refresh(self, sub: RegSubscription) -> None:
        entry = self._refreshes.get(sub.call_id)
        if entry is not None and entry[1] is sub:
            del self._refreshes[sub.call_id]

    def _arm_refresh(self, when: float) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        self._refresh_timer_at = when
        self._refresh_timer = asyncio.get_running_loop().call_at(when, self._fire_refreshes)

    def _fire_refreshes(self) -> None:
        """Refresh every subscription whose time has come; re-arm for the next."""
        self._refresh_timer = None
        self._refresh_timer_at = None
        now = self.cscf.now()
        heap, live = self._refresh_heap, self._refreshes
        due: list[RegSubscription] = []
        while heap and heap[0][0] <= now:
            when, _, sub = heapq.heappop(heap)
            if live.get(sub.call_id) == (when, sub):
                del live[sub.call_id]
                due.append(sub)
        for sub in due:
            regevent.refresh(self, sub, now)
        if due:
            self.cscf.flush()
        while heap and live.get(heap[0][2].call_id) != (heap[0][0], heap[0][2]):
            heapq.heappop(heap)
        if heap and self._refresh_timer_at is None:
            self._arm_refresh(heap[0][0])

    # -- connection loss (SPEC §1.4 E, §9.6) ---------------------------------------------------
    def flow_closed(self, flow: Flow) -> None:
        """The WS connection is gone: its registration is kept until it expires (or,
        with ``deregister_on_close``, until the deregistration sent on its behalf is
        answered), but its flow is dead (terminating requests get 430 as its token no
        longer resolves) and its identities are never moved to another connection."""
        self.dialogs.drop_flow(flow)
        reg = self.bindings.for_flow(flow)
        if reg is None or reg.dead:
            return
        reg.dead = True
        if self.config.deregister_on_close:
            register.deregister_on_behalf(self, reg, self.cscf.now())
            self.cscf.flush()

    # -- registration expiry -----------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._timer_at = None
        for reg in self.bindings.expire(self.cscf.now()):
            self.dialogs.drop_flow(reg.flow)
            log.debug("eP-CSCF: registration of %s on %s expired", reg.impi, reg.flow)
        when = self.bindings.next_expiry()
        if when is not None:
            self._arm(when)
