"""The elements' metrics in the Prometheus text exposition format (``/metrics``).

Nothing is counted on the message path for this: each :class:`~prometheus_client.
registry.Collector` reads an element's own state when it is scraped — the SIP
endpoint's connection table and transaction layer (RFC 3261 §17), the eP-CSCF's
registrations (TS 24.229 5.2.2), the S-CSCF's registrar (TS 24.229 5.4.1) and
reg event subscriptions (RFC 3680), a Diameter node's peers (RFC 6733 §5.6) and
the counters it keeps anyway (``DiameterNode.stats``).  Collectors run in the
event loop (the HTTP server is in the loop), so what they read is consistent.

Names are ``webims_<element>_<thing>``, ``<element>`` one of ``pcscf``,
``icscf``, ``scscf``, ``hss``; plus the ``process_*`` metrics of the process.
``[metrics] port`` (0: off) is the HTTP listener; every element of a process
shares it, so elements run as separate processes on one host need different ports.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..diameter.node import DiameterNode
from ..diameter.peer import PeerState
from ..hss.element import HssElement
from ..ims.element import Cscf
from ..pcscf.app import EpCscf
from ..pcscf.bindings import Bindings
from ..scscf.app import ScscfApplication
from ..scscf.registrar import MemoryRegistrar, RegistrarStore
from ..transport.endpoint import SipEndpoint
from ..transport.http import HttpServer

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "CONTENT_TYPE",
    "DiameterCollector",
    "MetricsEndpoint",
    "PcscfCollector",
    "ScscfCollector",
    "SipCollector",
    "make_registry",
    "metrics_app",
    "start_metrics",
]

#: The exposition format served (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: The eP-CSCF's W2 transports (a WIC's flow), always shown, even at 0.
_WIC_TRANSPORTS = ("ws", "wss")

#: ``DiameterNode.stats`` key -> (metric name after the prefix, HELP text).
_DIAMETER_COUNTERS: dict[str, tuple[str, str]] = {
    "requests_in": ("diameter_requests_received", "Diameter requests received (answered here)."),
    "requests_out": ("diameter_requests_sent", "Diameter requests sent (application)."),
    "protocol_errors": (
        "diameter_protocol_errors",
        "Diameter messages answered or dropped as protocol errors (RFC 6733 §7.1.3).",
    ),
    "framing_errors": (
        "diameter_framing_errors",
        "Diameter connections closed on a message that could not be framed.",
    ),
    "dwr_sent": ("diameter_dwr_sent", "Device-Watchdog-Requests sent (RFC 3539 §3.4)."),
    "dwa_sent": ("diameter_dwa_sent", "Device-Watchdog-Answers sent."),
    "dwa_received": ("diameter_dwa_received", "Device-Watchdog-Answers received."),
    "dpr_received": ("diameter_dpr_received", "Disconnect-Peer-Requests received."),
}


class SipCollector(Collector):
    """A SIP element's transport and transaction layers (RFC 3261 §17, §18)."""

    def __init__(self, element: str, endpoint: SipEndpoint) -> None:
        self.prefix = f"webims_{element}"
        self.endpoint = endpoint

    def collect(self) -> Iterator[Metric]:
        conns = GaugeMetricFamily(
            f"{self.prefix}_sip_connections",
            "Open SIP connections (flows), by transport; UDP has none.",
            labels=["transport"],
        )
        by_transport = Counter(flow.transport for flow in self.endpoint.transport.flows())
        for transport, n in sorted(by_transport.items()):
            conns.add_metric([transport], n)
        yield conns
        transactions = GaugeMetricFamily(
            f"{self.prefix}_sip_transactions",
            "Live SIP transactions, by kind (RFC 3261 §17.1 client, §17.2 server).",
            labels=["kind"],
        )
        clients, servers = self.endpoint.layer.counts
        transactions.add_metric(["client"], clients)
        transactions.add_metric(["server"], servers)
        yield transactions


class DiameterCollector(Collector):
    """A Diameter node: its peers' states (RFC 6733 §5.6) and its counters."""

    def __init__(self, element: str, node: DiameterNode) -> None:
        self.prefix = f"webims_{element}"
        self.node = node

    def collect(self) -> Iterator[Metric]:
        peers = GaugeMetricFamily(
            f"{self.prefix}_diameter_peer_state",
            "Diameter peers by state of the RFC 6733 §5.6 state machine (1 = current).",
            labels=["peer", "state"],
        )
        pending = GaugeMetricFamily(
            f"{self.prefix}_diameter_pending_requests",
            "Diameter requests sent to the peer and not answered yet.",
            labels=["peer"],
        )
        up = GaugeMetricFamily(
            f"{self.prefix}_diameter_peers_open",
            "Diameter peers in the I-Open or R-Open state.",
        )
        open_peers = 0
        for identity, peer in sorted(self.node.peers.items()):
            state = peer.state
            peers.add_metric([identity, state.value], 1)
            pending.add_metric([identity], len(peer.pending))
            open_peers += state in (PeerState.I_OPEN, PeerState.R_OPEN)
        up.add_metric([], open_peers)
        yield from (up, peers, pending)
        stats = self.node.stats
        for key, (name, doc) in _DIAMETER_COUNTERS.items():
            yield CounterMetricFamily(f"{self.prefix}_{name}", doc, value=stats.get(key, 0))


