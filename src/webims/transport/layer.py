"""The transport layer: listeners, connections and flows behind one callback.

:class:`TransportLayer` owns every socket of an element.  Whatever arrives,
on any transport, is parsed, gets its top Via stamped (RFC 3261 §18.2.1,
RFC 3581) and reaches the element through a single synchronous callback,
``on_message(msg, flow)``; the element answers with :meth:`~TransportLayer.send`
("on the flow this came from"), :meth:`~TransportLayer.send_response`
(§18.2.2) or :meth:`~TransportLayer.send_to`.  The SIP core stays sans-I/O:
this is the only place that awaits, and the only place that reads the clock
(idle connections are swept by one timer task).

Bad input never gets further than here: a request that cannot be used is
answered statelessly (400, 413, 513 ...) when enough of it can be read, a
stream that breaks framing is closed after that answer, and the rest is
dropped with a debug log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from ..sip.checks import response_for_error
from ..sip.errors import ParseError, SipError
from ..sip.message import DEFAULT_LIMITS, Limits, Request, Response, parse_message
from .base import FlowClosed, Link, StreamLink, TransportError
from .flow import Address, Flow, FlowTable, normalize_host
from .receive import answer_for, stamp_received
from .stream import StreamConnection
from .tls import bounded_reads, require_tls12
from .udp import UdpEndpoint
from .ws import WsConnection, WsOptions

__all__ = [
    "ListenSpec",
    "Listener",
    "OnFlowClosed",
    "OnMessage",
    "TransportConfig",
    "TransportLayer",
]

log = logging.getLogger(__name__)

OnMessage = Callable[[Request | Response, Flow], None]
OnFlowClosed = Callable[[Flow], None]

#: Default ports of RFC 3261 §19.1.2 for sent-by without a port.
_DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "ws": 80, "tls": 5061, "wss": 443}


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Settings of a transport layer (passed in, never global)."""

    #: Parser and framer limits (513 / 413 beyond them).
    limits: Limits = DEFAULT_LIMITS
    #: TCP/TLS connections silent this long are closed (None: never).
    idle_timeout: float | None = 600.0
    #: WS/WSS connections silent this long are closed (None: never).
    ws_idle_timeout: float | None = 3600.0
    #: TLS handshakes, the WebSocket upgrade and its closing handshake.
    handshake_timeout: float = 10.0
    #: Opening a TCP/TLS connection for send_to.
    connect_timeout: float = 10.0
    #: A connection whose peer lets this many bytes pile up is dropped.
    max_send_buffer: int = 1 << 20
    #: Accepted Origin values for WS handshakes (None: any).
    ws_origins: tuple[str, ...] | None = None
    #: For outgoing TLS connections (send_to 'tls'); TLS 1.2+ is enforced.
    tls_client_context: ssl.SSLContext | None = None
    #: Key of the flow-token HMAC (random per process when None).
    flow_key: bytes | None = None
    #: listen() backlog of stream listeners.
    backlog: int = 1024
    #: SO_RCVBUF / SO_SNDBUF of UDP sockets: room for about 1,000 datagrams
    #: (200 ms at 5,000/s), enough for bursts; a deeper queue only delays
    #: requests past T1, when their senders retransmit them.
    udp_buffer_size: int = 512 << 10
    #: Outgoing TCP connections leave from the port of our TCP listener (its
    #: address and port, with SO_REUSEPORT on both sockets), so that a peer
    #: sees the same address and port on every connection and datagram from
    #: this element: what a trusted-peer check by address and port needs
    #: (TS 24.229 Mw between CSCFs sharing one host).
    outgoing_from_listener: bool = False


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """A listener to open in :meth:`TransportLayer.start`."""

    transport: str
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    """An open listening socket; ``local`` has the real port when 0 was asked."""

    transport: str
    local: Address


