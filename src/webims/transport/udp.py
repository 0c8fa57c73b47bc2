"""SIP over UDP: one datagram, one message (RFC 3261 §18.1.1, §18.2.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from .base import Sink, TransportError
from .flow import Address, Flow, normalize_host

__all__ = ["UdpEndpoint"]

log = logging.getLogger(__name__)


class UdpEndpoint(asyncio.DatagramProtocol):
    """A listening UDP socket; every flow from its local address sends with it."""

    __slots__ = ("_sink", "_transport", "local")

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.DatagramTransport, transport)
        self._transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self.local = (normalize_host(host), port)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # Bare CRLFs are keep-alives some UAs send over UDP; STUN (RFC 5626
        # §4.4.2, first byte 0 or 1) and other binary junk are not SIP.
        first = data[0] if data else 0
        if first in (0x0D, 0x0A):
            if not data.strip(b"\r\n"):
                return
        elif first < 0x20 or first > 0x7E:
            log.debug("udp %s: dropped %d non-SIP bytes from %s", self.local, len(data), addr)
            return
        remote = (normalize_host(str(addr[0])), int(addr[1]))
        self._sink.message_received(data, Flow("udp", self.local, remote), self)

    def set_buffer_sizes(self, size: int) -> None:
        """Ask for ``size`` bytes of socket buffer each way (best effort)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is None:
            return
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError as err:
                log.debug("udp %s: cannot set buffer size: %s", self.local, err)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable ...) surface here; the transaction
        # layer times out on its own.
        log.debug("udp %s: %s", self.local, exc)

    def send(self, data: bytes, flow: Flow) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError(f"UDP socket {self.local} is closed")
        self._transport.sendto(data, flow.remote)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
