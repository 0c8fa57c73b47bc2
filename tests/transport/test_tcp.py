"""SIP over TCP through the transport layer, on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from webims.sip.checks import make_response
from webims.sip.message import Limits, Request, Response, parse_message
from webims.transport import FlowClosed, TransportConfig, TransportLayer

from .conftest import Inbox
from .sipmsg import request

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(port: int) -> Conn:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_message(reader: asyncio.StreamReader, timeout: float = 5.0) -> Request | Response:
    """One Content-Length framed message from the stream."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        while head.startswith(b"\r\n"):
            head = head[2:]
        msg = parse_message(head)
        body = await reader.readexactly(msg.content_length or 0)
    return parse_message(head + body)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server still sends, up to its close."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def test_two_messages_in_one_segment(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    _reader, writer = await connect(listener.local[1])
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\n"
    first = request("INVITE", transport="TCP", body=body, extra="Content-Type: application/sdp\r\n")
    second = request("OPTIONS", transport="TCP")
    writer.write(first + second)
    [(m1, f1), (m2, f2)] = await inbox.messages_n(2)
    await close(writer)
    assert isinstance(m1, Request) and m1.method == "INVITE" and m1.body == body
    assert isinstance(m2, Request) and m2.method == "OPTIONS"
    assert f1 == f2 and f1.transport == "tcp" and f1.reliable and f1.conn_id
    assert f1.local == listener.local
    assert m1.top_via.received == "127.0.0.1" and m1.top_via.rport == f1.remote[1]


async def test_message_split_across_segments(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    _reader, writer = await connect(listener.local[1])
    raw = request("MESSAGE", transport="TCP", body=b"hello, world")
    chunks = [raw[:1], raw[1:17], raw[17:90], raw[90:-3], raw[-3:-1], raw[-1:]]
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.01)
    [(msg, _)] = await inbox.messages_n(1)
    await close(writer)
    assert isinstance(msg, Request) and msg.body == b"hello, world"


