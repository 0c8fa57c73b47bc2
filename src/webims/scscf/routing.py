"""Requests other than REGISTER and reg event SUBSCRIBE (TS 24.229 5.4.3).

* Originating (5.4.3.2): the request came through the Service-Route the
  registration handed out, so the Route the core consumed is ``orig@``.  The
  served user is the P-Asserted-Identity, believed from a trusted Mw peer only;
  it must be a registered, non-barred IMPU (403 otherwise).  A Request-URI of
  the home domain goes to the I-CSCF (``topology.icscf_uri`` as Route), which
  finds the callee's S-CSCF with LIR; any other goes to its own next hop.
* Terminating (5.4.3.3): the Request-URI is an IMPU; a registered one forks to
  every live contact (parallel), each branch with the contact's Path as Route
  (RFC 3327 §5.3).  Not registered: 480; a barred IMPU: 404.  A 430 from a
  branch (RFC 5626 §5.3: the edge proxy's flow is gone) removes that contact;
  when all branches answered 430 the caller gets 480.
* Within a dialog (a To tag): the Route set decides, as for any proxy.

The S-CSCF record-routes dialog-creating requests (5.4.3.2 step 9, 5.4.3.3
step 7) with its Server-Name.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ims.trust import TrustedPeers
from ..sip.errors import SipError
from ..sip.message import Response
from ..sip.proxy import ProxyContext, Target
from ..sip.uri import SipURI, TelURI, parse_uri
from .lifecycle import Lifecycle
from .registrar import Contact, RegistrarStore, impu_key

if TYPE_CHECKING:
    from ..ims.element import Cscf

__all__ = ["Router"]

log = logging.getLogger(__name__)

#: Methods that create a dialog, record-routed by the S-CSCF.
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, MESSAGE, UPDATE, PRACK, "
    "INFO, REFER"
)


_FORK = "scscf.fork"


@dataclass(frozen=True, slots=True)
class _Fork:
    """The contacts a terminating request was forked to (kept in ``ctx.data``)."""

    key: str
    branches: list[tuple[Target, Contact]]


class Router:
    """Originating and terminating routing of the S-CSCF."""

    def __init__(
        self,
        cscf: Cscf,
        store: RegistrarStore,
        lifecycle: Lifecycle,
        *,
        trusted: TrustedPeers,
        record_route: str,
    ) -> None:
        self.cscf = cscf
        self.store = store
        self.lifecycle = lifecycle
        self.trusted = trusted
        self.record_route = record_route
        self.domain = cscf.topology.domain
        self.icscf_route = f"<{cscf.topology.icscf_uri}>"

    def route(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        if ctx.stateless or req.to_tag is not None:
            ctx.forward(now=now)
            return
        used = ctx.route_used
        if isinstance(used, SipURI) and used.user == "orig":
            self.cscf.spawn(self._guarded(ctx, self._originating))
            return
        if not req.routes and self.cscf.endpoint.is_local(req.uri):
            if req.method == "OPTIONS":
                ctx.respond(200, headers=[("Allow", ALLOW)], now=now)
            else:
                ctx.respond(404, now=now)
            return
        self.cscf.spawn(self._guarded(ctx, self._terminating))

    async def _guarded(
        self, ctx: ProxyContext, procedure: Callable[[ProxyContext], Awaitable[None]]
    ) -> None:
        """Run a routing procedure; a header it needs that does not parse is
        answered with the error's status rather than left unanswered."""
        try:
            await procedure(ctx)
        except SipError as err:
            ctx.respond(err.status, err.reason, now=self.cscf.now())

    def _record_route(self, ctx: ProxyContext) -> str | None:
        return self.record_route if ctx.request.method in DIALOG_CREATING else None

    # -- originating (5.4.3.2) ------------------------------------------------------
    async def _originating(self, ctx: ProxyContext) -> None:
        req = ctx.request
        served = None
        if ctx.source in self.trusted:
            served = next(iter(req.p_asserted_identity), None)
        if served is None:
            self._respond(ctx, 403, "Forbidden (no asserted identity)")
            return
        key = impu_key(served.uri)
        registration = await self.store.get(key)
        if registration is None or registration.is_barred(key):
            self._respond(ctx, 403, "Forbidden (identity not registered)")
            return
        target = Target(req.uri)
        uri = req.uri
        if isinstance(uri, TelURI) or (
            isinstance(uri, SipURI) and uri.host_bare == self.domain and not req.routes
        ):
            target.headers_first.append(("Route", self.icscf_route))
        ctx.forward([target], record_route=self._record_route(ctx), now=self.cscf.now())

    # -- terminating (5.4.3.3) ------------------------------------------------------
    async def _terminating(self, ctx: ProxyContext) -> None:
        req = ctx.request
        key = impu_key(req.uri)
        registration = await self.store.get(key)
        if registration is None:
            self._respond(ctx, 480, "Temporarily Unavailable (not registered)")
            return
        if registration.is_barred(key):
            self._respond(ctx, 404)
            return
        now = self.cscf.now()
        # 5.4.3.3: the IMPU the request was addressed to, before the retarget
        # to the contacts (RFC 3455 P-Called-Party-ID).
        called = ("P-Called-Party-ID", f"<{req.uri_text}>")
        req.headers.remove("P-Called-Party-ID")
        targets: list[Target] = []
        branches: list[tuple[Target, Contact]] = []
        for contact in registration.live_contacts(now):
            try:
                uri = parse_uri(contact.uri)
            except SipError:
                continue
            target = Target(uri, headers=[called])
            if contact.path:
                target.headers_first.append(("Route", ", ".join(contact.path)))
            targets.append(target)
            branches.append((target, contact))
        if not targets:
            self._respond(ctx, 480, "Temporarily Unavailable (no contact)")
            return
        ctx.data[_FORK] = _Fork(registration.key, branches)
        ctx.forward(targets, record_route=self._record_route(ctx), now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        """RFC 5626 §5.3: a branch answered 430 (Flow Failed) loses its contact.
        When every branch did, the caller gets 480, not the 430: that one is
        between an edge proxy and the registrar's proxy, and "endpoints should
        never receive" it (§11.5)."""
        if response.status < 200:
            return
        fork = ctx.data.pop(_FORK, None)
        if not isinstance(fork, _Fork):
            return
        for branch in ctx.branches:
            if branch.final is None or branch.final.status != 430:
                continue
            for target, contact in fork.branches:
                if target is branch.target:
                    self.cscf.spawn(self.lifecycle.flow_failed(fork.key, contact))
        if response.status == 430 and ctx.reopen():
            ctx.respond(480, "Temporarily Unavailable (flow failed)", now=now)

    def _respond(self, ctx: ProxyContext, status: int, reason: str | None = None) -> None:
        ctx.respond(status, reason, now=self.cscf.now())
