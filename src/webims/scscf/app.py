"""The S-CSCF's procedures over the proxy core: which request goes where.

* REGISTER: the registrar (:mod:`.registration`);
* SUBSCRIBE / in-dialog SUBSCRIBE for the ``reg`` event to an IMPU served
  here: the notifier (:mod:`.regevent`), TS 24.229 5.4.2.1;
* everything else: originating or terminating routing (:mod:`.routing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ims.charging import IcidGenerator
from ..ims.trust import TrustedPeers
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.proxy import ProxyContext
from ..sip.uri import SipURI, parse_uri
from .digest import DigestNonces
from .lifecycle import Lifecycle
from .regevent import RegEventNotifier
from .registrar import MemoryRegistrar, RegistrarStore, impu_key
from .registration import RegisterProcedure
from .routing import Router

if TYPE_CHECKING:
    from ..ims.element import Cscf

__all__ = ["ScscfApplication", "is_reg_event"]


def is_reg_event(req: Request) -> bool:
    """Whether a request is for the ``reg`` event package (RFC 3680 §4)."""
    value = req.headers.get("Event")
    return value is not None and value.partition(";")[0].strip().lower() == "reg"


def orig_uri(server_name: str) -> str:
    """The Service-Route URI: the Server-Name with user part ``orig`` and
    ``lr`` (TS 24.229 5.4.1.2.2F: a URI marking originating requests)."""
    uri = parse_uri(server_name)
    assert isinstance(uri, SipURI), "the Server-Name is a SIP URI"
    marked = uri.copy()
    marked.user = "orig"
    if not marked.lr:
        marked.params.set("lr")
    return str(marked)


def lr_uri(server_name: str) -> str:
    uri = parse_uri(server_name)
    assert isinstance(uri, SipURI), "the Server-Name is a SIP URI"
    marked = uri.copy()
    if not marked.lr:
        marked.params.set("lr")
    return str(marked)


class ScscfApplication:
    """The S-CSCF: registrar, reg event notifier and serving proxy."""

    def __init__(self, cscf: Cscf, store: RegistrarStore | None = None) -> None:
        self.cscf = cscf
        settings = cscf.settings.scscf
        topology = cscf.topology
        self.store: RegistrarStore = store if store is not None else MemoryRegistrar()
        self.trusted = TrustedPeers(topology.scscf_trusted)
        server_name = topology.scscf_server_name
        self.notifier = RegEventNotifier(
            lambda: cscf.core, cscf.now, cscf.flush, server_name, self.store.get
        )
        self.lifecycle = Lifecycle(cscf, self.store, self.notifier, server_name)
        self.registrar = RegisterProcedure(
            cscf,
            self.lifecycle,
            settings,
            trusted=self.trusted,
            service_route=orig_uri(server_name),
            icid=IcidGenerator("scscf"),
            nonces=DigestNonces(),
        )
        self.router = Router(
            cscf,
            self.store,
            self.lifecycle,
            trusted=self.trusted,
            record_route=lr_uri(server_name),
        )

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        if req.method == "REGISTER" and not ctx.stateless:
            self.registrar.on_register(ctx, now)
        elif req.method == "SUBSCRIBE" and is_reg_event(req):
            self.cscf.spawn(self._subscribe(ctx))
        else:
            self.router.route(ctx, now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        self.router.on_response(ctx, response, now)

    async def _subscribe(self, ctx: ProxyContext) -> None:
        """A reg event SUBSCRIBE (TS 24.229 5.4.2.1.1)."""
        try:
            await self._reg_subscribe(ctx)
        except SipError as err:  # a header the notifier needs does not parse
            ctx.respond(err.status, err.reason, now=self.cscf.now())

    async def _reg_subscribe(self, ctx: ProxyContext) -> None:
        req = ctx.request
        now = self.cscf.now()
        if req.to_tag is not None:
            sub = self.notifier.find(req)
            registration = await self.store.get(sub.registration_key) if sub is not None else None
            if not self.notifier.refresh(ctx, registration, self.cscf.now()):
                ctx.respond(481, now=self.cscf.now())
            return
        registration = await self.store.get(impu_key(req.uri))
        now = self.cscf.now()
        if registration is None:
            ctx.respond(480, "Temporarily Unavailable (not registered)", now=now)
            return
        subscriber = self.notifier.authorized(req, registration, ctx.source in self.trusted)
        if subscriber is None:
            ctx.respond(403, "Forbidden (not an allowed subscriber)", now=now)
            return
        self.notifier.subscribe(ctx, registration, subscriber, now)

    def close(self) -> None:
        self.lifecycle.close()
        self.notifier.close()