async def test_reply_on_the_same_connection(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    reader, writer = await connect(listener.local[1])
    writer.write(request("OPTIONS", transport="TCP"))
    [(msg, flow)] = await inbox.messages_n(1)
    assert isinstance(msg, Request)
    assert layer.send_response(make_response(msg, 200), flow) == flow
    resp = await read_message(reader)
    assert isinstance(resp, Response) and resp.status == 200
    # And a request from the server on the same flow.
    layer.send(request("OPTIONS", transport="TCP"), flow)
    req = await read_message(reader)
    assert isinstance(req, Request)
    await close(writer)
    assert await inbox.closed_n(1) == [flow]
    with pytest.raises(FlowClosed):
        layer.send(b"x", flow)


async def test_over_the_size_limit_gets_513_and_close(
    inbox: Inbox, config: TransportConfig
) -> None:
    limits = Limits(max_message_size=2000, max_header_size=1000, max_body_size=1500)
    config = dataclasses.replace(config, limits=limits)
    async with TransportLayer(inbox.on_message, config=config) as layer:
        listener = await layer.listen_tcp("127.0.0.1", 0)
        # Whole message over max_message_size.
        reader, writer = await connect(listener.local[1])
        writer.write(request("MESSAGE", transport="TCP", body=b"x" * 1400 + b"y" * 600))
        rest = await closed_by_peer(reader)
        resp = parse_message(rest)
        assert isinstance(resp, Response) and resp.status == 413  # body over 1500 first
        await close(writer)
        # Header section over max_header_size, trickled in.
        reader, writer = await connect(listener.local[1])
        raw = request("OPTIONS", transport="TCP", extra="X-Pad: " + "p" * 1200 + "\r\n")
        writer.write(raw[:600])
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(raw[600:])
        resp = parse_message(await closed_by_peer(reader))
        assert isinstance(resp, Response) and resp.status == 513
        assert resp.headers.get("Call-ID") is not None
        await close(writer)
        # Start line + headers + body over the message limit with a body that fits.
        reader, writer = await connect(listener.local[1])
        raw = request(
            "MESSAGE", transport="TCP", body=b"z" * 1200, extra="X-Pad: " + "p" * 700 + "\r\n"
        )
        writer.write(raw)
        resp = parse_message(await closed_by_peer(reader))
        assert isinstance(resp, Response) and resp.status == 513
        await close(writer)
    assert inbox.messages == []


async def test_missing_content_length_gets_400_and_close(
    layer: TransportLayer, inbox: Inbox
) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    reader, writer = await connect(listener.local[1])
    writer.write(request("OPTIONS", transport="TCP", content_length=False))
    resp = parse_message(await closed_by_peer(reader))
    assert isinstance(resp, Response) and resp.status == 400
    await close(writer)
    assert inbox.messages == []


async def test_garbage_closes_only_that_connection(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    _good_reader, good_writer = await connect(listener.local[1])
    good_writer.write(request("OPTIONS", transport="TCP"))
    await inbox.messages_n(1)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 200, b"\xff" * 10):
        reader, writer = await connect(listener.local[1])
        writer.write(junk)
        if len(junk) > 100:
            assert await closed_by_peer(reader) == b""
        else:
            writer.write_eof()
            assert await closed_by_peer(reader) == b""
        await close(writer)
    # A message whose framing is fine but which does not parse: dropped, no close.
    good_writer.write(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\nbad line\r\n\r\n")
    good_writer.write(request("OPTIONS", transport="TCP"))
    await inbox.messages_n(2)
    await close(good_writer)
    assert len(inbox.messages) == 2


async def test_crlf_ping_gets_pong(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    reader, writer = await connect(listener.local[1])
    writer.write(b"\r\n\r\n")
    async with asyncio.timeout(5):
        assert await reader.readexactly(2) == b"\r\n"
    # A ping between two messages, the second half in another segment.
    writer.write(request(transport="TCP") + b"\r\n")
    await writer.drain()
    await asyncio.sleep(0.02)
    writer.write(b"\r\n" + request(transport="TCP"))
    async with asyncio.timeout(5):
        assert await reader.readexactly(2) == b"\r\n"
    await inbox.messages_n(2)
    await close(writer)


async def test_idle_connection_is_closed(inbox: Inbox, config: TransportConfig) -> None:
    config = dataclasses.replace(config, idle_timeout=0.3)
    async with TransportLayer(
        inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed
    ) as layer:
        listener = await layer.listen_tcp("127.0.0.1", 0)
        reader, writer = await connect(listener.local[1])
        writer.write(request(transport="TCP"))
        [(_, flow)] = await inbox.messages_n(1)
        assert await closed_by_peer(reader, timeout=3) == b""
        assert await inbox.closed_n(1) == [flow]
        assert flow not in layer.table
        await close(writer)


async def test_send_to_opens_and_reuses_a_connection(
    layer: TransportLayer, inbox: Inbox, config: TransportConfig
) -> None:
    peer_inbox = Inbox()
    async with TransportLayer(peer_inbox.on_message, config=config) as peer:
        peer_listener = await peer.listen_tcp("127.0.0.1", 0)
        own = await layer.listen_tcp("127.0.0.1", 0)
        port = peer_listener.local[1]
        f1 = layer.send_to(request(transport="TCP"), "tcp", "127.0.0.1", port)
        f2 = layer.send_to(request(transport="TCP"), "tcp", "127.0.0.1", port)
        assert f1 == f2 and f1.remote == ("127.0.0.1", port)
        assert f1.local[0] == own.local[0]
        [(m1, pf1), (_m2, pf2)] = await peer_inbox.messages_n(2)
        assert pf1 == pf2 and pf1.remote == f1.local
        # The peer answers on its flow; we receive on ours.
        assert isinstance(m1, Request)
        peer.send_response(make_response(m1, 200), pf1)
        [(resp, rf)] = await inbox.messages_n(1)
        assert isinstance(resp, Response) and rf == f1


async def test_send_to_unreachable_reports_flow_closed(layer: TransportLayer, inbox: Inbox) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    flow = layer.send_to(request(transport="TCP"), "tcp", "127.0.0.1", port)
    assert await inbox.closed_n(1) == [flow]
    with pytest.raises(FlowClosed):
        layer.send(b"x", flow)


async def test_response_reopens_a_gone_connection(
    layer: TransportLayer, inbox: Inbox, config: TransportConfig
) -> None:
    """§18.2.2: the connection is gone, so open one to received + sent-by port."""
    listener = await layer.listen_tcp("127.0.0.1", 0)
    client_inbox = Inbox()
    async with TransportLayer(client_inbox.on_message, config=config) as client:
        client_listener = await client.listen_tcp("127.0.0.1", 0)
        _reader, writer = await connect(listener.local[1])
        raw = request(transport="TCP", sent_by=f"ue.example.com:{client_listener.local[1]}")
        writer.write(raw)
        [(msg, flow)] = await inbox.messages_n(1)
        await close(writer)
        await inbox.closed_n(1)
        assert isinstance(msg, Request)
        new_flow = layer.send_response(make_response(msg, 200), flow)
        assert new_flow != flow and new_flow.remote == client_listener.local
        [(resp, _)] = await client_inbox.messages_n(1)
        assert isinstance(resp, Response) and resp.status == 200


async def test_flow_tokens_follow_the_connection(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    _reader, writer = await connect(listener.local[1])
    writer.write(request(transport="TCP"))
    [(_, flow)] = await inbox.messages_n(1)
    token = layer.make_token(flow)
    assert token.isalnum() and token == token.lower()
    assert layer.resolve_token(token) == flow
    forged = ("a" if token[5] != "a" else "b").join((token[:5], token[6:]))
    assert layer.resolve_token(forged) is None
    await close(writer)
    await inbox.closed_n(1)
    assert layer.resolve_token(token) is None


async def test_close_flow(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_tcp("127.0.0.1", 0)
    reader, writer = await connect(listener.local[1])
    writer.write(request(transport="TCP"))
    [(_, flow)] = await inbox.messages_n(1)
    layer.close_flow(flow)
    assert await closed_by_peer(reader) == b""
    assert await inbox.closed_n(1) == [flow]
    await close(writer)


async def test_outgoing_connections_can_leave_from_the_listeners_port(
    inbox: Inbox, config: TransportConfig
) -> None:
    """With ``outgoing_from_listener`` a peer sees our listening address and
    port on the connections we open (what the CSCFs' trust by address and
    port relies on); without it, an ephemeral port."""
    peer_inbox = Inbox()
    bound = dataclasses.replace(config, outgoing_from_listener=True)
    async with (
        TransportLayer(peer_inbox.on_message, config=config) as peer,
        TransportLayer(inbox.on_message, config=bound) as ours,
        TransportLayer(inbox.on_message, config=config) as plain,
    ):
        target = (await peer.listen_tcp("127.0.0.1", 0)).local[1]
        own = await ours.listen_tcp("127.0.0.1", 0)
        other = await plain.listen_tcp("127.0.0.1", 0)
        ours.send_to(request(transport="TCP"), "tcp", "127.0.0.1", target)
        plain.send_to(request(transport="TCP"), "tcp", "127.0.0.1", target)
        arrived = await peer_inbox.messages_n(2)
        remotes = {flow.remote for _, flow in arrived}
        assert own.local in remotes
        assert other.local not in remotes and len(remotes) == 2
        # The listener still accepts connections while its port is also used to connect out.
        _reader, writer = await connect(own.local[1])
        writer.write(request("OPTIONS", transport="TCP"))
        [(msg, _flow)] = await inbox.messages_n(1)
        assert isinstance(msg, Request) and msg.method == "OPTIONS"
        await close(writer)
