"""Flows: which connection (or UDP 5-tuple) a message came on, and flow tokens.

A :class:`Flow` names the path a message took, so that an element can "send
to the flow this came from" (RFC 3261 §18.2.2 for responses, RFC 5626 §5.3
for requests to an outbound-registered UA).  For a connection it is the
connection itself, distinguished by a connection id even when a peer comes
back from the same address and port; for UDP it is the pair of addresses.

:class:`FlowTable` maps flows to the object that can send on them, and mints
RFC 5626 §5.2 flow tokens: short strings, safe in the user part of a SIP URI
(a Path or Record-Route of an edge proxy), that only this table can have made
(HMAC-SHA256 under a key given at construction) and that stop resolving once
the connection is gone.  Nothing here touches a socket or the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import struct
from collections.abc import Iterator
from typing import Final, Generic, NamedTuple, TypeVar

__all__ = ["TRANSPORTS", "Address", "Flow", "FlowTable", "normalize_host"]

#: (host, port); host is an IP address literal without brackets.
Address = tuple[str, int]

#: Transport names, as used in URIs (``transport=ws``); Via uses upper case.
TRANSPORTS: Final = frozenset({"udp", "tcp", "tls", "ws", "wss"})
_RELIABLE: Final = frozenset({"tcp", "tls", "ws", "wss"})
_SECURE: Final = frozenset({"tls", "wss"})

L = TypeVar("L")

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def normalize_host(host: str) -> str:
    """The canonical text of an IP address literal (brackets removed).

    Raises :class:`ValueError` if ``host`` is not an IP address; IPv4-mapped
    IPv6 addresses become plain IPv4 (what a dual-stack socket reports).
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif _DOTTED_QUAD.fullmatch(host):
        return host  # the common case, already canonical
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


class Flow(NamedTuple):
    """The identity of a connection, or of a UDP (local, remote) address pair.

    A named tuple: made and hashed for every datagram, so it must be cheap.
    """

    #: 'udp', 'tcp', 'tls', 'ws' or 'wss'.
    transport: str
    #: Our address (the listening socket for UDP and accepted connections).
    local: Address
    #: The peer's address as seen on the wire (after any NAT).
    remote: Address
    #: Unique per connection within a :class:`FlowTable`; 0 for UDP.
    conn_id: int = 0

    @property
    def reliable(self) -> bool:
        """Stream transports: no retransmissions, Content-Length framing."""
        return self.transport in _RELIABLE

    @property
    def secure(self) -> bool:
        """TLS underneath (``sips:`` may be routed over it)."""
        return self.transport in _SECURE

    @property
    def via_transport(self) -> str:
        """The transport token of a Via header sent on this flow (``WSS``)."""
        return self.transport.upper()

    def __str__(self) -> str:
        conn = f"#{self.conn_id}" if self.conn_id else ""
        return f"{self.transport}:{_hostport(self.local)}->{_hostport(self.remote)}{conn}"


