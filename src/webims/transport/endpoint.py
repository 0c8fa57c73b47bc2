"""A SIP element on the wire: the transport layer, the transaction layer and a
transaction user (a proxy core, a registrar, a UA) joined together.

This is the thin asyncio shell around the sans-I/O core, in the shape of
aioquic's protocol: every message in goes to the transaction layer with the
loop's time, the transaction user drains the events, everything queued goes out,
and one loop timer is re-armed at the earliest deadline of the core.

Destinations handed to the core are either a :class:`~webims.transport.flow.Flow`
(reply on the connection a message came on) or a :class:`~webims.sip.proxy.Hop`
(an address to send to, opening a connection if needed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..sip.checks import response_for_error
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.proxy import Hop
from ..sip.transaction import TimerConfig, TransactionLayer
from ..sip.uri import URI, SipURI
from .base import TransportError
from .flow import Flow, normalize_host
from .layer import Listener, ListenSpec, TransportConfig, TransportLayer

if TYPE_CHECKING:
    from ..observe.trace import TraceRecorder

__all__ = ["EndpointConfig", "SipEndpoint", "TransactionUser"]

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


class TransactionUser(Protocol):
    """What the endpoint drives: a proxy core, a registrar, a test UA."""

    def process_events(self, now: float) -> None:
        """Handle every event the transaction layer has queued."""

    def get_timer(self) -> float | None:
        """The earliest deadline of the TU and its transaction layer."""

    def handle_timer(self, now: float) -> None:
        """Fire what is due (the transaction layer's timers included)."""


class LayerOnly:
    """A TU with no timers of its own; events are left for the owner to read."""

    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer

    def process_events(self, now: float) -> None:
        return None

    def get_timer(self) -> float | None:
        return self.layer.get_timer()

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)


