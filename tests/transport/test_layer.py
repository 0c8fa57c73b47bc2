"""Life cycle of the transport layer: listeners from specs, closing, the loop policy."""

from __future__ import annotations

import asyncio

import pytest

from webims.transport import (
    ListenSpec,
    TransportConfig,
    TransportError,
    TransportLayer,
    install_event_loop_policy,
)

from .certs import Pki
from .conftest import Inbox
from .sipmsg import request


async def test_start_opens_every_listener(inbox: Inbox, config: TransportConfig, pki: Pki) -> None:
    layer = TransportLayer(inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed)
    specs = [
        ListenSpec("udp", "127.0.0.1", 0),
        ListenSpec("tcp", "127.0.0.1", 0),
        ListenSpec("tls", "127.0.0.1", 0, pki.server_context()),
        ListenSpec("ws", "127.0.0.1", 0),
        ListenSpec("wss", "127.0.0.1", 0, pki.server_context()),
    ]
    opened = await layer.start(specs)
    assert [listener.transport for listener in opened] == ["udp", "tcp", "tls", "ws", "wss"]
    assert all(listener.local[0] == "127.0.0.1" and listener.local[1] for listener in opened)
    assert sorted(layer.listeners, key=str) == sorted(opened, key=str)
    tcp_port = opened[1].local[1]
    _, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
    writer.write(request(transport="TCP"))
    [(_, flow)] = await inbox.messages_n(1)
    await layer.close()
    assert await inbox.closed_n(1) == [flow]
    assert len(layer.table) == 0
    with pytest.raises(ConnectionError):
        await asyncio.open_connection("127.0.0.1", tcp_port)
    with pytest.raises(TransportError):
        layer.send_to(b"x", "tcp", "127.0.0.1", tcp_port)
    with pytest.raises(TransportError):
        await layer.start()
    writer.close()


async def test_listen_checks_its_arguments(layer: TransportLayer) -> None:
    with pytest.raises(ValueError):
        await layer.listen("tls", "127.0.0.1", 0)
    with pytest.raises(ValueError):
        await layer.listen("sctp", "127.0.0.1", 0)
    with pytest.raises(TransportError):
        layer.send_to(b"x", "udp", "pcscf.home1.net", 5060)
    with pytest.raises(TransportError):
        layer.send_to(b"x", "udp", "127.0.0.1", 5060)  # no UDP listener yet
    with pytest.raises(TransportError):
        layer.send_to(b"x", "tls", "127.0.0.1", 5061)  # no TLS client context


def test_install_event_loop_policy() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        installed = install_event_loop_policy()
        policy = asyncio.get_event_loop_policy()
        if installed:
            assert type(policy).__module__.startswith("uvloop")
        else:
            assert policy is before
    finally:
        asyncio.set_event_loop_policy(before)
