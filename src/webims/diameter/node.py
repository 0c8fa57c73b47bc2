"""A Diameter node on asyncio: connections, the peer state machine, the
watchdog, and requests in both directions.

:class:`DiameterNode` listens for peers (the HSS) and/or connects to
configured ones (the CSCFs), runs one :class:`~.peer.PeerStateMachine` per
peer and carries out its actions on the sockets.  On top of it:

- **Requests out**: :meth:`DiameterNode.request` sends a request on an open
  connection and awaits its answer.  Any number may be in flight on one
  connection (pipelining); answers are matched by Hop-by-Hop Identifier.  No
  open peer raises :class:`PeerUnavailable`, a lost connection
  :class:`PeerDisconnected`, no answer in time :class:`RequestTimeout`.
- **Requests in**: handlers registered per (Application-Id, Command-Code)
  run as tasks, so a slow one never blocks the connection.  What no handler
  takes is answered by the node: an application it does not support with
  DIAMETER_APPLICATION_UNSUPPORTED (3007), an unknown command with
  DIAMETER_COMMAND_UNSUPPORTED (3001), undecodable AVPs with the code the
  decoder names (5014, 3008 …), a handler's :class:`DiameterError` with its
  code, anything else a handler raises with DIAMETER_UNABLE_TO_COMPLY (5012).
- **Bytes that cannot be framed** (a bad version or length) leave no way to
  find the next message: the node answers when a header can be read, then
  closes that connection; other connections are not affected.
- **Capabilities exchange**: a CER from a peer outside ``allowed_peers``
  gets DIAMETER_UNKNOWN_PEER (3010), one sharing no application with this
  node DIAMETER_NO_COMMON_APPLICATION (5010); either way the connection is
  closed and no peer state is touched.  A first message on an accepted
  connection that is not a CER closes it.
- **Watchdog** (RFC 3539): when nothing arrived for Tw (with jitter), a DWR
  is sent; when nothing arrives for another Tw, the connection is declared
  failed and closed.
- **Reconnection**: a configured peer whose connection closes is reconnected
  after a back-off that doubles from ``reconnect_min`` to ``reconnect_max``
  (with jitter) and resets once the peer is open again.  A DPR with
  BUSY or DO_NOT_WANT_TO_TALK_TO_YOU waits ``reconnect_max``.
- **Stop**: pending requests get a grace period, then every open peer is
  sent a DPR (REBOOTING) and closed on its DPA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from diameter.message import Message

from . import base
from .codec import AppMessage, Header, decode, error_answer, peek_header
from .errors import (
    DIAMETER_APPLICATION_UNSUPPORTED,
    DIAMETER_COMMAND_UNSUPPORTED,
    DIAMETER_MISSING_AVP,
    DIAMETER_NO_COMMON_APPLICATION,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNKNOWN_PEER,
    DiameterError,
    FramingError,
    PeerDisconnected,
    PeerUnavailable,
    RequestTimeout,
)
from .framing import HEADER_LENGTH, DiameterFramer
from .peer import PeerAction, PeerEvent, PeerState, PeerStateMachine

if TYPE_CHECKING:
    from ..observe.trace import TraceRecorder

__all__ = ["DiameterNode", "Handler", "NodeConfig", "Peer"]

log = logging.getLogger(__name__)

Handler = Callable[[AppMessage, "Peer"], Awaitable[AppMessage]]

_BASE_APPLICATION = 0
_SWEEP = 0.05
_FLUSH_AT = 8


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Timers and policy of a node (seconds)."""

    #: RFC 3539 Tw: the watchdog interval (the RFC recommends 30 s, at least 6).
    tw: float = 30.0
    #: Wait-Conn-Ack, Wait-I-CEA, Wait-Returns and Closing give up after this.
    handshake_timeout: float = 10.0
    #: How long :meth:`DiameterNode.request` waits for an answer by default.
    request_timeout: float = 4.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    #: Origin-Host values accepted in a CER; empty accepts any.
    allowed_peers: frozenset[str] = frozenset()
    max_message_size: int = 1 << 20
    #: Time pending requests get to finish when the node stops.
    stop_grace: float = 2.0


