"""What the transport's connection classes and the layer share.

Errors::

    TransportError            sending is impossible (no listener, bad address ...)
     └── FlowClosed           the connection a flow names is gone, and the
                              transport cannot (WS) or may not open another

Connection objects are *links*: they can send on their flow and be closed.
They report to a :class:`Sink` (the :class:`~webims.transport.layer.TransportLayer`)
so that they never import the layer.
"""

from __future__ import annotations

from typing import Protocol

from ..sip.errors import ParseError
from .flow import Address, Flow

__all__ = ["FlowClosed", "Link", "Sink", "StreamLink", "TransportError"]


class TransportError(Exception):
    """A message could not be handed to the network."""


class FlowClosed(TransportError):
    """The flow's connection is closed (RFC 5626: the flow failed)."""


class Link(Protocol):
    """Anything that sends on a flow: a connection, or a UDP socket."""

    def send(self, data: bytes, flow: Flow) -> None: ...

    def close(self) -> None: ...


class StreamLink(Link, Protocol):
    """A connection: one flow, watched for idleness by the layer."""

    flow: Flow | None
    #: loop.time() of the last byte received or sent.
    last_activity: float

    def idle_limit(self) -> float | None:
        """Seconds of silence after which the layer closes the connection."""
        ...

    @property
    def closing(self) -> bool:
        """True once close() was called (or the peer started closing)."""
        ...

    def abort(self) -> None: ...


class Sink(Protocol):
    """Where connections report; implemented by the transport layer."""

    def now(self) -> float: ...

    def new_conn_id(self) -> int: ...

    def local_address(self, sockname: tuple[str, int]) -> Address:
        """Our normalised address, shared by every connection that has it."""
        ...

    def link_made(self, link: StreamLink, flow: Flow) -> None: ...

    def link_lost(self, link: StreamLink, flow: Flow) -> None: ...

    def message_received(self, data: bytes, flow: Flow, link: Link) -> None: ...

    def framing_failed(self, error: ParseError, head: bytes | None, flow: Flow, link: Link) -> None:
        """The stream broke a rule: answer if possible; the link closes itself."""
        ...