@dataclass(frozen=True)
class EndpointConfig:
    """How the element is reached and how it names itself."""

    listen: tuple[ListenSpec, ...] = ()
    timers: TimerConfig = field(default_factory=TimerConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    #: Host names (and domains) that are this element, for Route processing.
    aliases: tuple[str, ...] = ()
    #: Static name -> IP address map for next hops (no DNS here yet).
    hosts: tuple[tuple[str, str], ...] = ()
    #: The host to put in our Via and Record-Route (default: listener address).
    advertised_host: str | None = None


class SipEndpoint:
    """One SIP element's sockets, transactions and transaction user."""

    def __init__(
        self,
        make_tu: Callable[[SipEndpoint], TransactionUser] | None = None,
        config: EndpointConfig | None = None,
    ) -> None:
        self.config = config or EndpointConfig()
        self.transport = TransportLayer(
            self._on_message, config=self.config.transport, on_flow_closed=self._on_flow_closed
        )
        self.layer = TransactionLayer(self.config.timers)
        self.tu: TransactionUser = make_tu(self) if make_tu else LayerOnly(self.layer)
        self.listeners: list[Listener] = []
        self._hosts = dict(self.config.hosts)
        self._via_cache: dict[str, tuple[str, str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False
        #: The next hop each connection we opened (or reused) was sent to, so
        #: that its failure reaches the transactions that went to that hop.
        self._hops: dict[Flow, Hop] = {}
        #: Called with every flow that closes (after the core was told).
        self.flow_closed_hooks: list[Callable[[Flow], None]] = []
        #: The element's message trace (``webims trace``); None: not recorded.
        self.tracer: TraceRecorder | None = None

    # -- life cycle ------------------------------------------------------------
    async def start(self, listen: Iterable[ListenSpec] | None = None) -> list[Listener]:
        self._loop = asyncio.get_running_loop()
        specs = list(listen) if listen is not None else list(self.config.listen)
        self.listeners = await self.transport.start(specs)
        self._via_cache.clear()
        return self.listeners

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.transport.close()

    def now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def listener(self, transport: str) -> Listener:
        for lst in self.listeners:
            if lst.transport == transport.lower():
                return lst
        raise LookupError(f"no {transport} listener")

    # -- input -------------------------------------------------------------------
    def _on_message(self, msg: Request | Response, flow: Flow) -> None:
        if self.tracer is not None:
            self.tracer.sip_in(msg, flow)
        now = self.now()
        try:
            # The transaction layer checks what it matches on (top Via, CSeq);
            # everything else is for the transaction user to check.
            self.layer.receive(msg, flow, flow.reliable, now)
        except SipError as err:
            log.debug("%s: rejected %r: %s", flow, msg, err)
            if isinstance(msg, Request) and msg.method != "ACK":
                self._send_stateless_response(response_for_error(msg, err), flow)
            return
        self.tu.process_events(now)
        self.flush()

    def _on_flow_closed(self, flow: Flow) -> None:
        now = self.now()
        self.layer.transport_error(flow, now)
        hop = self._hops.pop(flow, None)
        if hop is not None:
            # A connection to a next hop failed (refused, reset, closed): the
            # client transactions sent to that hop learn it now (§17.1.4),
            # rather than at Timer B/F.
            self.layer.transport_error(hop, now)
        self.tu.process_events(now)
        self.flush()
        for hook in self.flow_closed_hooks:
            hook(flow)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.now()
        self.tu.handle_timer(now)
        self.tu.process_events(now)
        self.flush()

    # -- output -------------------------------------------------------------------
    def flush(self) -> None:
        """Send what the core queued and re-arm the timer.  Call after any
        change made to the core from outside its callbacks (a TU acting after
        an await, say)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            for _ in range(16):
                out = self.layer.datagrams_to_send()
                if not out:
                    break
                failed = False
                for data, dest in out:
                    if not self._send(data, dest):
                        failed = True
                if failed:
                    self.tu.process_events(self.now())
        finally:
            self._flushing = False
        self._rearm()

    def _send(self, data: bytes, dest: Hashable) -> bool:
        try:
            if isinstance(dest, Flow):
                self.transport.send(data, dest)
                flow = dest
            elif isinstance(dest, Hop):
                flow = self.transport.send_to(data, dest.transport, dest.host, dest.port)
                if dest.reliable:
                    self._hops[flow] = dest
            else:
                raise TransportError(f"cannot send to {dest!r}")
        except (TransportError, OSError) as err:
            log.debug("send to %s failed: %s", dest, err)
            self.layer.transport_error(dest, self.now())
            return False
        if self.tracer is not None:
            self.tracer.sip_out(data, flow)
        return True

    def _send_stateless_response(self, resp: Response, flow: Flow) -> None:
        try:
            sent = self.transport.send_response(resp, flow)
        except (TransportError, OSError) as err:
            log.debug("stateless %d to %s failed: %s", resp.status, flow, err)
            return
        if self.tracer is not None:
            self.tracer.sip_out(resp.serialize(), sent)

    def _rearm(self) -> None:
        when = self.tu.get_timer()
        if when is None or (self._timer_at is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer_at = when
        self._timer = loop.call_at(when, self._on_timer)

    # -- Locator (for a proxy core over this endpoint) ------------------------------
    def next_hop(self, uri: URI) -> Hashable:
        """The Hop for ``uri`` (§18.1.1 defaults; names from the static host map)."""
        if not isinstance(uri, SipURI):
            raise SipError(f"cannot route to {uri}", status=416)
        transport = (uri.transport or ("tls" if uri.secure else "udp")).upper()
        if transport not in _DEFAULT_PORTS:
            raise SipError(f"unsupported transport {transport}", status=503)
        host = uri.maddr or uri.host_bare
        host = self._hosts.get(host, host)
        try:
            host = normalize_host(host)
        except ValueError:
            raise SipError(f"cannot resolve {host}", status=503) from None
        return Hop(transport, host, uri.port or _DEFAULT_PORTS[transport])

    def is_reliable(self, dest: Hashable) -> bool:
        if isinstance(dest, (Flow, Hop)):
            return dest.reliable
        return False

    def local_via(self, dest: Hashable) -> tuple[str, str]:
        if isinstance(dest, Flow):
            transport = dest.transport
        elif isinstance(dest, Hop):
            transport = dest.transport.lower()
        else:
            transport = "udp"
        known = self._via_cache.get(transport)
        if known is not None:
            return known
        lst = self._listener_for(transport)
        host = self.config.advertised_host or lst.local[0]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        via = (transport.upper(), f"{host}:{lst.local[1]}")
        self._via_cache[transport] = via
        return via

    def _listener_for(self, transport: str) -> Listener:
        for lst in self.listeners:
            if lst.transport == transport:
                return lst
        if self.listeners:
            return self.listeners[0]
        raise SipError("no listener to send from", status=503)

    def is_local(self, uri: URI) -> bool:
        if not isinstance(uri, SipURI):
            return False
        host = uri.host_bare
        if host in self.config.aliases:
            return uri.port is None or any(uri.port == lst.local[1] for lst in self.listeners)
        try:
            ip = normalize_host(self._hosts.get(host, host))
        except ValueError:
            return False
        for lst in self.listeners:
            port = uri.port or _DEFAULT_PORTS.get(lst.transport.upper(), 5060)
            if lst.local[1] == port and (lst.local[0] == ip or lst.local[0] in ("0.0.0.0", "::")):
                return True
        return False