def _hostport(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- flow tokens -----------------------------------------------------------
#
# token = base32( kind | body | mac ), lower case, no padding:
#   kind 1, connection: epoch (4 bytes) | conn_id (8 bytes)
#   kind 4 / 6, UDP over IPv4 / IPv6: local ip | local port | remote ip | remote port
#   mac = HMAC-SHA256(key, kind | body)[:12]
# The epoch is random per table, so a token minted before a restart cannot
# name a connection that reuses its id afterwards.

_KIND_CONN: Final = 1
_KIND_UDP4: Final = 4
_KIND_UDP6: Final = 6
_MAC_SIZE: Final = 12
_MAX_TOKEN: Final = 128


class FlowTable(Generic[L]):
    """Live flows and the link that sends on each, plus flow tokens.

    ``L`` is whatever the transport layer sends with: a connection object
    for connection flows, the listening socket's endpoint for UDP (looked up
    by the flow's local address, since UDP flows are not stored one by one).
    """

    __slots__ = ("_by_id", "_datagram", "_epoch", "_key", "_links", "_next_id")

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) < 16:
            raise ValueError("the flow token key must be at least 16 bytes")
        self._key = key if key is not None else secrets.token_bytes(32)
        self._epoch = secrets.token_bytes(4)
        self._next_id = 1
        self._links: dict[Flow, L] = {}
        self._by_id: dict[int, Flow] = {}
        self._datagram: dict[tuple[str, Address], L] = {}

    # -- connections -------------------------------------------------------
    def next_conn_id(self) -> int:
        """A connection id never used before by this table."""
        conn_id = self._next_id
        self._next_id += 1
        return conn_id

    def add(self, flow: Flow, link: L) -> None:
        """Register a live connection flow."""
        if not flow.conn_id:
            raise ValueError("connection flows need a conn_id")
        self._links[flow] = link
        self._by_id[flow.conn_id] = flow

    def remove(self, flow: Flow) -> L | None:
        """Forget a connection flow; returns its link if it was known."""
        link = self._links.pop(flow, None)
        if link is not None:
            self._by_id.pop(flow.conn_id, None)
        return link

    # -- datagram sockets --------------------------------------------------
    def add_datagram(self, transport: str, local: Address, link: L) -> None:
        """Register a datagram socket: every flow from ``local`` sends with it."""
        self._datagram[(transport, local)] = link

    def remove_datagram(self, transport: str, local: Address) -> L | None:
        return self._datagram.pop((transport, local), None)

    def datagram_links(self) -> Iterator[tuple[str, Address, L]]:
        for (transport, local), link in self._datagram.items():
            yield transport, local, link

    # -- lookup ------------------------------------------------------------
    def get(self, flow: Flow) -> L | None:
        """The link that sends on ``flow``, or None if the flow is gone."""
        if flow.conn_id:
            return self._links.get(flow)
        return self._datagram.get((flow.transport, flow.local))

    def by_conn_id(self, conn_id: int) -> Flow | None:
        return self._by_id.get(conn_id)

    def __contains__(self, flow: object) -> bool:
        return isinstance(flow, Flow) and self.get(flow) is not None

    def __len__(self) -> int:
        """Number of live connection flows."""
        return len(self._links)

    def flows(self) -> list[Flow]:
        """The live connection flows (a copy, safe to close them while iterating)."""
        return list(self._links)

    def items(self) -> list[tuple[Flow, L]]:
        return list(self._links.items())

    # -- flow tokens (RFC 5626 §5.2) ---------------------------------------
    def make_token(self, flow: Flow) -> str:
        """A token naming ``flow``, for the user part of a Path/Record-Route URI."""
        if flow.conn_id:
            body = bytes([_KIND_CONN]) + self._epoch + struct.pack("!Q", flow.conn_id)
        else:
            local = ipaddress.ip_address(flow.local[0])
            remote = ipaddress.ip_address(flow.remote[0])
            if local.version != remote.version:
                raise ValueError(f"mixed address families in {flow}")
            kind = _KIND_UDP4 if local.version == 4 else _KIND_UDP6
            body = (
                bytes([kind])
                + local.packed
                + struct.pack("!H", flow.local[1])
                + remote.packed
                + struct.pack("!H", flow.remote[1])
            )
        raw = body + self._mac(body)
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def resolve_token(self, token: str) -> Flow | None:
        """The live flow a token names; None if forged, malformed or gone."""
        if not token or len(token) > _MAX_TOKEN or not token.isascii():
            return None
        padded = token.upper() + "=" * (-len(token) % 8)
        try:
            raw = base64.b32decode(padded)
        except ValueError:
            return None
        if len(raw) <= _MAC_SIZE:
            return None
        body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        kind = body[0]
        if kind == _KIND_CONN and len(body) == 13:
            if body[1:5] != self._epoch:
                return None
            (conn_id,) = struct.unpack("!Q", body[5:])
            return self._by_id.get(conn_id)
        size = {_KIND_UDP4: 4, _KIND_UDP6: 16}.get(kind)
        if size is None or len(body) != 1 + 2 * (size + 2):
            return None
        local = _unpack_addr(body[1 : 3 + size])
        remote = _unpack_addr(body[3 + size :])
        flow = Flow("udp", local, remote)
        return flow if self.get(flow) is not None else None

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_SIZE]


def _unpack_addr(data: bytes) -> Address:
    ip = ipaddress.ip_address(data[:-2])
    (port,) = struct.unpack("!H", data[-2:])
    return ip.compressed, port
