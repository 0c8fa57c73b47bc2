"""SIP over UDP through the transport layer, on real sockets."""

from __future__ import annotations

import asyncio

from webims.sip.message import Request, Response, parse_message
from webims.transport import Flow, TransportLayer

from .conftest import Inbox
from .sipmsg import request


class Peer(asyncio.DatagramProtocol):
    """A UDP peer that keeps what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def udp_peer() -> tuple[asyncio.DatagramTransport, Peer, int]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return transport, peer, transport.get_extra_info("sockname")[1]


async def recv(peer: Peer, timeout: float = 5.0) -> bytes:
    data, _ = await asyncio.wait_for(peer.received.get(), timeout)
    return data


async def test_request_is_delivered_with_received_and_rport(
    layer: TransportLayer, inbox: Inbox
) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, _, port = await udp_peer()
    try:
        transport.sendto(request("OPTIONS", sent_by="192.0.2.10:5060"), listener.local)
        [(msg, flow)] = await inbox.messages_n(1)
    finally:
        transport.close()
    assert isinstance(msg, Request)
    assert flow == Flow("udp", listener.local, ("127.0.0.1", port))
    assert not flow.reliable and not flow.secure
    via = msg.top_via
    assert via.received == "127.0.0.1"
    assert via.rport == port
    assert via.host == "192.0.2.10"  # sent-by is never rewritten
    assert b";received=127.0.0.1" in msg.serialize()


async def test_no_received_when_sent_by_is_the_source(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, _, port = await udp_peer()
    try:
        raw = request(sent_by=f"127.0.0.1:{port}", rport=False)
        transport.sendto(raw, listener.local)
        [(msg, _)] = await inbox.messages_n(1)
    finally:
        transport.close()
    assert msg.top_via.received is None
    assert msg.serialize() == raw  # untouched bytes


async def test_domain_sent_by_always_gets_received(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, _, _ = await udp_peer()
    try:
        transport.sendto(request(sent_by="ue.home1.net", rport=False), listener.local)
        [(msg, _)] = await inbox.messages_n(1)
    finally:
        transport.close()
    assert msg.top_via.received == "127.0.0.1"
    assert msg.top_via.rport is None


async def test_reply_on_the_flow(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, peer, _ = await udp_peer()
    try:
        transport.sendto(request(), listener.local)
        [(msg, flow)] = await inbox.messages_n(1)
        assert isinstance(msg, Request)
        layer.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", flow)
        assert (await recv(peer)).startswith(b"SIP/2.0 200 OK")
    finally:
        transport.close()


async def test_send_response_follows_received_and_rport(
    layer: TransportLayer, inbox: Inbox
) -> None:
    from webims.sip.checks import make_response

    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, peer, _ = await udp_peer()
    try:
        transport.sendto(request(sent_by="192.0.2.10:5060"), listener.local)
        [(msg, flow)] = await inbox.messages_n(1)
        assert isinstance(msg, Request)
        out = layer.send_response(make_response(msg, 200), flow)
        assert out == flow
        resp = parse_message(await recv(peer))
        assert isinstance(resp, Response) and resp.status == 200
        assert resp.top_via.received == "127.0.0.1"
    finally:
        transport.close()


async def test_unparsable_request_gets_400_and_garbage_is_dropped(
    layer: TransportLayer, inbox: Inbox
) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, peer, _ = await udp_peer()
    try:
        transport.sendto(b"\x00\x01\x00\x00garbage", listener.local)  # STUN-like
        transport.sendto(b"hello world\r\n\r\n", listener.local)
        transport.sendto(b"\r\n\r\n", listener.local)  # keep-alive, ignored
        bad = request(extra="this line has no colon\r\n")
        transport.sendto(bad, listener.local)
        answer = parse_message(await recv(peer))
        assert isinstance(answer, Response)
        assert answer.status == 400
        assert answer.headers.get("Call-ID") is not None
        # A request with a Via that does not parse: 400 as well.
        transport.sendto(
            request().replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0 UDP"), listener.local
        )
        answer = parse_message(await recv(peer))
        assert isinstance(answer, Response) and answer.status == 400
        # Still serving.
        transport.sendto(request(), listener.local)
        await inbox.messages_n(1)
    finally:
        transport.close()
    assert len(inbox.messages) == 1
    assert peer.received.empty()


async def test_send_to_udp(layer: TransportLayer) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    transport, peer, port = await udp_peer()
    try:
        flow = layer.send_to(request(), "udp", "127.0.0.1", port)
        assert flow == Flow("udp", listener.local, ("127.0.0.1", port))
        assert (await recv(peer)).startswith(b"OPTIONS ")
    finally:
        transport.close()


async def test_udp_flow_token(layer: TransportLayer, inbox: Inbox) -> None:
    listener = await layer.listen_udp("127.0.0.1", 0)
    flow = Flow("udp", listener.local, ("127.0.0.1", 40000))
    token = layer.make_token(flow)
    assert layer.resolve_token(token) == flow
    other = Flow("udp", ("127.0.0.1", 1), ("127.0.0.1", 40000))
    assert layer.resolve_token(layer.make_token(other)) is None  # no such socket
