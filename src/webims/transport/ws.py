"""SIP over WebSocket, RFC 7118, with websockets' sans-I/O server protocol.

:class:`WsConnection` is an :class:`asyncio.Protocol` driving a
:class:`websockets.server.ServerProtocol`, the pattern of uvicorn's
``websockets_sansio_impl``: bytes in, events out, bytes to write back.  That
costs a few KiB per idle connection, about half of websockets' own asyncio
server, which matters for an edge proxy holding one connection per browser.

RFC 7118 rules applied here:

* §4: the handshake must offer the ``sip`` subprotocol and the 101 names it.
  A client that does not offer it is refused with **400 Bad Request**.  RFC
  7118 names no status for this; RFC 6455 §4.2.2 lets the server refuse a
  handshake with any HTTP error, keeps 426 Upgrade Required for a
  Sec-WebSocket-Version it does not speak (§4.4, with the versions it does
  speak in the answer), and uses 400 for a handshake it cannot accept.  A
  missing mandatory subprotocol is a request the server cannot accept, not a
  version to upgrade to, so 400; it is also what websockets answers when a
  server's subprotocols and the client's do not meet.
* §5: each SIP message is one WebSocket message, text or binary, possibly
  fragmented; we send text frames when the message is UTF-8 (always, in
  practice) and binary frames otherwise.
* §5.2: the Via of a WS client carries a ``.invalid`` host that is never
  resolved: responses go back on this connection or nowhere.

Ping/pong and the closing handshake are the library's.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol

from .base import FlowClosed, Sink
from .flow import Flow, normalize_host

__all__ = ["SIP_SUBPROTOCOL", "WsConnection", "WsOptions"]

log = logging.getLogger(__name__)
_ws_logger = logging.getLogger("websockets.server")

#: The subprotocol RFC 7118 §7 registers.
SIP_SUBPROTOCOL = Subprotocol("sip")
_SUBPROTOCOLS = [SIP_SUBPROTOCOL]


@dataclass(frozen=True, slots=True)
class WsOptions:
    """Settings shared by every connection of a WS/WSS listener."""

    #: 'ws' or 'wss'.
    name: str
    #: Largest WebSocket message (one SIP message), all fragments together.
    max_message_size: int
    #: Seconds the HTTP upgrade may take, and the closing handshake.
    handshake_timeout: float
    #: Seconds of silence before the connection is closed; None: never.
    idle_timeout: float | None
    #: Close the connection when this many bytes wait to be written.
    max_buffer: int
    #: Accepted Origin headers (None: any, as for non-browser clients).
    origins: Sequence[str | None] | None = None


class WsConnection(asyncio.Protocol):
    """One WebSocket connection carrying SIP."""

    __slots__ = (
        "_conn",
        "_fragments",
        "_opts",
        "_sink",
        "_text",
        "_transport",
        "flow",
        "last_activity",
    )

    def __init__(self, sink: Sink, opts: WsOptions) -> None:
        self._sink = sink
        self._opts = opts
        self._conn = ServerProtocol(
            origins=(
                None if opts.origins is None else [Origin(o) if o else None for o in opts.origins]
            ),
            subprotocols=_SUBPROTOCOLS,
            max_size=opts.max_message_size,
            logger=_ws_logger,
        )
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] | None = None
        #: Whether the message being reassembled is a text one (RFC 6455 §5.6).
        self._text = False
        self.flow: Flow | None = None
        self.last_activity = sink.now()

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        local = transport.get_extra_info("sockname")
        remote = transport.get_extra_info("peername")
        if local is None or remote is None:
            transport.abort()
            return
        self.flow = Flow(
            self._opts.name,
            self._sink.local_address(local),
            (sys.intern(normalize_host(remote[0])), remote[1]),
            self._sink.new_conn_id(),
        )
        self.last_activity = self._sink.now()
        self._sink.link_made(self, self.flow)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        try:
            conn.receive_data(data)
        except EOFError:  # bytes after the end of the stream: ignore
            return
        self.last_activity = self._sink.now()
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._handshake(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self._conn.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fragments = None
        if self.flow is not None:
            self._sink.link_lost(self, self.flow)

    # -- WebSocket events --------------------------------------------------
    def _handshake(self, request: Request) -> None:
        conn = self._conn
        response = conn.accept(request)
        conn.send_response(response)
        # The server protocol's parser generator keeps the handshake request
        # alive for the whole connection; its headers are about 2 KiB that
        # nothing reads after accept(), so let them go.
        request.headers.clear()
        if response.status_code != 101:
            log.debug(
                "%s: handshake refused (%d): %s",
                self.flow,
                response.status_code,
                conn.handshake_exc,
            )

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(bytes(frame.data), opcode is Opcode.TEXT)
            else:
                self._fragments = [bytes(frame.data)]
                self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = None
                self._message(data, self._text)
        # websockets' parser keeps the last frame it parsed (a local of its
        # generator) until the next one arrives: on an idle connection the
        # payload of its last SIP message, a REGISTER with its Bearer token
        # (1-2 KiB).  The protocol is done with a data frame once it is an
        # event (RFC 6455 §5.6), so let its payload go.
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            frame.data = b""

    def _message(self, data: bytes, text: bool) -> None:
        if text and not (data.isascii() or _is_utf8(data)):
            # RFC 6455 §8.1: a text message that is not UTF-8 fails the
            # connection (1007); a WIC sends other bytes in a binary one.
            self._conn.fail(CloseCode.INVALID_DATA, "text message not UTF-8")
            return
        flow = self.flow
        if flow is not None and self._conn.state is State.OPEN:
            self._sink.message_received(data, flow, self)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._conn.data_to_send():
            if data:
                transport.write(data)
            else:
                # SEND_EOF: the server closes the TCP connection (RFC 6455 §7.1.1).
                transport.close()
                return

    # -- link --------------------------------------------------------------
    def send(self, data: bytes, flow: Flow | None = None) -> None:
        transport = self._transport
        if transport is None or transport.is_closing() or self._conn.state is not State.OPEN:
            raise FlowClosed(f"{self.flow} is closed")
        if transport.get_write_buffer_size() > self._opts.max_buffer:
            log.debug("%s: peer does not read; closing", self.flow)
            transport.abort()
            raise FlowClosed(f"{self.flow}: send buffer full")
        if data.isascii() or _is_utf8(data):
            self._conn.send_text(data)
        else:
            self._conn.send_binary(data)
        self._flush()
        self.last_activity = self._sink.now()

    def idle_limit(self) -> float | None:
        state = self._conn.state
        if state is State.OPEN:
            return self._opts.idle_timeout
        if state is State.CLOSED:
            return 0.0
        return self._opts.handshake_timeout  # CONNECTING or CLOSING

    @property
    def closing(self) -> bool:
        transport = self._transport
        return transport is None or transport.is_closing() or self._conn.state > State.OPEN

    def close(self) -> None:
        """Close with a WebSocket close frame (1001 going away) when open."""
        transport = self._transport
        if transport is None:
            return
        if self._conn.state is State.OPEN:
            self._conn.send_close(1001)
            self._flush()
            self.last_activity = self._sink.now()
            # The peer completes the closing handshake; idle_limit() bounds it.
        else:
            transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
