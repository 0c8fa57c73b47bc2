"""SIP over WebSocket (RFC 7118) through the transport layer.

The peer is the ``websockets`` asyncio client, as a browser WIC would be.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from webims.sip.checks import make_response
from webims.sip.message import Limits, Request, Response, parse_message
from webims.transport import FlowClosed, TransportConfig, TransportLayer

from .certs import Pki
from .conftest import Inbox
from .sipmsg import request, response_to

SIP = [Subprotocol("sip")]


def ws_request(method: str = "REGISTER", **kw: object) -> bytes:
    return request(method, transport="WS", sent_by="df7jal23ls0d.invalid", rport=False, **kw)  # type: ignore[arg-type]


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Request | Response:
    async with asyncio.timeout(timeout):
        data = await ws.recv(decode=False)
    return parse_message(data)


async def test_ws_exchanges_sip_both_ways(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_ws("127.0.0.1", 0)
    async with connect(f"ws://127.0.0.1:{listener.local[1]}/", subprotocols=SIP) as ws:
        assert ws.subprotocol == "sip"
        await ws.send(ws_request().decode())  # text frame
        [(msg, flow)] = await inbox.messages_n(1)
        assert isinstance(msg, Request) and msg.method == "REGISTER"
        assert flow.transport == "ws" and flow.reliable and not flow.secure
        via = msg.top_via
        assert via.transport == "WS" and via.host == "df7jal23ls0d.invalid"
        assert via.received == "127.0.0.1"
        # Response back on the same connection.
        layer.send_response(make_response(msg, 200), flow)
        resp = await recv(ws)
        assert isinstance(resp, Response) and resp.status == 200
        # A request from the server, answered by the client in a binary frame.
        options = request("OPTIONS", transport="WS", sent_by="127.0.0.1", rport=False)
        layer.send(options, flow)
        req = await recv(ws)
        assert isinstance(req, Request) and req.method == "OPTIONS"
        await ws.send(response_to(options))
        [_, (answer, answer_flow)] = await inbox.messages_n(2)
        assert isinstance(answer, Response) and answer.status == 200 and answer_flow == flow
        # send_to a WS peer only reuses its connection.
        assert layer.send_to(options, "ws", *flow.remote) == flow
        assert isinstance(await recv(ws), Request)
    assert await inbox.closed_n(1) == [flow]
    with pytest.raises(FlowClosed):
        layer.send(options, flow)
    with pytest.raises(FlowClosed):
        layer.send_response(make_response(msg, 200), flow)
    with pytest.raises(FlowClosed):
        layer.send_to(options, "ws", *flow.remote)


async def test_ws_message_without_content_length(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_ws("127.0.0.1", 0)
    async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
        await ws.send(ws_request("MESSAGE", content_length=False) + b"hi")
        [(msg, _)] = await inbox.messages_n(1)
    assert msg.body == b"hi"


@pytest.mark.parametrize("offered", [None, ["chat"], ["sip-ws", "xsip"]])
async def test_ws_without_sip_subprotocol_is_refused(
    layer: TransportLayer, inbox: Inbox, offered: list[str] | None
) -> None:
    listener = await layer.listen_ws("127.0.0.1", 0)
    subprotocols = None if offered is None else [Subprotocol(s) for s in offered]
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=subprotocols):
            pass
    assert info.value.response.status_code == 400
    await inbox.closed_n(1)
    assert len(layer.table) == 0


async def test_ws_message_over_the_limit_closes(inbox: Inbox, config: TransportConfig) -> None:
    config = dataclasses.replace(config, limits=Limits(max_message_size=1000))
    async with TransportLayer(
        inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed
    ) as layer:
        listener = await layer.listen_ws("127.0.0.1", 0)
        async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
            await ws.send(ws_request("MESSAGE", body=b"x" * 2000))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009
        await inbox.closed_n(1)
    assert inbox.messages == []


async def test_ws_unparsable_message_gets_400(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_ws("127.0.0.1", 0)
    async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
        await ws.send(ws_request(extra="no colon here\r\n"))
        resp = await recv(ws)
        assert isinstance(resp, Response) and resp.status == 400
        await ws.send(b"\x00garbage")  # not answered, connection kept
        await ws.send(ws_request())
        [(msg, _)] = await inbox.messages_n(1)
        assert isinstance(msg, Request)


async def test_s8_13_two_sip_messages_in_one_ws_message_get_400(
    layer: TransportLayer, inbox: Inbox
) -> None:
    """RFC 7118 §5.1: one SIP message per WebSocket message.  Two in one are
    answered 400 and neither goes further; the connection stays usable."""
    listener = await layer.listen_ws("127.0.0.1", 0)
    async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
        await ws.send(ws_request("OPTIONS") + ws_request("MESSAGE", body=b"hello"))
        resp = await recv(ws)
        assert isinstance(resp, Response) and resp.status == 400
        assert resp.cseq.method == "OPTIONS"
        # A body of exactly Content-Length bytes, then only CRLFs: one message.
        await ws.send(ws_request("MESSAGE", body=b"hello") + b"\r\n\r\n")
        [(msg, _)] = await inbox.messages_n(1)
        assert isinstance(msg, Request) and msg.method == "MESSAGE" and msg.body == b"hello"
    assert len(inbox.messages) == 1


async def test_ws_fragmented_message(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_ws("127.0.0.1", 0)
    raw = ws_request("MESSAGE", body=b"fragmented body")
    async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
        await ws.send([raw[:50], raw[50:120], raw[120:]])
        [(msg, _)] = await inbox.messages_n(1)
        # Ping/pong is answered by the library.
        pong = await ws.ping()
        async with asyncio.timeout(5):
            await pong
    assert msg.body == b"fragmented body"


async def test_ws_idle_connection_closed(inbox: Inbox, config: TransportConfig) -> None:
    config = dataclasses.replace(config, ws_idle_timeout=0.3)
    async with TransportLayer(
        inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed
    ) as layer:
        listener = await layer.listen_ws("127.0.0.1", 0)
        async with connect(f"ws://127.0.0.1:{listener.local[1]}", subprotocols=SIP) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1001
        await inbox.closed_n(1)


async def test_ws_stalled_handshake_is_dropped(inbox: Inbox, config: TransportConfig) -> None:
    config = dataclasses.replace(config, handshake_timeout=0.3)
    async with TransportLayer(
        inbox.on_message, config=config, on_flow_closed=inbox.on_flow_closed
    ) as layer:
        listener = await layer.listen_ws("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*listener.local)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await inbox.closed_n(1)


async def test_wss_round_trip(layer: TransportLayer, inbox: Inbox, pki: Pki) -> None:
    listener = await layer.listen_wss("127.0.0.1", 0, pki.server_context())
    async with connect(
        f"wss://127.0.0.1:{listener.local[1]}/", subprotocols=SIP, ssl=pki.client_context()
    ) as ws:
        await ws.send(
            request("REGISTER", transport="WSS", sent_by="abc.invalid", rport=False).decode()
        )
        [(msg, flow)] = await inbox.messages_n(1)
        assert flow.transport == "wss" and flow.secure
        assert isinstance(msg, Request) and msg.top_via.received == "127.0.0.1"
        layer.send_response(make_response(msg, 401), flow)
        resp = await recv(ws)
        assert isinstance(resp, Response) and resp.status == 401
        token = layer.make_token(flow)
        assert layer.resolve_token(token) == flow
    await inbox.closed_n(1)
    assert layer.resolve_token(token) is None


async def test_a_text_message_that_is_not_utf8_fails_the_connection(
    layer: TransportLayer, inbox: Inbox
) -> None:
    """RFC 6455 §8.1: invalid UTF-8 in a text message fails the connection with
    1007.  The same bytes in a binary message are just an unusable SIP message,
    and UTF-8 text beyond ASCII is taken as it is."""
    listener = await layer.listen_ws("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{listener.local[1]}"
    latin1 = ws_request("MESSAGE", body="café".encode("latin-1"))
    async with connect(url, subprotocols=SIP) as ws:
        await ws.send(latin1, text=True)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    async with connect(url, subprotocols=SIP) as ws:  # split across fragments
        await ws.send([latin1[:40], latin1[40:]], text=True)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    async with connect(url, subprotocols=SIP) as ws:
        await ws.send(latin1)  # binary: RFC 7118 §5.1 allows any bytes there
        await ws.send(ws_request("MESSAGE", body="café".encode()), text=True)
        messages = await inbox.messages_n(2)
    assert [m.body for m, _ in messages] == ["café".encode("latin-1"), "café".encode()]
