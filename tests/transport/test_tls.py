"""SIP over TLS (1.2 or later) through the transport layer."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl

import pytest

from webims.sip.checks import make_response
from webims.sip.message import Request, Response
from webims.transport import TransportConfig, TransportLayer

from .certs import Pki
from .conftest import Inbox
from .sipmsg import request
from .test_tcp import close, read_message


async def test_tls_round_trip(layer: TransportLayer, inbox: Inbox, pki: Pki) -> None:
    listener = await layer.listen_tls("127.0.0.1", 0, pki.server_context())
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", listener.local[1], ssl=pki.client_context()
    )
    writer.write(request("REGISTER", transport="TLS") + b"\r\n\r\n")
    [(msg, flow)] = await inbox.messages_n(1)
    assert isinstance(msg, Request) and msg.method == "REGISTER"
    assert flow.transport == "tls" and flow.secure and flow.reliable
    assert msg.top_via.received == "127.0.0.1"
    async with asyncio.timeout(5):
        assert await reader.readexactly(2) == b"\r\n"  # pong over TLS
    layer.send_response(make_response(msg, 200), flow)
    resp = await read_message(reader)
    assert isinstance(resp, Response) and resp.status == 200
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    await close(writer)
    assert await inbox.closed_n(1) == [flow]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_below_1_2_is_refused(layer: TransportLayer, pki: Pki) -> None:
    server_ctx = pki.server_context()
    server_ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    listener = await layer.listen_tls("127.0.0.1", 0, server_ctx)
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2  # raised by listen_tls
    client_ctx = pki.client_context()
    client_ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        async with asyncio.timeout(5):
            await asyncio.open_connection("127.0.0.1", listener.local[1], ssl=client_ctx)


async def test_send_to_tls_between_two_layers(
    inbox: Inbox, config: TransportConfig, pki: Pki
) -> None:
    server_inbox = Inbox()
    client_config = dataclasses.replace(config, tls_client_context=pki.client_context())
    async with (
        TransportLayer(server_inbox.on_message, config=config) as server,
        TransportLayer(inbox.on_message, config=client_config) as client,
    ):
        listener = await server.listen_tls("127.0.0.1", 0, pki.server_context())
        flow = client.send_to(request(transport="TLS"), "tls", "127.0.0.1", listener.local[1])
        assert flow.transport == "tls"
        [(msg, server_flow)] = await server_inbox.messages_n(1)
        assert isinstance(msg, Request) and server_flow.remote == flow.local
        server.send(make_response(msg, 200).serialize(), server_flow)
        [(resp, resp_flow)] = await inbox.messages_n(1)
        assert isinstance(resp, Response) and resp_flow == flow


async def test_tls_certificate_not_trusted(inbox: Inbox, config: TransportConfig, pki: Pki) -> None:
    untrusting = ssl.create_default_context()  # system CAs only
    client_config = dataclasses.replace(config, tls_client_context=untrusting)
    async with (
        TransportLayer(lambda m, f: None, config=config) as server,
        TransportLayer(
            inbox.on_message, config=client_config, on_flow_closed=inbox.on_flow_closed
        ) as client,
    ):
        listener = await server.listen_tls("127.0.0.1", 0, pki.server_context())
        flow = client.send_to(request(transport="TLS"), "tls", "127.0.0.1", listener.local[1])
        assert await inbox.closed_n(1) == [flow]