class PcscfCollector(Collector):
    """The eP-CSCF's registrations (TS 24.229 5.2.2; one per WIC connection)."""

    def __init__(self, bindings: Bindings, dialogs: Callable[[], int] = lambda: 0) -> None:
        self.bindings = bindings
        self.dialogs = dialogs

    def collect(self) -> Iterator[Metric]:
        regs = GaugeMetricFamily(
            "webims_pcscf_registrations",
            "Registrations held by the eP-CSCF, by the WIC's transport and by whether "
            "its connection is still open.",
            labels=["transport", "flow"],
        )
        counts = Counter(
            (reg.flow.transport, "closed" if reg.dead else "open")
            for reg in self.bindings.registrations()
        )
        for transport in _WIC_TRANSPORTS:
            counts.setdefault((transport, "open"), 0)
        for (transport, flow), n in sorted(counts.items()):
            regs.add_metric([transport, flow], n)
        yield regs
        yield GaugeMetricFamily(
            "webims_pcscf_bound_impus",
            "Public user identities bound at the eP-CSCF, over every registration.",
            value=self.bindings.impu_count,
        )
        yield GaugeMetricFamily(
            "webims_pcscf_reg_event_subscriptions",
            "Reg event subscriptions of the eP-CSCF (TS 24.229 5.2.3), pending or active.",
            value=self.bindings.subscription_count,
        )
        yield GaugeMetricFamily(
            "webims_pcscf_dialogs",
            "Dialogs of UEs the eP-CSCF holds the route set of (TS 24.229 5.2.6.3.3).",
            value=self.dialogs(),
        )


class ScscfCollector(Collector):
    """The S-CSCF's registrar (TS 24.229 5.4.1) and reg event notifier (RFC 3680)."""

    def __init__(
        self, store: RegistrarStore, subscriptions: Callable[[], int], now: Callable[[], float]
    ) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.now = now

    def collect(self) -> Iterator[Metric]:
        if isinstance(self.store, MemoryRegistrar):  # another store costs a round trip
            registrations = self.store.registrations()
            now = self.now()
            yield GaugeMetricFamily(
                "webims_scscf_registrations",
                "Implicit registration sets registered at the S-CSCF.",
                value=len(registrations),
            )
            yield GaugeMetricFamily(
                "webims_scscf_contacts",
                "Unexpired contacts bound at the S-CSCF, over every registration.",
                value=sum(len(r.live_contacts(now)) for r in registrations),
            )
        yield GaugeMetricFamily(
            "webims_scscf_reg_event_subscriptions",
            "Reg event subscriptions (RFC 3680 dialogs) the S-CSCF is the notifier of.",
            value=self.subscriptions(),
        )


def _collectors(element: object) -> Iterable[Collector]:
    """The collectors of one running element (a CSCF, the HSS; others have none)."""
    if isinstance(element, Cscf):
        yield SipCollector(element.name, element.endpoint)
        if element.node is not None:
            yield DiameterCollector(element.name, element.node)
        app = element.app
        if isinstance(app, EpCscf):
            dialogs = app.dialogs
            yield PcscfCollector(app.bindings, lambda: len(dialogs))
        elif isinstance(app, ScscfApplication):
            notifier = app.notifier
            yield ScscfCollector(app.store, lambda: notifier.subscription_count, element.now)
    elif isinstance(element, HssElement):
        yield DiameterCollector("hss", element.node)


def make_registry(elements: Iterable[object]) -> CollectorRegistry:
    """A registry of the elements' collectors and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    for element in elements:
        for collector in _collectors(element):
            registry.register(collector)
    return registry


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """``GET /metrics``: the registry in the text format; anything else 404."""

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])


class MetricsEndpoint:
    """The ``/metrics`` HTTP listener, shown and stopped as the elements are."""

    title = "metrics"

    def __init__(self, server: HttpServer, task: asyncio.Task[None]) -> None:
        self.server = server
        self._task = task

    @property
    def url(self) -> str:
        return f"{self.server.url}/metrics"

    def describe(self) -> list[str]:
        return [self.url]

    async def close(self) -> None:
        await self.server.stop(self._task)


async def start_metrics(settings: Settings, elements: Iterable[object]) -> MetricsEndpoint | None:
    """Serve the metrics of ``elements`` on ``[metrics] host:port``; None when the port is 0."""
    section = settings.metrics
    if not section.port:
        return None
    server = HttpServer(metrics_app(make_registry(elements)), section.host, section.port)
    return MetricsEndpoint(server, await server.start_serving())
