"""SIP over TCP and TLS (RFC 3261 §18, RFC 5626 §4.4.1 CRLF keep-alives).

One :class:`StreamConnection` per connection, accepted or opened by us.  The
bytes go through a :class:`~webims.sip.framing.StreamFramer`; a double-CRLF
ping is answered with a CRLF pong; a framing error is answered when a
response can be built and then closes the connection, since the start of the
next message is lost.  TLS is asyncio's, underneath the same protocol.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import cast

from ..sip.errors import ParseError
from ..sip.framing import CRLF_PONG, KEEPALIVE_PING, KeepAlive, StreamFramer
from ..sip.message import Limits
from .base import FlowClosed, Sink
from .flow import Flow, normalize_host

__all__ = ["StreamConnection"]

log = logging.getLogger(__name__)


class StreamConnection(asyncio.Protocol):
    """A TCP or TLS connection carrying SIP."""

    __slots__ = (
        "_framer",
        "_idle_timeout",
        "_max_buffer",
        "_pending",
        "_sink",
        "_transport",
        "flow",
        "last_activity",
        "name",
    )

    def __init__(
        self,
        sink: Sink,
        name: str,
        limits: Limits,
        *,
        idle_timeout: float | None,
        max_buffer: int,
        flow: Flow | None = None,
    ) -> None:
        self._sink = sink
        #: 'tcp' or 'tls'.
        self.name = name
        self._framer = StreamFramer(limits)
        self._idle_timeout = idle_timeout
        self._max_buffer = max_buffer
        self._transport: asyncio.Transport | None = None
        #: Known in advance for connections we open, at connection_made otherwise.
        self.flow = flow
        #: Data sent before an outgoing connection is up.
        self._pending: list[bytes] | None = [] if flow is not None else None
        self.last_activity = sink.now()

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self.last_activity = self._sink.now()
        if self.flow is None:
            local = transport.get_extra_info("sockname")
            remote = transport.get_extra_info("peername")
            if local is None or remote is None:  # already gone
                transport.abort()
                return
            self.flow = self._sink_flow(local, remote)
            self._sink.link_made(self, self.flow)
        pending, self._pending = self._pending, None
        if pending:
            transport.write(b"".join(pending))

    def _sink_flow(self, local: tuple[str, int], remote: tuple[str, int]) -> Flow:
        conn_id = self._sink.new_conn_id()
        return Flow(
            self.name,
            self._sink.local_address(local),
            (sys.intern(normalize_host(remote[0])), remote[1]),
            conn_id,
        )

    def data_received(self, data: bytes) -> None:
        framer = self._framer
        if framer.failed:
            return
        self.last_activity = self._sink.now()
        framer.feed(data)
        flow = self.flow
        assert flow is not None
        while True:
            try:
                item = framer.next_message()
            except ParseError as error:
                log.debug("%s: framing error: %s", flow, error)
                self._sink.framing_failed(error, framer.error_head(), flow, self)
                self.close()
                return
            if item is None:
                return
            if isinstance(item, KeepAlive):
                if item is KEEPALIVE_PING and self._transport is not None:
                    self._transport.write(CRLF_PONG)
                continue
            self._sink.message_received(item, flow, self)
            if self._transport is None or self._transport.is_closing():
                return

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("%s: connection lost: %s", self.flow, exc)
        self._transport = None
        self._pending = None
        if self.flow is not None:
            self._sink.link_lost(self, self.flow)

    # -- link --------------------------------------------------------------
    def send(self, data: bytes, flow: Flow | None = None) -> None:
        transport = self._transport
        if transport is None:
            if self._pending is not None:
                self._pending.append(data)
                return
            raise FlowClosed(f"{self.flow} is closed")
        if transport.is_closing():
            raise FlowClosed(f"{self.flow} is closing")
        if transport.get_write_buffer_size() > self._max_buffer:
            log.debug("%s: peer does not read; closing", self.flow)
            transport.abort()
            raise FlowClosed(f"{self.flow}: send buffer full")
        transport.write(data)
        self.last_activity = self._sink.now()

    def idle_limit(self) -> float | None:
        return self._idle_timeout

    @property
    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
