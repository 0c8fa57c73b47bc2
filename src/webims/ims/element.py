"""The asyncio shell of a CSCF: its SIP endpoint, the proxy core with the
CSCF's procedures over it, and its Diameter Cx client to the HSS.

The procedures are a :class:`~webims.sip.proxy.ProxyApplication`.  A
procedure that must wait (for a Cx answer, say) runs as a task started with
:meth:`Cscf.spawn`; when it has decided (``ctx.forward``/``ctx.respond``
with ``now=cscf.now()``), the shell flushes what the core queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..config import CxClientSettings, ElementSettings, PcscfSettings, Settings
from ..devca import ensure_dev_ca, server_ssl_context
from ..diameter.base import Identity
from ..diameter.cx import CxClient
from ..diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP
from ..diameter.node import DiameterNode, NodeConfig
from ..observe.trace import TraceRecorder, open_recorder
from ..sip.proxy import ProxyApplication, ProxyConfig, ProxyCore
from ..sip.transaction import TimerConfig
from ..transport.endpoint import EndpointConfig, SipEndpoint
from ..transport.layer import ListenSpec, TransportConfig
from .topology import Topology

__all__ = ["Cscf", "listen_specs"]

log = logging.getLogger(__name__)

TITLES = {"pcscf": "eP-CSCF", "icscf": "I-CSCF", "scscf": "S-CSCF"}


def listen_specs(name: str, settings: Settings) -> list[ListenSpec]:
    section: ElementSettings = getattr(settings, name)
    host = settings.sip.host
    specs: list[ListenSpec] = []
    if section.sip_port:
        specs += [
            ListenSpec("udp", host, section.sip_port),
            ListenSpec("tcp", host, section.sip_port),
        ]
    if isinstance(section, PcscfSettings):
        if section.ws_port:
            specs.append(ListenSpec("ws", host, section.ws_port))
        if section.wss_port:
            cert, key = section.tls_cert, section.tls_key
            if cert is None or key is None:
                ca = ensure_dev_ca(settings.data_dir)
                cert, key = ca.server_cert, ca.server_key
            specs.append(ListenSpec("wss", host, section.wss_port, server_ssl_context(cert, key)))
    return specs


class Cscf:
    """One CSCF: endpoint, proxy core, procedures, and (optionally) Cx."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        make_app: Callable[[Cscf], ProxyApplication],
        *,
        cx: CxClientSettings | None = None,
        transport: TransportConfig | None = None,
        proxy: ProxyConfig | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.topology = Topology.from_settings(settings)
        section: ElementSettings = getattr(settings, name)
        sip = settings.sip
        config = EndpointConfig(
            timers=TimerConfig(T1=sip.t1, T2=sip.t2, T4=sip.t4),
            transport=transport or TransportConfig(outgoing_from_listener=True),
            aliases=tuple(section.aliases),
            hosts=tuple(self.topology.hosts.items()),
        )
        self.app: ProxyApplication | None = None

        def make_core(ep: SipEndpoint) -> ProxyCore:
            self.endpoint = ep
            self.app = make_app(self)
            return ProxyCore(ep.layer, self.app, ep, proxy)

        self.endpoint = SipEndpoint(make_core, config)
        core = self.endpoint.tu
        assert isinstance(core, ProxyCore)
        self.core: ProxyCore = core
        self.node: DiameterNode | None = None
        self.cx: CxClient | None = None
        self._cx_settings = cx
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The element's message trace, SIP and Cx (``[trace]``); None when off.
        self.tracer: TraceRecorder | None = open_recorder(settings, self.title)
        self.endpoint.tracer = self.tracer
        #: Awaited by close(), after the endpoint (e.g. an HTTP client of the procedures).
        self.close_hooks: list[Callable[[], Awaitable[None]]] = []

    # -- life cycle -------------------------------------------------------------
    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    async def start(self) -> None:
        await self.endpoint.start(listen_specs(self.name, self.settings))
        if self._cx_settings is not None:
            hss = self.settings.hss
            self.node = DiameterNode(
                Identity(
                    origin_host=self._cx_settings.identity,
                    origin_realm=hss.realm,
                    applications=((VENDOR_3GPP, CX_APPLICATION_ID),),
                ),
                NodeConfig(tw=hss.watchdog_interval),
            )
            self.node.tracer = self.tracer
            self.node.add_peer(hss.identity, hss.host, hss.diameter_port)
            self.cx = CxClient(
                self.node,
                destination_realm=hss.realm,
                destination_host=hss.identity,
                timeout=self._cx_settings.timeout,
            )
            try:
                await self.node.wait_open(hss.identity, 5.0)
            except Exception as err:  # keeps trying in the background
                log.warning("%s: HSS not reachable yet: %s", self.title, err)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.node is not None:
            await self.node.stop()
        await self.endpoint.close()
        if self.tracer is not None:
            self.tracer.close()
        for hook in self.close_hooks:
            await hook()

    def describe(self) -> list[str]:
        lines = []
        for lst in self.endpoint.listeners:
            host, port = lst.local
            shown = f"[{host}]" if ":" in host else host
            if lst.transport in ("ws", "wss"):
                lines.append(f"{lst.transport}://{shown}:{port}/  (subprotocol sip)")
            else:
                lines.append(f"sip:{shown}:{port};transport={lst.transport}")
        return lines

    # -- for the procedures -----------------------------------------------------
    def now(self) -> float:
        return self.endpoint.now()

    def flush(self) -> None:
        self.endpoint.flush()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a procedure that waits; what it leaves queued in the core is
        sent when it finishes (or fails)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            log.error("%s: procedure failed", self.title, exc_info=err)
        self.endpoint.flush()
