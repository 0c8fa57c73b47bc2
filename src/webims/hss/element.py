"""The HSS as a running element: the store, the Diameter node with the Cx
server on it, and the provisioning API.

Provisioning through the API reaches a serving S-CSCF at once: the API
works on a :class:`NotifyingStore`, which after each change sends what
TS 29.228 asks for: a Push-Profile-Request when barring or the profile of
a served subscriber changed (§6.5.2.5, User-Data and the allowed WAF/WWSF
identities), a Registration-Termination-Request with PERMANENT_TERMINATION
when a served subscriber is removed (§6.5.2.1), and an RTR with the
operator's reason for ``POST /subscribers/{name}/deregister`` (§6.1.3,
§6.5.2.2; :meth:`NotifyingStore.deregister`).  A change made straight in
the store (``webims subscriber`` while the HSS runs) takes effect at the
next Cx request for that user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..diameter.base import Identity
from ..diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP, DeregistrationReason
from ..diameter.node import DiameterNode, NodeConfig
from ..transport.http import HttpServer
from . import open_store
from .api import create_app, resolve_api_key
from .assignment import prepare_ppr, prepare_rtr
from .cx import CxServer
from .model import RegistrationState, ServerAssignment, Subscriber
from .store import SubscriberStore

__all__ = ["HssElement", "HssOptions", "NotifyingStore"]

log = logging.getLogger(__name__)


class NotifyingStore(SubscriberStore):
    """A store that tells the Cx server about provisioning changes.

    Every read and write goes to ``inner``; after ``replace``, ``set_barred``
    and ``remove`` the Cx server gets the PPR or RTR the change calls for
    (sent in the background: the API answers once the change is committed).
    """

    def __init__(self, inner: SubscriberStore, cx: CxServer) -> None:
        self.inner = inner
        self.cx = cx
        self._sent: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def schema_version(self) -> int:
        return await self.inner.schema_version()

    async def by_impu(self, impu: str) -> Subscriber | None:
        return await self.inner.by_impu(impu)

    async def by_impi(self, impi: str) -> Subscriber | None:
        return await self.inner.by_impi(impi)

    async def get(self, name: str) -> Subscriber | None:
        return await self.inner.get(name)

    async def names(self) -> list[str]:
        return await self.inner.names()

    async def set_registration(
        self,
        name: str,
        impus: Sequence[str],
        state: RegistrationState,
        assignment: ServerAssignment | None,
    ) -> None:
        await self.inner.set_registration(name, impus, state, assignment)

    async def add(self, subscriber: Subscriber) -> None:
        await self.inner.add(subscriber)

    async def replace(self, subscriber: Subscriber) -> None:
        await self.inner.replace(subscriber)
        self._push(subscriber.name)

    async def set_barred(self, impu: str, barred: bool) -> Subscriber:
        after = await self.inner.set_barred(impu, barred)
        self._push(after.name)
        return after

    async def deregister(
        self, name: str, reason: DeregistrationReason, impus: Sequence[str] | None = None
    ) -> bool:
        """Network-initiated deregistration (TS 29.228 §6.1.3.1, §6.5.2.2):
        ``impus``' implicit registration sets (all when None) become not
        registered here, then the RTR with ``reason`` goes to the assigned
        S-CSCF, which NOTIFYs the subscribers (``rejected`` for
        PERMANENT_TERMINATION, ``deactivated`` otherwise: TS 24.229 5.4.1.6).
        False, changing nothing, when no S-CSCF is assigned."""
        rtr = await prepare_rtr(self.inner, name, reason, impus)
        if rtr is None:
            return False
        self._background(self.cx.send_rtr(rtr), f"RTR {reason.name} to {rtr.destination_host}")
        return True

    async def remove(self, name: str) -> Subscriber:
        rtr = None
        current = await self.inner.get(name)
        if current is not None and current.assignment is not None:
            rtr = await prepare_rtr(self.inner, name, DeregistrationReason.PERMANENT_TERMINATION)
        before = await self.inner.remove(name)
        if rtr is not None:
            self._background(self.cx.send_rtr(rtr), f"RTR to {rtr.destination_host}")
        return before

    def _push(self, name: str) -> None:
        async def push() -> None:
            sub = await self.inner.get(name)
            ppr = prepare_ppr(sub) if sub is not None else None
            if ppr is not None:
                result = await self.cx.send_ppr(ppr)
                if not result.success:
                    log.warning("PPR to %s answered %s", ppr.destination_host, result)

        self._background(push(), f"PPR for {name}")

    def _background(self, coro: Awaitable[object], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as err:
                self.cx.undelivered += 1
                log.warning("%s not delivered: %s", what, err)

        task = asyncio.ensure_future(guarded())
        self._sent.add(task)
        task.add_done_callback(self._sent.discard)

    async def drain(self) -> None:
        """Wait for the PPR/RTR sent so far."""
        while self._sent:
            await asyncio.gather(*self._sent, return_exceptions=True)


@dataclass
class HssOptions:
    """What the HSS element needs, taken from the settings by the caller."""

    store: str
    identity: str
    realm: str
    host: str
    diameter_port: int
    api_port: int
    api_key: str | None
    data_dir: Path
    home_networks: frozenset[str]
    node: NodeConfig = field(default_factory=NodeConfig)


class HssElement:
    """A started HSS; :meth:`close` stops it."""

    title = "HSS"

    def __init__(self, options: HssOptions) -> None:
        self.options = options
        self.raw_store: SubscriberStore = open_store(options.store)
        self.node = DiameterNode(
            Identity(
                origin_host=options.identity,
                origin_realm=options.realm,
                applications=((VENDOR_3GPP, CX_APPLICATION_ID),),
                host_ip_addresses=(options.host,),
            ),
            options.node,
        )
        self.cx = CxServer(self.node, self.raw_store, home_networks=options.home_networks)
        self.store = NotifyingStore(self.raw_store, self.cx)
        self.diameter_port = 0
        self.api: HttpServer | None = None
        self.api_key_note = ""
        self._api_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        opts = self.options
        await self.raw_store.open()
        try:
            self.cx.install()
            self.diameter_port = await self.node.listen(opts.host, opts.diameter_port)
            if opts.api_port:
                await self._start_api()
        except BaseException:
            await self.close()
            raise

    async def _start_api(self) -> None:
        opts = self.options
        key = resolve_api_key(opts.api_key, opts.data_dir)
        self.api_key_note = key.describe()
        app = create_app(self.store, key.value, deregister=self.store.deregister)
        server = HttpServer(app, opts.host, opts.api_port)
        self._api_task = await server.start_serving()
        self.api = server

    def describe(self) -> list[str]:
        opts = self.options
        lines = [
            f"diameter://{opts.host}:{self.diameter_port}  "
            f"(Cx, Origin-Host {opts.identity}, realm {opts.realm})",
            f"store {opts.store}",
        ]
        if self.api is not None:
            lines.append(f"http://{opts.host}:{self.api.port}/  (provisioning API, X-API-Key)")
            if self.api_key_note:
                lines.append(self.api_key_note)
        return lines

    async def close(self) -> None:
        if self.api is not None and self._api_task is not None:
            await self.api.stop(self._api_task)
        await self.node.stop()
        await self.store.drain()
        await self.raw_store.close()
        if self.node.tracer is not None:  # the HSS's message trace (set by its starter)
            self.node.tracer.close()


def options_from_settings(settings: object) -> HssOptions:
    """HssOptions from a :class:`~webims.config.Settings`."""
    from ..config import Settings  # noqa: PLC0415 (config imports nothing of hss)

    assert isinstance(settings, Settings)
    hss = settings.hss
    return HssOptions(
        store=hss.store_location(settings.data_dir),
        identity=hss.identity,
        realm=hss.realm,
        host=hss.host,
        diameter_port=hss.diameter_port,
        api_port=hss.api_port,
        api_key=hss.api_key,
        data_dir=settings.data_dir,
        home_networks=frozenset({hss.realm, settings.sip.domain}),
        node=NodeConfig(tw=hss.watchdog_interval, allowed_peers=frozenset(hss.peers)),
    )