class _Resumed:
    """Awaiting this goes on with a coroutine that was started by hand and is
    waiting on ``waiting``: what ``yield from`` would do, for a coroutine
    already past its first step."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation, thrown in by the task
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _Resumed(coro, waiting)


class _Connection(asyncio.Protocol):
    """One TCP connection: frames bytes into messages for the node."""

    def __init__(self, node: DiameterNode, peer: Peer | None, initiator: bool) -> None:
        self.node = node
        self.peer = peer
        self.initiator = initiator
        self.framer = DiameterFramer(node.config.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._out: list[bytes] = []
        #: (local, remote) address, for the message trace.
        self.addresses: tuple[tuple[str, int], tuple[str, int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        local, remote = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        if local and remote:
            self.addresses = ((local[0], local[1]), (remote[0], remote[1]))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Answers are small and pipelined: never hold one back for an ACK.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.initiator:
            self.node._accepted.add(self)

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        framer.feed(data)
        while not self.closed:
            try:
                raw = framer.next_message()
            except FramingError as err:
                self.node._on_framing_error(self, err)
                return
            if raw is None:
                return
            self.node._on_message(self, raw)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.node._accepted.discard(self)
        self.node._on_lost(self)

    def send(self, data: bytes) -> None:
        """Queue ``data``; what is queued in one turn of the loop goes out in
        one write (pipelined answers cost one system call, not one each)."""
        if self.transport is not None and not self.closed:
            if self.node.tracer is not None:
                self.node.tracer.diameter_out(data, self.addresses)
            out = self._out
            if not out:
                asyncio.get_running_loop().call_soon(self.flush)
            out.append(data)
            if len(out) >= _FLUSH_AT:
                # Keep the peer busy: a long burst goes out in slices, so
                # that the peer works on the first while this side makes
                # the rest (otherwise both would take turns, batch by batch).
                self.flush()

    def flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def close(self, *, abort: bool = False) -> None:
        """Close after what is queued is written, or at once with ``abort``
        (a peer that stopped reading would otherwise hold the socket)."""
        if self.transport is not None and not self.closed:
            self.closed = True
            if abort:
                self._out = []
                self.transport.abort()
            else:
                self.flush()
                self.transport.close()

    def peername(self) -> str:
        if self.transport is None:
            return "?"
        addr = self.transport.get_extra_info("peername")
        return f"{addr[0]}:{addr[1]}" if addr else "?"


@dataclass(eq=False)
class Peer:
    """A Diameter peer: its state machine, connections and pending requests.

    ``address`` is set for a configured peer this node connects to; a peer
    known only from an incoming CER has none and is forgotten when closed.
    """

    identity: str
    address: tuple[str, int] | None = None
    realm: str | None = None
    applications: frozenset[int] = frozenset()
    fsm: PeerStateMachine = field(default_factory=PeerStateMachine)
    i_conn: _Connection | None = None
    r_conn: _Connection | None = None
    r_cer: Message | None = None
    #: Hop-by-Hop Identifier -> (the answer's future, its deadline).
    pending: dict[int, tuple[asyncio.Future[AppMessage], float]] = field(default_factory=dict)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    last_rx: float = 0.0
    dwr_outstanding: bool = False
    backoff: float = 0.0
    stopping: bool = False
    reconnect_after: float | None = None
    _timer: asyncio.TimerHandle | None = None
    _watchdog: asyncio.TimerHandle | None = None
    _reconnect: asyncio.TimerHandle | None = None

    @property
    def state(self) -> PeerState:
        return self.fsm.state

    @property
    def connection(self) -> _Connection | None:
        """The connection messages go on, once open."""
        if self.fsm.state is PeerState.R_OPEN:
            return self.r_conn
        if self.fsm.state is PeerState.I_OPEN:
            return self.i_conn
        return None


@dataclass(slots=True)
class _Context:
    """What came with an event: the connection, the message, bytes to send."""

    conn: _Connection | None = None
    message: Message | None = None
    raw: bytes | None = None
    event: PeerEvent | None = None
    state: PeerState | None = None


class DiameterNode:
    """A Diameter node: peers, handlers and requests."""

    def __init__(self, identity: base.Identity, config: NodeConfig | None = None) -> None:
        if identity.origin_state_id == 0:
            identity = base.Identity(
                origin_host=identity.origin_host,
                origin_realm=identity.origin_realm,
                applications=identity.applications,
                host_ip_addresses=identity.host_ip_addresses,
                product_name=identity.product_name,
                vendor_id=identity.vendor_id,
                origin_state_id=base.new_origin_state_id(),
            )
        self.me = identity
        self.config = config or NodeConfig()
        self.ids = base.IdGenerator()
        self.peers: dict[str, Peer] = {}
        self._handlers: dict[tuple[int, int], Handler] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._accepted: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._apps = identity.application_ids()
        #: The element's message trace (application messages); None: not recorded.
        self.tracer: TraceRecorder | None = None
        #: Counters a test or the metrics can read.
        self.stats: dict[str, int] = {
            "requests_in": 0,
            "requests_out": 0,
            "protocol_errors": 0,
            "framing_errors": 0,
            "dwr_sent": 0,
            "dwa_sent": 0,
            "dwa_received": 0,
            "dpr_received": 0,
        }

    # -- set-up -------------------------------------------------------------

    def add_handler(self, application_id: int, command_code: int, handler: Handler) -> None:
        self._handlers[(application_id, command_code)] = handler

    async def listen(self, host: str, port: int) -> int:
        """Accept peers on ``host:port``; returns the bound port."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self, None, initiator=False), host, port, reuse_address=True
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def add_peer(self, identity: str, host: str, port: int) -> Peer:
        """Connect to the peer ``identity`` at ``host:port``, and keep it connected."""
        peer = self.peers.get(identity)
        if peer is None:
            peer = Peer(identity=identity, address=(host, port))
            self.peers[identity] = peer
        else:
            peer.address = (host, port)
        self._fire(peer, PeerEvent.START)
        return peer

    async def wait_open(self, identity: str, timeout: float) -> Peer:
        """Wait until the peer ``identity`` is open; raises :class:`PeerUnavailable`."""
        peer = self.peers.get(identity)
        if peer is None:
            raise PeerUnavailable(f"no Diameter peer {identity}")
        try:
            await asyncio.wait_for(peer.opened.wait(), timeout)
        except TimeoutError:
            raise PeerUnavailable(
                f"Diameter peer {identity} not open after {timeout:g} s (state {peer.state.value})"
            ) from None
        return peer

    async def stop(self) -> None:
        """Drain, send DPR to every open peer, close everything."""
        self._stopping = True
        for server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.stop_grace
        while any(p.pending for p in self.peers.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for peer in list(self.peers.values()):
            peer.stopping = True
            self._cancel_reconnect(peer)
            if peer.state.is_open:
                self._fire(peer, PeerEvent.STOP)
        deadline = loop.time() + self.config.handshake_timeout
        while (
            any(p.state is not PeerState.CLOSED for p in self.peers.values())
            and loop.time() < deadline
        ):
            await asyncio.sleep(0.01)
        for peer in list(self.peers.values()):
            self._close_all(peer)
            self._fail_pending(peer, PeerDisconnected("node stopped"))
        for conn in list(self._accepted):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    # -- requests out ---------------------------------------------------------

    def open_peer(self, application_id: int, destination_host: str | None = None) -> Peer:
        """The open peer a request goes to: ``destination_host`` if given,
        else the first open peer advertising the application."""
        if destination_host is not None:
            peer = self.peers.get(destination_host)
            if peer is None or not peer.state.is_open:
                raise PeerUnavailable(f"Diameter peer {destination_host} is not connected")
            return peer
        for peer in self.peers.values():
            if peer.state.is_open and application_id in peer.applications:
                return peer
        raise PeerUnavailable(f"no open Diameter peer for application {application_id}")

    async def request(
        self, message: Message, *, peer: Peer | None = None, timeout: float | None = None
    ) -> Message:
        """Send ``message`` (a request) and return its answer."""
        if peer is None:
            peer = self.open_peer(message.header.application_id)
        conn = peer.connection
        if conn is None or self._stopping:
            raise PeerUnavailable(f"Diameter peer {peer.identity} is {peer.state.value}")
        header = message.header
        header.is_request = True
        hop = self.ids.hop_by_hop()
        header.hop_by_hop_identifier = hop
        if not header.end_to_end_identifier:
            header.end_to_end_identifier = self.ids.end_to_end()
        raw = bytes(message.as_bytes())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppMessage] = loop.create_future()
        wait = self.config.request_timeout if timeout is None else timeout
        peer.pending[hop] = (future, loop.time() + wait)
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP, self._sweep)
        self.stats["requests_out"] += 1
        try:
            self._fire(peer, PeerEvent.SEND_MESSAGE, _Context(raw=raw))
            return await future
        finally:
            peer.pending.pop(hop, None)

    def _sweep(self) -> None:
        """Fail the requests whose deadline passed (one timer for them all,
        not one per request: timeouts are checked every 50 ms)."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        waiting = False
        for peer in self.peers.values():
            for future, deadline in peer.pending.values():
                if future.done():
                    continue
                if deadline <= now:
                    future.set_exception(RequestTimeout(f"no answer from {peer.identity} in time"))
                else:
                    waiting = True
        if waiting:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP, self._sweep)

    # -- events from the connections ------------------------------------------

    def _on_message(self, conn: _Connection, raw: bytes) -> None:
        if self.tracer is not None:
            self.tracer.diameter_in(raw, conn.addresses)
        header = peek_header(raw)
        try:
            message = decode(raw, header)
        except DiameterError as err:
            self.stats["protocol_errors"] += 1
            if header.is_request:
                log.info("undecodable request from %s: %s", conn.peername(), err)
                self._send_error(conn, header, err.result_code, str(err))
            else:
                log.info("undecodable answer from %s dropped: %s", conn.peername(), err)
            return
        peer = conn.peer
        if peer is None:
            if header.is_request and header.command_code == base.CMD_CAPABILITIES_EXCHANGE:
                self._on_cer(conn, message)
            else:
                log.info("first message from %s is not a CER: closing", conn.peername())
                conn.close()
            return
        peer.last_rx = asyncio.get_running_loop().time()
        peer.dwr_outstanding = False
        i = conn is peer.i_conn
        if conn is not peer.i_conn and conn is not peer.r_conn:
            return  # a connection the peer no longer uses
        code = header.command_code
        ctx = _Context(conn=conn, message=message)
        if code == base.CMD_CAPABILITIES_EXCHANGE:
            if not header.is_request and i:
                if getattr(message, "result_code", None) != DIAMETER_SUCCESS:
                    # §5.3: a refusal; drop the connection (I-Peer-Disc follows),
                    # never passing through an open state.
                    self._refused(peer, message)
                    conn.close()
                    return
                self._fire(peer, PeerEvent.I_RCV_CEA, ctx)
            elif header.is_request:
                self._send_error(
                    conn, header, DIAMETER_UNABLE_TO_COMPLY, "CER on an open connection"
                )
            return
        if i and peer.state is PeerState.WAIT_I_CEA:
            self._fire(peer, PeerEvent.I_RCV_NON_CEA, ctx)
            return
        if code == base.CMD_DEVICE_WATCHDOG:
            if header.is_request:
                event = PeerEvent.I_RCV_DWR if i else PeerEvent.R_RCV_DWR
            else:
                event = PeerEvent.I_RCV_DWA if i else PeerEvent.R_RCV_DWA
        elif code == base.CMD_DISCONNECT_PEER:
            if header.is_request:
                event = PeerEvent.I_RCV_DPR if i else PeerEvent.R_RCV_DPR
            else:
                event = PeerEvent.I_RCV_DPA if i else PeerEvent.R_RCV_DPA
        else:
            event = PeerEvent.I_RCV_MESSAGE if i else PeerEvent.R_RCV_MESSAGE
        self._fire(peer, event, ctx)

    def _on_cer(self, conn: _Connection, cer: Message) -> None:
        origin = cer.origin_host
        if not origin:
            self._reject_cer(conn, cer, DIAMETER_MISSING_AVP, "CER without Origin-Host")
            return
        identity = origin.decode(errors="replace")
        allowed = self.config.allowed_peers
        if allowed and identity not in allowed:
            self._reject_cer(conn, cer, DIAMETER_UNKNOWN_PEER, f"{identity} is not a known peer")
            return
        apps = base.advertised_applications(cer)
        if not (apps & self._apps) and base.RELAY_APPLICATION_ID not in apps:
            self._reject_cer(conn, cer, DIAMETER_NO_COMMON_APPLICATION, "no common application")
            return
        peer = self.peers.get(identity)
        if peer is None:
            peer = Peer(identity=identity)
            self.peers[identity] = peer
        self._fire(peer, PeerEvent.R_CONN_CER, _Context(conn=conn, message=cer))

    def _reject_cer(self, conn: _Connection, cer: Message, code: int, why: str) -> None:
        log.warning("CER from %s refused (%d): %s", conn.peername(), code, why)
        answer = base.cea(self.me, cer, code)
        answer.error_message = why
        conn.send(bytes(answer.as_bytes()))
        conn.close()

    def _on_framing_error(self, conn: _Connection, err: FramingError) -> None:
        self.stats["framing_errors"] += 1
        log.warning("closing the connection from %s: %s", conn.peername(), err)
        head = conn.framer.head()  # what could not be framed, for an answer
        if len(head) >= HEADER_LENGTH:
            header = peek_header(head)
            if header.is_request:
                self._send_error(conn, header, err.result_code, str(err))
        conn.close()

    def _on_lost(self, conn: _Connection) -> None:
        peer = conn.peer
        if peer is None:
            return
        if conn is peer.i_conn:
            self._fire(peer, PeerEvent.I_PEER_DISC, _Context(conn=conn))
        elif conn is peer.r_conn:
            self._fire(peer, PeerEvent.R_PEER_DISC, _Context(conn=conn))

    def _send_error(self, conn: _Connection, header: Header, code: int, why: str) -> None:
        conn.send(
            error_answer(
                header,
                code,
                origin_host=self.me.host_bytes,
                origin_realm=self.me.realm_bytes,
                error_message=why,
            )
        )

    # -- the state machine and its actions --------------------------------------

    def _fire(self, peer: Peer, event: PeerEvent, ctx: _Context | None = None) -> None:
        before = peer.state
        actions = peer.fsm.handle(event)
        if not actions:
            if peer.state is before and event is not PeerEvent.SEND_MESSAGE:
                log.debug("peer %s: %s ignored in %s", peer.identity, event.value, before.value)
            if event is PeerEvent.SEND_MESSAGE:
                raise PeerUnavailable(f"Diameter peer {peer.identity} is {before.value}")
            if event in (PeerEvent.I_PEER_DISC, PeerEvent.R_PEER_DISC) and ctx and ctx.conn:
                # A connection the table has no use for any more.
                if ctx.conn is peer.i_conn:
                    peer.i_conn = None
                if ctx.conn is peer.r_conn:
                    peer.r_conn = None
            return
        ctx = ctx or _Context()
        ctx.event, ctx.state = event, before
        for action in actions:
            self._run(peer, action, ctx)
        after = peer.state
        if after is not before:
            self._entered(peer, before, after)

    def _run(self, peer: Peer, action: PeerAction, ctx: _Context) -> None:
        A = PeerAction  # noqa: N806 (the table's own shorthand)
        if action is A.I_SND_CONN_REQ:
            self._connect(peer)
            self._arm(peer, self.config.handshake_timeout)
        elif action is A.R_ACCEPT:
            assert ctx.conn is not None
            ctx.conn.peer = peer
            peer.r_conn = ctx.conn
        elif action is A.PROCESS_CER:
            assert ctx.message is not None
            peer.r_cer = ctx.message
            self._learn(peer, ctx.message)
        elif action is A.R_SND_CEA:
            if peer.r_conn is not None and peer.r_cer is not None:
                peer.r_conn.send(bytes(base.cea(self.me, peer.r_cer).as_bytes()))
        elif action is A.I_SND_CER:
            if peer.i_conn is not None:
                peer.i_conn.send(bytes(self._request_bytes(base.cer(self.me))))
            self._arm(peer, self.config.handshake_timeout)
        elif action is A.CLEANUP:
            peer.i_conn = None
        elif action is A.ERROR:
            log.warning(
                "Diameter peer %s: %s in %s, closing",
                peer.identity,
                ctx.event.value if ctx.event else "?",
                ctx.state.value if ctx.state else "?",
            )
            self._close_all(peer)
        elif action is A.PROCESS_CEA:
            assert ctx.message is not None
            self._process_cea(peer, ctx.message)
        elif action is A.ELECT:
            # §5.6.4: the node with the higher Origin-Host wins the election.
            if self.me.origin_host.encode() > peer.identity.encode():
                self._soon(self._fire, peer, PeerEvent.WIN_ELECTION)
        elif action is A.R_REJECT:
            if ctx.conn is not None and ctx.conn is not peer.r_conn:
                ctx.conn.close()
        elif action is A.I_DISC:
            conn, peer.i_conn = peer.i_conn, None
            if conn is not None:
                conn.close()
        elif action is A.R_DISC:
            conn, peer.r_conn = peer.r_conn, None
            if conn is not None:
                conn.close()
        elif action in (A.R_SND_MESSAGE, A.I_SND_MESSAGE):
            conn = peer.r_conn if action is A.R_SND_MESSAGE else peer.i_conn
            if conn is not None and ctx.raw is not None:
                conn.send(ctx.raw)
        elif action is A.PROCESS:
            assert ctx.message is not None and ctx.conn is not None
            self._process(peer, ctx.conn, ctx.message)
        elif action is A.PROCESS_DWR:
            pass  # receipt already fed the watchdog
        elif action in (A.R_SND_DWA, A.I_SND_DWA):
            assert ctx.message is not None and ctx.conn is not None
            ctx.conn.send(bytes(base.dwa(self.me, ctx.message).as_bytes()))
            self.stats["dwa_sent"] += 1
        elif action is A.PROCESS_DWA:
            self.stats["dwa_received"] += 1
        elif action in (A.R_SND_DPR, A.I_SND_DPR):
            conn = peer.r_conn if action is A.R_SND_DPR else peer.i_conn
            if conn is not None:
                dpr = base.dpr(self.me, base.DISCONNECT_CAUSE_REBOOTING)
                conn.send(self._request_bytes(dpr))
            self._arm(peer, self.config.handshake_timeout)
        elif action in (A.R_SND_DPA, A.I_SND_DPA):
            assert ctx.message is not None and ctx.conn is not None
            self.stats["dpr_received"] += 1
            cause = getattr(ctx.message, "disconnect_cause", None)
            if cause in (
                base.DISCONNECT_CAUSE_BUSY,
                base.DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK_TO_YOU,
            ):
                peer.reconnect_after = self.config.reconnect_max
            ctx.conn.send(bytes(base.dpa(self.me, ctx.message).as_bytes()))
            self._arm(peer, self.config.handshake_timeout)

    def _entered(self, peer: Peer, before: PeerState, after: PeerState) -> None:
        log.info("Diameter peer %s: %s -> %s", peer.identity, before.value, after.value)
        if after.is_open:
            self._disarm(peer)
            peer.opened.set()
            peer.backoff = 0.0
            peer.last_rx = asyncio.get_running_loop().time()
            peer.dwr_outstanding = False
            self._arm_watchdog(peer)
        elif before.is_open:
            peer.opened.clear()
            if after is not PeerState.CLOSING:
                self._fail_pending(peer, PeerDisconnected(f"connection to {peer.identity} lost"))
        if after is PeerState.CLOSED:
            self._disarm(peer)
            if peer._watchdog is not None:
                peer._watchdog.cancel()
                peer._watchdog = None
            self._close_all(peer)
            self._fail_pending(peer, PeerDisconnected(f"connection to {peer.identity} closed"))
            if peer.address is None:
                if self.peers.get(peer.identity) is peer:
                    del self.peers[peer.identity]
            elif not (peer.stopping or self._stopping):
                self._schedule_reconnect(peer)

    # -- helpers of the actions ---------------------------------------------------

    def _request_bytes(self, message: Message) -> bytes:
        message.header.hop_by_hop_identifier = self.ids.hop_by_hop()
        message.header.end_to_end_identifier = self.ids.end_to_end()
        return bytes(message.as_bytes())

    def _learn(self, peer: Peer, cer_or_cea: Message) -> None:
        realm = cer_or_cea.origin_realm
        peer.realm = realm.decode(errors="replace") if realm else None
        peer.applications = base.advertised_applications(cer_or_cea)

    def _process_cea(self, peer: Peer, cea: Message) -> None:
        self._learn(peer, cea)
        host = cea.origin_host.decode(errors="replace") if cea.origin_host else ""
        if host != peer.identity:
            log.warning("peer configured as %s answers as %s", peer.identity, host)

    def _refused(self, peer: Peer, cea: Message) -> None:
        log.warning(
            "Diameter peer %s refused the capabilities exchange: Result-Code %s (%s)",
            peer.identity,
            getattr(cea, "result_code", None),
            getattr(cea, "error_message", None) or "no reason given",
        )
        peer.reconnect_after = self.config.reconnect_max

    def _connect(self, peer: Peer) -> None:
        assert peer.address is not None
        host, port = peer.address
        conn = _Connection(self, peer, initiator=True)

        async def connect() -> None:
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(lambda: conn, host, port)
            except OSError as err:
                log.info("Diameter peer %s at %s:%d: %s", peer.identity, host, port, err)
                if peer.state in (PeerState.WAIT_CONN_ACK, PeerState.WAIT_CONN_ACK_ELECT):
                    self._fire(peer, PeerEvent.I_RCV_CONN_NACK)
                return
            if peer.state in (PeerState.WAIT_CONN_ACK, PeerState.WAIT_CONN_ACK_ELECT):
                peer.i_conn = conn
                self._fire(peer, PeerEvent.I_RCV_CONN_ACK, _Context(conn=conn))
            else:
                conn.close()

        self.spawn(connect())

    def _process(self, peer: Peer, conn: _Connection, message: Message) -> None:
        header = message.header
        if not header.is_request:
            entry = peer.pending.get(header.hop_by_hop_identifier)
            if entry is not None and not entry[0].done():
                entry[0].set_result(message)
            else:
                log.info(
                    "answer from %s matches no request (hop-by-hop %#x)",
                    peer.identity,
                    header.hop_by_hop_identifier,
                )
            return
        self.stats["requests_in"] += 1
        app = header.application_id
        handler = self._handlers.get((app, header.command_code))
        if handler is None:
            raw_header = Header(
                0,
                header.command_flags,
                header.command_code,
                app,
                header.hop_by_hop_identifier,
                header.end_to_end_identifier,
            )
            if app != _BASE_APPLICATION and app not in self._apps:
                code, why = DIAMETER_APPLICATION_UNSUPPORTED, f"application {app} not supported"
            else:
                code, why = DIAMETER_COMMAND_UNSUPPORTED, f"command {header.command_code}"
            self._send_error(conn, raw_header, code, why)
            return
        # Run the handler at once; only one that has to wait (a store over
        # the network) becomes a task.  A handler on the SQLite store never
        # waits, and skipping the task saves a loop turn and its overhead.
        serving = self._serve(peer, conn, message, handler)
        try:
            waiting = serving.send(None)
        except StopIteration:
            return
        self.spawn(_resume(serving, waiting))

    async def _serve(
        self, peer: Peer, conn: _Connection, request: Message, handler: Handler
    ) -> None:
        try:
            answer = await handler(request, peer)
        except DiameterError as err:
            answer = base.make_answer(
                self.me,
                request,
                err.result_code,
                failed_avps=err.failed_avps,
                error_message=str(err),
            )
        except Exception:
            log.exception("handler of command %d failed", request.header.command_code)
            answer = base.make_answer(self.me, request, DIAMETER_UNABLE_TO_COMPLY)
        answer.header.hop_by_hop_identifier = request.header.hop_by_hop_identifier
        answer.header.end_to_end_identifier = request.header.end_to_end_identifier
        conn.send(bytes(answer.as_bytes()))

    def _fail_pending(self, peer: Peer, err: Exception) -> None:
        pending, peer.pending = peer.pending, {}
        for future, _deadline in pending.values():
            if not future.done():
                future.set_exception(err)

    def _close_all(self, peer: Peer) -> None:
        for conn in (peer.i_conn, peer.r_conn):
            if conn is not None:
                conn.close()
        peer.i_conn = peer.r_conn = None

    # -- timers -------------------------------------------------------------------

    def _arm(self, peer: Peer, delay: float) -> None:
        self._disarm(peer)
        loop = asyncio.get_running_loop()
        peer._timer = loop.call_later(delay, self._timeout, peer)

    def _disarm(self, peer: Peer) -> None:
        if peer._timer is not None:
            peer._timer.cancel()
            peer._timer = None

    def _timeout(self, peer: Peer) -> None:
        peer._timer = None
        self._fire(peer, PeerEvent.TIMEOUT)

    def _arm_watchdog(self, peer: Peer) -> None:
        tw = self.config.tw
        jitter = min(2.0, tw / 10)
        delay = tw + random.uniform(-jitter, jitter)
        loop = asyncio.get_running_loop()
        peer._watchdog = loop.call_later(delay, self._watchdog, peer)

    def _watchdog(self, peer: Peer) -> None:
        peer._watchdog = None
        conn = peer.connection
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - peer.last_rx
        if idle >= self.config.tw * 0.9:
            if peer.dwr_outstanding:
                log.warning("Diameter peer %s: no answer to DWR, closing", peer.identity)
                conn.close(abort=True)
                return
            peer.dwr_outstanding = True
            self.stats["dwr_sent"] += 1
            conn.send(self._request_bytes(base.dwr(self.me)))
        self._arm_watchdog(peer)

    def _schedule_reconnect(self, peer: Peer) -> None:
        if peer.reconnect_after is not None:
            delay, peer.reconnect_after = peer.reconnect_after, None
        else:
            cfg = self.config
            peer.backoff = min(cfg.reconnect_max, max(cfg.reconnect_min, peer.backoff * 2))
            delay = peer.backoff * random.uniform(0.8, 1.2)
        log.info("Diameter peer %s: reconnecting in %.2f s", peer.identity, delay)
        loop = asyncio.get_running_loop()
        peer._reconnect = loop.call_later(delay, self._reconnect_now, peer)

    def _reconnect_now(self, peer: Peer) -> None:
        peer._reconnect = None
        if not (peer.stopping or self._stopping) and peer.state is PeerState.CLOSED:
            self._fire(peer, PeerEvent.START)

    def _cancel_reconnect(self, peer: Peer) -> None:
        if peer._reconnect is not None:
            peer._reconnect.cancel()
            peer._reconnect = None

    # -- tasks --------------------------------------------------------------------

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` in the background; the node cancels it when it stops."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        asyncio.get_running_loop().call_soon(fn, *args)