def _listener_context(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 or later, reads of a record at a time (memory of idle connections)."""
    return bounded_reads(require_tls12(context))


class TransportLayer:
    """UDP, TCP, TLS, WS and WSS for one SIP element."""

    def __init__(
        self,
        on_message: OnMessage,
        *,
        config: TransportConfig | None = None,
        on_flow_closed: OnFlowClosed | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_flow_closed = on_flow_closed
        self.config = config if config is not None else TransportConfig()
        self.table: FlowTable[Link] = FlowTable(self.config.flow_key)
        self._limits = self.config.limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[tuple[Listener, asyncio.Server]] = []
        self._udp: list[tuple[Listener, UdpEndpoint]] = []
        #: Most recent connection per (transport, remote address), for reuse.
        self._by_remote: dict[tuple[str, Address], StreamLink] = {}
        self._local_addresses: dict[Address, Address] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        if self.config.tls_client_context is not None:
            require_tls12(self.config.tls_client_context)

    # -- life cycle --------------------------------------------------------
    async def start(self, listeners: Iterable[ListenSpec] = ()) -> list[Listener]:
        """Start the idle sweeper and open ``listeners``; returns them opened."""
        if self._closed:
            raise TransportError("the transport layer is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._sweeper = self._loop.create_task(self._sweep())
        opened = []
        for spec in listeners:
            opened.append(await self.listen(spec.transport, spec.host, spec.port, spec.ssl_context))
        return opened

    async def listen(
        self, transport: str, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> Listener:
        """Open a listener of any transport (see the ``listen_*`` methods)."""
        if transport == "udp":
            return await self.listen_udp(host, port)
        if transport == "tcp":
            return await self.listen_tcp(host, port)
        if transport == "ws":
            return await self.listen_ws(host, port)
        if ssl_context is None:
            raise ValueError(f"a {transport} listener needs an ssl_context")
        if transport == "tls":
            return await self.listen_tls(host, port, ssl_context)
        if transport == "wss":
            return await self.listen_wss(host, port, ssl_context)
        raise ValueError(f"unknown transport {transport!r}")

    async def listen_udp(self, host: str, port: int) -> Listener:
        await self.start()
        loop = self._running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(self), local_addr=(host, port)
        )
        endpoint.set_buffer_sizes(self.config.udp_buffer_size)
        listener = Listener("udp", endpoint.local)
        self._udp.append((listener, endpoint))
        self.table.add_datagram("udp", endpoint.local, endpoint)
        log.info("listening on udp %s:%d", *endpoint.local)
        return listener

    async def listen_tcp(self, host: str, port: int) -> Listener:
        return await self._listen_stream("tcp", host, port, None)

    async def listen_tls(self, host: str, port: int, ssl_context: ssl.SSLContext) -> Listener:
        return await self._listen_stream("tls", host, port, _listener_context(ssl_context))

    async def listen_ws(self, host: str, port: int) -> Listener:
        return await self._listen_stream("ws", host, port, None)

    async def listen_wss(self, host: str, port: int, ssl_context: ssl.SSLContext) -> Listener:
        return await self._listen_stream("wss", host, port, _listener_context(ssl_context))

    async def _listen_stream(
        self, name: str, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> Listener:
        await self.start()
        loop = self._running_loop()
        config = self.config
        factory: Callable[[], asyncio.Protocol]
        if name in ("ws", "wss"):
            opts = WsOptions(
                name=name,
                max_message_size=self._limits.max_message_size,
                handshake_timeout=config.handshake_timeout,
                idle_timeout=config.ws_idle_timeout,
                max_buffer=config.max_send_buffer,
                origins=config.ws_origins,
            )

            def factory() -> asyncio.Protocol:
                return WsConnection(self, opts)

        else:

            def factory() -> asyncio.Protocol:
                return StreamConnection(
                    self,
                    name,
                    self._limits,
                    idle_timeout=config.idle_timeout,
                    max_buffer=config.max_send_buffer,
                )

        server = await loop.create_server(
            factory,
            host,
            port,
            ssl=ssl_context,
            ssl_handshake_timeout=config.handshake_timeout if ssl_context else None,
            backlog=config.backlog,
            reuse_address=True,
            reuse_port=config.outgoing_from_listener and name == "tcp",
        )
        sockname = server.sockets[0].getsockname()
        listener = Listener(name, (normalize_host(sockname[0]), sockname[1]))
        self._servers.append((listener, server))
        log.info("listening on %s %s:%d", name, *listener.local)
        return listener

    @property
    def listeners(self) -> list[Listener]:
        return [listener for listener, _ in self._udp] + [listener for listener, _ in self._servers]

    async def close(self) -> None:
        """Close every listener and connection; pending connects are cancelled."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        for _, server in self._servers:
            server.close()
        for _, endpoint in self._udp:
            endpoint.close()
        for _, link in self.table.items():
            if isinstance(link, StreamConnection | WsConnection):
                link.abort()
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for _, server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        # Let connection_lost callbacks run.
        await asyncio.sleep(0)
        self._servers.clear()
        self._udp.clear()

    async def __aenter__(self) -> TransportLayer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending -----------------------------------------------------------
    def send(self, data: bytes, flow: Flow) -> None:
        """Send on ``flow`` (the connection, or UDP socket and peer, it names).

        Raises :class:`FlowClosed` if the connection is gone.
        """
        link = self.table.get(flow)
        if link is None:
            raise FlowClosed(f"{flow} is closed")
        link.send(data, flow)

    def send_to(
        self,
        data: bytes,
        transport: str,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
    ) -> Flow:
        """Send to an address; returns the flow used.

        ``host`` must be an IP address (name resolution, RFC 3263, is the
        caller's).  TCP and TLS reuse a live connection to that address or
        open one (the data waits until it is up; a failure is reported through
        ``on_flow_closed``).  WS and WSS only reuse: a browser cannot be
        called back.  ``server_name`` is the TLS SNI / certificate name.
        """
        if self._closed:
            raise TransportError("the transport layer is closed")
        transport = transport.lower()
        try:
            remote = (normalize_host(host), int(port))
        except ValueError:
            raise TransportError(f"send_to needs an IP address, not {host!r}") from None
        if transport == "udp":
            endpoint = self._udp_endpoint(remote, None)
            flow = Flow("udp", endpoint.local, remote)
            endpoint.send(data, flow)
            return flow
        if transport not in _DEFAULT_PORT:
            raise TransportError(f"unknown transport {transport!r}")
        link = self._by_remote.get((transport, remote))
        if link is None or link.flow is None or link.flow not in self.table:
            if transport in ("ws", "wss"):
                raise FlowClosed(f"no {transport} connection from {remote[0]}:{remote[1]}")
            link = self._open(transport, remote, server_name)
        assert link.flow is not None
        link.send(data, link.flow)
        return link.flow

    def send_response(self, response: Response, flow: Flow | None) -> Flow:
        """Send a response the way RFC 3261 §18.2.2 (and RFC 3581) says.

        Reliable: on the connection the request came on while it lives; then,
        for TCP/TLS, on a new connection to the Via's ``received`` (else
        sent-by) host and sent-by port.  WS/WSS responses have nowhere else
        to go (:class:`FlowClosed`).  UDP: to ``received`` (else sent-by) at
        ``rport`` (else sent-by port), from the socket the request came to.
        ``maddr`` is not honoured (multicast is not used, and it would let a
        request aim responses anywhere).
        """
        data = response.serialize()
        if flow is not None and flow.reliable:
            link = self.table.get(flow)
            if link is not None:
                try:
                    link.send(data, flow)
                    return flow
                except FlowClosed:
                    pass
            if flow.transport in ("ws", "wss"):
                raise FlowClosed(f"{flow} is closed")
        try:
            via = response.top_via
        except ParseError:
            if flow is not None and not flow.reliable:
                self.send(data, flow)  # the source address is all that is known
                return flow
            raise TransportError("response without a usable Via") from None
        transport = via.transport.lower()
        if transport in ("ws", "wss"):
            raise FlowClosed(f"the {transport} connection of {via.host} is gone")
        host = via.received or via.host_bare
        if transport == "udp":
            port = via.rport or via.port or _DEFAULT_PORT["udp"]
            try:
                remote = (normalize_host(host), port)
            except ValueError:
                raise TransportError(f"cannot send to {host!r} without resolving it") from None
            endpoint = self._udp_endpoint(remote, flow)
            out = Flow("udp", endpoint.local, remote)
            endpoint.send(data, out)
            return out
        if transport in ("tcp", "tls"):
            return self.send_to(data, transport, host, via.port or _DEFAULT_PORT[transport])
        raise TransportError(f"unsupported transport {via.transport} in Via")

    def is_live(self, flow: Flow) -> bool:
        """Whether ``flow``'s connection is still open."""
        return flow in self.table

    def flows(self) -> list[Flow]:
        """The flows of the open connections (UDP has none)."""
        return self.table.flows()

    def close_flow(self, flow: Flow) -> None:
        """Close the connection of ``flow`` (no-op for UDP or a gone flow)."""
        if flow.conn_id:
            link = self.table.get(flow)
            if link is not None:
                link.close()

    def make_token(self, flow: Flow) -> str:
        """RFC 5626 flow token for ``flow`` (see :meth:`FlowTable.make_token`)."""
        return self.table.make_token(flow)

    def resolve_token(self, token: str) -> Flow | None:
        """The live flow a token names, or None (forged, or the flow is gone)."""
        return self.table.resolve_token(token)

    # -- Sink (called by the connections) ----------------------------------
    def now(self) -> float:
        return self._running_loop().time()

    def new_conn_id(self) -> int:
        return self.table.next_conn_id()

    def local_address(self, sockname: tuple[str, int]) -> Address:
        key = (sockname[0], sockname[1])
        addr = self._local_addresses.get(key)
        if addr is None:
            addr = (normalize_host(key[0]), key[1])
            if len(self._local_addresses) < 4096:
                self._local_addresses[key] = addr
        return addr

    def link_made(self, link: StreamLink, flow: Flow) -> None:
        if self._closed:
            link.abort()
            return
        self.table.add(flow, link)
        self._by_remote[(flow.transport, flow.remote)] = link

    def link_lost(self, link: StreamLink, flow: Flow) -> None:
        if self.table.get(flow) is not link:
            return
        self.table.remove(flow)
        key = (flow.transport, flow.remote)
        if self._by_remote.get(key) is link:
            del self._by_remote[key]
        log.debug("%s closed", flow)
        if self.on_flow_closed is not None:
            try:
                self.on_flow_closed(flow)
            except Exception:
                log.exception("on_flow_closed failed for %s", flow)

    def message_received(self, data: bytes, flow: Flow, link: Link) -> None:
        try:
            msg = parse_message(data, self._limits)
        except SipError as error:
            log.debug("%s: unparsable message (%s): %.60r", flow, error, data)
            self._answer(answer_for(data, error, self._limits), flow, link)
            return
        if flow.transport in ("ws", "wss") and _trailing_message(data, msg):
            # RFC 7118 §5.1: one SIP message per WebSocket message.  A second one
            # is not guessed at: the whole WebSocket message is refused.
            log.debug("%s: more than one SIP message in a WebSocket message", flow)
            if isinstance(msg, Request) and msg.method != "ACK":
                refusal = ParseError("more than one SIP message in a WebSocket message")
                self._answer(response_for_error(msg, refusal), flow, link)
            return
        if isinstance(msg, Request):
            try:
                stamp_received(msg, flow.remote)
            except SipError as error:
                log.debug("%s: bad top Via (%s) in %r", flow, error, msg)
                if msg.method != "ACK":
                    self._answer(response_for_error(msg, error), flow, link)
                return
        try:
            self.on_message(msg, flow)
        except Exception:
            log.exception("on_message failed for %r from %s", msg, flow)

    def framing_failed(self, error: ParseError, head: bytes | None, flow: Flow, link: Link) -> None:
        self._answer(answer_for(head, error, self._limits), flow, link)

    # -- internals ---------------------------------------------------------
    def _answer(self, response: Response | None, flow: Flow, link: Link) -> None:
        """Send a stateless error answer back where the request came from."""
        if response is None:
            return
        try:
            link.send(response.serialize(), flow)
        except (TransportError, OSError) as exc:
            log.debug("%s: could not answer %d: %s", flow, response.status, exc)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _udp_endpoint(self, remote: Address, flow: Flow | None) -> UdpEndpoint:
        """The UDP socket to send from: the flow's own, else one of the right family."""
        if flow is not None and flow.transport == "udp":
            link = self.table.get(flow)
            if isinstance(link, UdpEndpoint):
                return link
        v6 = ":" in remote[0]
        for listener, endpoint in self._udp:
            host = listener.local[0]
            if (":" in host) == v6 or (v6 and host == "::"):
                return endpoint
        raise TransportError(f"no UDP listener to reach {remote[0]}")

    def _open(self, transport: str, remote: Address, server_name: str | None) -> StreamConnection:
        """Start an outgoing TCP/TLS connection; its flow is known at once."""
        ssl_context = None
        if transport == "tls":
            ssl_context = self.config.tls_client_context
            if ssl_context is None:
                raise TransportError("no tls_client_context configured for outgoing TLS")
        elif transport != "tcp":
            raise TransportError(f"cannot open a {transport} connection")
        loop = self._running_loop()
        family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            source = self._source(transport, remote, family)
            if source[1]:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(source)
            local = sock.getsockname()
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot open {transport} to {remote}: {exc}") from exc
        flow = Flow(
            transport, (normalize_host(local[0]), local[1]), remote, self.table.next_conn_id()
        )
        link = StreamConnection(
            self,
            transport,
            self._limits,
            idle_timeout=self.config.idle_timeout,
            max_buffer=self.config.max_send_buffer,
            flow=flow,
        )
        self.link_made(link, flow)
        task = loop.create_task(self._connect(link, flow, sock, ssl_context, server_name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return link

    async def _connect(
        self,
        link: StreamConnection,
        flow: Flow,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None,
    ) -> None:
        loop = self._running_loop()
        connected = False
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await loop.sock_connect(sock, flow.remote)
                await loop.create_connection(
                    lambda: link,
                    sock=sock,
                    ssl=ssl_context,
                    server_hostname=(server_name or flow.remote[0]) if ssl_context else None,
                    ssl_handshake_timeout=self.config.handshake_timeout if ssl_context else None,
                )
            connected = True
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("%s: connect failed: %s", flow, exc)
        finally:
            if not connected:
                sock.close()
                self.link_lost(link, flow)

    def _source(self, transport: str, remote: Address, family: int) -> Address:
        """Where an outgoing connection binds: the listener's port when
        ``outgoing_from_listener`` is set, else an ephemeral port."""
        if self.config.outgoing_from_listener and transport == "tcp":
            v6 = family == socket.AF_INET6
            for listener, _ in self._servers:
                host = listener.local[0]
                if listener.transport == "tcp" and (":" in host) == v6:
                    return (host, listener.local[1])
        return (self._source_ip(transport, remote, family), 0)

    def _source_ip(self, transport: str, remote: Address, family: int) -> str:
        """Bind outgoing connections to our listener's address when it has one."""
        v6 = family == socket.AF_INET6
        for listener, _ in self._servers:
            host = listener.local[0]
            wildcard = host in ("0.0.0.0", "::")
            if listener.transport == transport and (":" in host) == v6 and not wildcard:
                return host
        # Let the routing table pick (no packet is sent by connect() on UDP).
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            probe.connect((remote[0], remote[1] or 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "::" if v6 else "0.0.0.0"
        finally:
            probe.close()

    async def _sweep(self) -> None:
        """Close connections silent for longer than their idle limit."""
        config = self.config
        limits = [
            t for t in (config.idle_timeout, config.ws_idle_timeout, config.handshake_timeout) if t
        ]
        interval = min(5.0, max(0.05, min(limits, default=5.0) / 4))
        loop = self._running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for flow, link in self.table.items():
                if not isinstance(link, StreamConnection | WsConnection):
                    continue
                limit = link.idle_limit()
                if limit is None:
                    continue
                idle = now - link.last_activity
                if idle <= limit:
                    continue
                if link.closing:
                    log.debug("%s: closing takes too long; aborting", flow)
                    link.abort()
                else:
                    log.debug("%s: idle for %.1f s; closing", flow, idle)
                    link.close()


def _trailing_message(data: bytes, msg: Request | Response) -> bool:
    """Whether ``data`` holds more than ``msg``: anything but whitespace after
    its header section and the Content-Length bytes of its body."""
    length = msg.content_length
    if length is None:  # the body runs to the end of the WebSocket message
        return False
    start = len(data) - len(data.lstrip(b"\r\n"))
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        return False
    return bool(data[end + 4 + length :].strip())
