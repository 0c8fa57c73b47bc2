"""The I-CSCF's procedures over the proxy core (TS 24.229 5.3).

Every new request is sorted here:

* REGISTER: only from a trusted Mw peer (5.3.1.2; else 403 and no UAR),
  then UAR, then proxied with a Route to the S-CSCF (:mod:`.registration`);
  when that S-CSCF fails, once more to another one (5.3.1.3).
  No Record-Route, no Path: the S-CSCF's Service-Route and the eP-CSCF's
  Path carry the later traffic.
* An initial request for a home public identity with no Route left: LIR,
  then proxied to the serving S-CSCF (:mod:`.terminating`).
* A request for the I-CSCF itself (its own URI, no Route): 200 to OPTIONS,
  404 to anything else.
* Anything else (in-dialog requests, requests with Routes left, requests
  for other domains, ACKs for 2xx): loose routing by Route, else by
  Request-URI (RFC 3261 §16.6).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from ..diameter.cxdefs import UserAuthorizationType
from ..diameter.errors import RequestFailed
from ..ims.trust import TrustedPeers
from ..sip.errors import SipError
from ..sip.message import Response
from ..sip.proxy import ProxyContext, Target
from .registration import UarParameters, canonical_impu, uaa_outcome, uar_parameters
from .routing import Outcome, route_to
from .terminating import is_terminating, lia_outcome

if TYPE_CHECKING:
    from ..ims.element import Cscf

__all__ = ["IcscfProcedures"]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, MESSAGE, UPDATE, PRACK"


class IcscfProcedures:
    """The I-CSCF as a :class:`~webims.sip.proxy.ProxyApplication`."""

    def __init__(self, cscf: Cscf) -> None:
        self.cscf = cscf
        self.topology = cscf.topology
        self.trusted = TrustedPeers(cscf.topology.icscf_trusted)

    # -- ProxyApplication ------------------------------------------------------
    def on_request(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        if ctx.stateless:  # an ACK for a 2xx: on along its route
            ctx.forward(now=now)
            return
        if req.method == "REGISTER":
            self._start_registration(ctx, now)
        elif is_terminating(req, self.topology.domain):
            self.cscf.spawn(self._terminating(ctx))
        elif not req.routes and self.cscf.endpoint.is_local(req.uri):
            if req.method == "OPTIONS":
                ctx.respond(200, headers=[("Allow", ALLOW)], now=now)
            else:
                ctx.respond(404, now=now)
        else:
            ctx.forward(now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        if ctx.request.method == "REGISTER" and response.status >= 300:
            self._maybe_reselect(ctx)

    # -- registration (5.3.1.2) -------------------------------------------------
    def _start_registration(self, ctx: ProxyContext, now: float) -> None:
        if ctx.source not in self.trusted:
            log.info("I-CSCF: REGISTER from untrusted %s refused", ctx.source)
            ctx.respond(403, "Untrusted Source", now=now)
            return
        try:
            uar = uar_parameters(ctx.request, self.topology.domain)
        except SipError as err:
            ctx.respond(err.status, err.detail, now=now)
            return
        self.cscf.spawn(self._register(ctx, uar))

    async def _register(
        self, ctx: ProxyContext, uar: UarParameters, failed: str | None = None
    ) -> None:
        ctx.data["uar"] = uar
        cx = self.cscf.cx
        try:
            if cx is None:
                raise RequestFailed("no Cx client")
            uaa = await cx.uar(uar.impi, uar.impu, uar.visited_network, uar.auth_type)
        except RequestFailed as err:
            log.warning("I-CSCF: UAR for %s got no answer: %s", uar.impu, err)
            self._apply(ctx, Outcome.answer(480, "HSS Unavailable"))
            return
        log.debug("I-CSCF: UAA %s for %s (%s)", uaa.result, uar.impu, uar.auth_type.name)
        exclude = (failed,) if failed else ()
        self._apply(ctx, uaa_outcome(uaa, self.topology.scscfs, exclude=exclude))

    def _maybe_reselect(self, ctx: ProxyContext) -> None:
        """TS 24.229 5.3.1.3: when the S-CSCF a registration went to did not
        answer (408, or 503 when the connection failed) or answered 3xx or
        480, ask the HSS again with REGISTRATION_AND_CAPABILITIES and try
        another S-CSCF, once.  Only a registration (not a de-registration),
        and only when another S-CSCF is configured; otherwise the failure
        goes upstream as it is."""
        uar = ctx.data.get("uar")
        failed = ctx.data.get("scscf")
        if (
            not isinstance(uar, UarParameters)
            or not isinstance(failed, str)
            or uar.auth_type is not UserAuthorizationType.REGISTRATION
            or not ctx.branches
        ):
            return
        last = ctx.branches[-1].final
        status = last.status if last is not None else 0
        if not (status in (408, 480, 503) or 300 <= status < 400):
            return
        if not any(name != failed for name in self.topology.scscfs):
            return
        if ctx.reopen():
            log.info("I-CSCF: S-CSCF %s answered %d; selecting another", failed, status)
            again = dataclasses.replace(
                uar, auth_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES
            )
            self.cscf.spawn(self._register(ctx, again, failed))

    # -- terminating requests (5.3.2.1) -------------------------------------------
    async def _terminating(self, ctx: ProxyContext) -> None:
        cx = self.cscf.cx
        try:
            impu = canonical_impu(ctx.request.uri)
            if cx is None:
                raise RequestFailed("no Cx client")
            lia = await cx.lir(impu)
        except SipError as err:
            self._apply(ctx, Outcome.answer(err.status, err.detail))
            return
        except RequestFailed as err:
            log.warning("I-CSCF: LIR for %s got no answer: %s", ctx.request.uri, err)
            self._apply(ctx, Outcome.answer(480, "HSS Unavailable"))
            return
        log.debug("I-CSCF: LIA %s for %s", lia.result, impu)
        self._apply(ctx, lia_outcome(lia, self.topology.scscfs))

    # -- acting on a decision --------------------------------------------------------
    def _apply(self, ctx: ProxyContext, outcome: Outcome) -> None:
        now = self.cscf.now()
        if outcome.scscf is None:
            ctx.respond(outcome.status, outcome.reason, now=now)
            return
        try:
            route = route_to(outcome.scscf)
        except SipError as err:
            log.error("I-CSCF: unusable S-CSCF name: %s", err)
            ctx.respond(500, now=now)
            return
        ctx.data["scscf"] = outcome.scscf
        target = Target(ctx.request.uri, headers_first=[("Route", route)])
        ctx.forward([target], now=now)
