"""The asyncio side of webims: UDP, TCP, TLS, WS and WSS for SIP elements.

Everything arrives through :class:`TransportLayer` as parsed messages with
the :class:`Flow` they came on; everything leaves through it.  The SIP core
(:mod:`webims.sip`) never sees a socket.
"""

from .base import FlowClosed, TransportError
from .flow import TRANSPORTS, Address, Flow, FlowTable, normalize_host
from .layer import (
    Listener,
    ListenSpec,
    OnFlowClosed,
    OnMessage,
    TransportConfig,
    TransportLayer,
)
from .loop import install_event_loop_policy
from .receive import answer_for, stamp_received
from .tls import client_context, require_tls12, server_context
from .ws import SIP_SUBPROTOCOL

__all__ = [
    "SIP_SUBPROTOCOL",
    "TRANSPORTS",
    "Address",
    "Flow",
    "FlowClosed",
    "FlowTable",
    "ListenSpec",
    "Listener",
    "OnFlowClosed",
    "OnMessage",
    "TransportConfig",
    "TransportError",
    "TransportLayer",
    "answer_for",
    "client_context",
    "install_event_loop_policy",
    "normalize_host",
    "require_tls12",
    "server_context",
    "stamp_received",
]
