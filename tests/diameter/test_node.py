"""The Diameter node on real loopback sockets: capabilities exchange,
pipelined requests, watchdog, disconnection, reconnection, election, and
the answers to what a peer should not have sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.ports import free_port
from webims.diameter import base, cx
from webims.diameter.base import Identity
from webims.diameter.codec import AppMessage, decode, peek_header
from webims.diameter.cx import CxMessage, avp, base_avp, cx_answer, cx_request
from webims.diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP, CxCommand, CxResult
from webims.diameter.errors import (
    DiameterError,
    PeerUnavailable,
    RequestTimeout,
)
from webims.diameter.framing import DiameterFramer
from webims.diameter.node import DiameterNode, NodeConfig, Peer
from webims.diameter.peer import PeerState

CX_APPS = ((VENDOR_3GPP, CX_APPLICATION_ID),)
FAST = NodeConfig(tw=30.0, handshake_timeout=2.0, request_timeout=2.0, reconnect_min=0.05)


def identity(host: str) -> Identity:
    return Identity(origin_host=host, origin_realm="home1.net", applications=CX_APPS)


def uar(node: DiameterNode, n: int) -> AppMessage:
    return cx_request(
        node.me,
        CxCommand.USER_AUTHORIZATION,
        session_id=f"{node.me.origin_host};1;{n}",
        destination_realm="home1.net",
        destination_host=None,
        avps=[
            base_avp(cx.USER_NAME, "user1_private@home1.net"),
            avp(cx.PUBLIC_IDENTITY, f"sip:user{n}@home1.net"),
            avp(cx.VISITED_NETWORK_IDENTIFIER, b"home1.net"),
        ],
    )


async def echo(request: AppMessage, peer: Peer) -> AppMessage:
    """Answers a UAR with Experimental-Result 2001 and the IMPU as Server-Name."""
    msg = CxMessage(request)
    await asyncio.sleep(0)
    return cx_answer(
        identity("hss.home1.net"),
        request,
        CxResult(2001, True),
        [avp(cx.SERVER_NAME, msg.require(cx.PUBLIC_IDENTITY))],
    )


@contextlib.asynccontextmanager
async def pair(
    server_config: NodeConfig = FAST, client_config: NodeConfig = FAST
) -> AsyncIterator[tuple[DiameterNode, DiameterNode, int]]:
    server = DiameterNode(identity("hss.home1.net"), server_config)
    server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, echo)
    port = await server.listen("127.0.0.1", 0)
    client = DiameterNode(identity("icscf.home1.net"), client_config)
    client.add_peer("hss.home1.net", "127.0.0.1", port)
    try:
        await client.wait_open("hss.home1.net", 3)
        yield server, client, port
    finally:
        await client.stop()
        await server.stop()


async def eventually(predicate: object, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def raw_exchange(port: int, data: bytes, *, read: bool = True) -> tuple[list[bytes], bool]:
    """Send ``data`` on a new connection; return the messages that came back
    and whether the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    framer = DiameterFramer()
    out: list[bytes] = []
    closed = False
    try:
        while read:
            chunk = await asyncio.wait_for(reader.read(65536), 1.0)
            if not chunk:
                closed = True
                break
            framer.feed(chunk)
            while (m := framer.next_message()) is not None:
                out.append(m)
    except TimeoutError:
        pass
    writer.close()
    return out, closed


def cer_bytes(host: str, apps: tuple[tuple[int, int], ...] = CX_APPS) -> bytes:
    msg = base.cer(Identity(origin_host=host, origin_realm="home1.net", applications=apps))
    msg.header.hop_by_hop_identifier = 7
    msg.header.end_to_end_identifier = 7
    return bytes(msg.as_bytes())


# -- capabilities exchange ---------------------------------------------------------------


async def test_cer_cea_opens_both_sides_with_cx_advertised() -> None:
    async with pair() as (server, client, _):
        hss = client.peers["hss.home1.net"]
        assert hss.state is PeerState.I_OPEN
        assert CX_APPLICATION_ID in hss.applications and hss.realm == "home1.net"
        icscf = server.peers["icscf.home1.net"]
        assert icscf.state is PeerState.R_OPEN
        assert CX_APPLICATION_ID in icscf.applications


async def test_cer_without_a_common_application_gets_5010_and_is_closed() -> None:
    async with pair() as (server, client, port):
        out, closed = await raw_exchange(port, cer_bytes("gx.example.net", ((0, 4),)))
        assert closed and len(out) == 1
        cea = decode(out[0])
        assert cea.header.command_code == 257 and cea.result_code == 5010
        assert "gx.example.net" not in server.peers
        # the established peer is untouched
        answer = await client.request(uar(client, 1))
        assert CxMessage(answer).result() == CxResult(2001, True)


async def test_cer_from_a_peer_not_allowed_gets_3010() -> None:
    config = NodeConfig(allowed_peers=frozenset({"icscf.home1.net"}), reconnect_min=0.05)
    async with pair(server_config=config) as (server, _client, port):
        out, closed = await raw_exchange(port, cer_bytes("intruder.example.net"))
        assert closed and decode(out[0]).result_code == 3010
        assert decode(out[0]).header.is_error
        assert "intruder.example.net" not in server.peers


async def test_first_message_other_than_cer_closes_the_connection() -> None:
    async with pair() as (server, client, port):
        request = uar(client, 1)
        request.header.hop_by_hop_identifier = 1
        out, closed = await raw_exchange(port, bytes(request.as_bytes()))
        assert closed and out == []
        assert server.stats["requests_in"] == 0


# -- requests ----------------------------------------------------------------------------


async def test_many_requests_in_flight_on_one_connection_are_matched() -> None:
    async with pair() as (server, client, _):
        answers = await asyncio.gather(*(client.request(uar(client, n)) for n in range(300)))
        names = [CxMessage(a).text(cx.SERVER_NAME) for a in answers]
        assert names == [f"sip:user{n}@home1.net" for n in range(300)]
        sessions = [CxMessage(a).text(cx.SESSION_ID, 0) for a in answers]
        assert sessions == [f"icscf.home1.net;1;{n}" for n in range(300)]
        assert server.stats["requests_in"] == 300


async def test_request_timeout_is_a_clear_error_and_the_connection_survives() -> None:
    async with pair() as (server, client, _):

        async def slow(request: AppMessage, peer: Peer) -> AppMessage:
            await asyncio.sleep(0.5)
            return await echo(request, peer)

        server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, slow)
        with pytest.raises(RequestTimeout, match=r"no answer from hss\.home1\.net in time"):
            await client.request(uar(client, 1), timeout=0.1)
        answer = await client.request(uar(client, 2), timeout=2)
        assert CxMessage(answer).text(cx.SERVER_NAME) == "sip:user2@home1.net"
        assert not client.peers["hss.home1.net"].pending


async def test_unknown_application_gets_3007_with_the_e_bit() -> None:
    async with pair() as (_server, client, _):
        request = uar(client, 1)
        request.header.application_id = 4  # Credit-Control
        answer = await client.request(request, peer=client.peers["hss.home1.net"])
        assert answer.header.is_error
        assert CxMessage(answer).result() == CxResult.base(3007)


async def test_unknown_command_gets_3001() -> None:
    async with pair() as (_server, client, _):
        request = uar(client, 1)
        request.header.command_code = 399
        answer = await client.request(request)
        assert answer.header.is_error
        assert CxMessage(answer).result() == CxResult.base(3001)


async def test_handler_error_becomes_the_result_code_with_failed_avp() -> None:
    async with pair() as (server, client, _):

        async def strict(request: AppMessage, peer: Peer) -> AppMessage:
            CxMessage(request).require(cx.SERVER_NAME)
            raise AssertionError("not reached")

        server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, strict)
        answer = CxMessage(await client.request(uar(client, 1)))
        assert answer.result() == CxResult.base(5005)
        failed = answer.all(279, 0)[0].value
        assert [(a.code, a.vendor_id) for a in failed] == [(cx.SERVER_NAME, VENDOR_3GPP)]


async def test_handler_crash_gets_5012_and_the_node_keeps_serving() -> None:
    async with pair() as (server, client, _):
        calls = 0

        async def flaky(request: AppMessage, peer: Peer) -> AppMessage:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            return await echo(request, peer)

        server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, flaky)
        first = CxMessage(await client.request(uar(client, 1)))
        assert first.result() == CxResult.base(5012)
        second = CxMessage(await client.request(uar(client, 2)))
        assert second.result() == CxResult(2001, True)


async def test_undecodable_avps_get_an_error_answer_and_the_connection_stays() -> None:
    async with pair() as (server, client, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(cer_bytes("probe.home1.net"))
        framer = DiameterFramer()
        framer.feed(await reader.read(65536))
        assert decode(framer.next_message() or b"").result_code == 2001
        bad = bytearray(bytes(uar(client, 1).as_bytes()))
        bad[12:16] = (99).to_bytes(4, "big")  # hop-by-hop
        # First AVP (Session-Id): claim a length past the end of the message.
        bad[20 + 5 : 20 + 8] = (4000).to_bytes(3, "big")
        writer.write(bytes(bad))
        framer.feed(await asyncio.wait_for(reader.read(65536), 2))
        answer = framer.next_message()
        assert answer is not None
        header = peek_header(answer)
        assert header.hop_by_hop == 99 and not header.is_request
        assert CxMessage(decode(answer)).result().code in (5014, 3008, 3009, 5004)
        writer.close()
        assert server.stats["protocol_errors"] == 1
        reply = await client.request(uar(client, 2))
        assert CxMessage(reply).result() == CxResult(2001, True)


async def test_garbage_bytes_close_that_connection_only() -> None:
    async with pair() as (server, client, port):
        _out, closed = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: hss\r\n\r\n" * 4)
        assert closed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(cer_bytes("probe.home1.net"))
        framer = DiameterFramer()
        framer.feed(await reader.read(65536))
        assert decode(framer.next_message() or b"").result_code == 2001
        writer.write(b"\x01\x00\x00\x15" + bytes(17))  # length not a multiple of 4
        await asyncio.wait_for(reader.read(65536), 2)  # the error answer, then EOF
        assert await asyncio.wait_for(reader.read(65536), 2) == b""
        writer.close()
        assert server.stats["framing_errors"] == 2
        answer = await client.request(uar(client, 3))
        assert CxMessage(answer).text(cx.SERVER_NAME) == "sip:user3@home1.net"


# -- watchdog, disconnection, reconnection -----------------------------------------------


async def test_watchdog_sends_dwr_when_idle_and_the_peer_answers() -> None:
    quick = NodeConfig(tw=0.2, handshake_timeout=2.0, reconnect_min=0.05)
    async with pair(client_config=quick) as (server, client, _):
        await eventually(lambda: client.stats["dwa_received"] >= 3)
        assert server.stats["dwa_sent"] >= 3
        assert client.peers["hss.home1.net"].state is PeerState.I_OPEN


async def test_silent_peer_is_declared_failed_and_reconnected() -> None:
    """A peer that completes the CER/CEA and then never answers anything."""
    connections = 0

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        framer = DiameterFramer()
        while chunk := await reader.read(65536):
            framer.feed(chunk)
            while (m := framer.next_message()) is not None:
                request = decode(m)
                if request.header.command_code == 257:
                    writer.write(bytes(base.cea(identity("hss.home1.net"), request).as_bytes()))

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = DiameterNode(
        identity("icscf.home1.net"),
        NodeConfig(tw=0.2, handshake_timeout=1.0, reconnect_min=0.05, reconnect_max=0.2),
    )
    client.add_peer("hss.home1.net", "127.0.0.1", port)
    try:
        await client.wait_open("hss.home1.net", 3)
        await eventually(lambda: connections >= 2)  # failed over, then reconnected
        assert client.stats["dwr_sent"] >= 1
        assert client.stats["dwa_received"] == 0
    finally:
        await client.stop()
        server.close()


async def test_stop_sends_dpr_and_both_sides_close() -> None:
    server = DiameterNode(identity("hss.home1.net"), FAST)
    port = await server.listen("127.0.0.1", 0)
    client = DiameterNode(identity("icscf.home1.net"), FAST)
    client.add_peer("hss.home1.net", "127.0.0.1", port)
    await client.wait_open("hss.home1.net", 3)
    await client.stop()
    assert server.stats["dpr_received"] == 1
    await eventually(lambda: "icscf.home1.net" not in server.peers)
    assert client.peers["hss.home1.net"].state is PeerState.CLOSED
    await server.stop()


async def test_reconnects_with_back_off_after_the_server_restarts() -> None:
    port = free_port()
    first = DiameterNode(identity("hss.home1.net"), FAST)
    first.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, echo)
    await first.listen("127.0.0.1", port)
    client = DiameterNode(
        identity("icscf.home1.net"),
        NodeConfig(handshake_timeout=1.0, reconnect_min=0.05, reconnect_max=0.3),
    )
    peer = client.add_peer("hss.home1.net", "127.0.0.1", port)
    await client.wait_open("hss.home1.net", 3)
    await first.stop()
    await eventually(lambda: peer.state is not PeerState.I_OPEN)
    with pytest.raises(PeerUnavailable):
        await client.request(uar(client, 1))
    await asyncio.sleep(0.5)  # a few failed attempts while nothing listens
    second = DiameterNode(identity("hss.home1.net"), FAST)
    second.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, echo)
    await second.listen("127.0.0.1", port)
    try:
        await client.wait_open("hss.home1.net", 3)
        answer = await client.request(uar(client, 2))
        assert CxMessage(answer).result() == CxResult(2001, True)
    finally:
        await client.stop()
        await second.stop()


async def test_pending_requests_fail_when_the_connection_drops() -> None:
    async with pair() as (server, client, _):
        started = asyncio.Event()

        async def hang(request: AppMessage, peer: Peer) -> AppMessage:
            started.set()
            await asyncio.sleep(10)
            raise AssertionError("not reached")

        server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, hang)
        task = asyncio.ensure_future(client.request(uar(client, 1), timeout=5))
        await started.wait()
        conn = server.peers["icscf.home1.net"].r_conn
        assert conn is not None
        conn.close(abort=True)
        with pytest.raises(Exception, match=r"lost|closed") as err:
            await task
        assert not isinstance(err.value, RequestTimeout)


async def test_election_keeps_one_connection_when_both_sides_connect() -> None:
    """Both nodes connect to each other at once (RFC 6733 §5.6.4)."""
    a_port, b_port = free_port(), free_port()
    a = DiameterNode(identity("aaa.home1.net"), FAST)
    b = DiameterNode(identity("zzz.home1.net"), FAST)
    for node in (a, b):
        node.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, echo)
    await a.listen("127.0.0.1", a_port)
    await b.listen("127.0.0.1", b_port)
    a.add_peer("zzz.home1.net", "127.0.0.1", b_port)
    b.add_peer("aaa.home1.net", "127.0.0.1", a_port)
    try:
        await a.wait_open("zzz.home1.net", 3)
        await b.wait_open("aaa.home1.net", 3)
        await asyncio.sleep(0.2)
        pa, pb = a.peers["zzz.home1.net"], b.peers["aaa.home1.net"]
        assert pa.state.is_open and pb.state.is_open
        # one connection each way at most survives, and both use the same one
        assert (pa.state, pb.state) in (
            (PeerState.I_OPEN, PeerState.R_OPEN),
            (PeerState.R_OPEN, PeerState.I_OPEN),
        )
        ans = await a.request(uar(a, 1), peer=pa)
        assert CxMessage(ans).result() == CxResult(2001, True)
        ans = await b.request(uar(b, 2), peer=pb)
        assert CxMessage(ans).result() == CxResult(2001, True)
    finally:
        await a.stop()
        await b.stop()


def test_diameter_error_names_its_result_code() -> None:
    err = DiameterError(5005, "missing AVP 601")
    assert err.result_code == 5005 and not err.protocol_error and err.failed_avps == ()


async def test_a_handler_that_waits_then_fails_still_gets_its_answer_out() -> None:
    """Handlers run inline until they first wait; the rest runs as a task."""
    async with pair() as (server, client, _):

        async def waits_then_refuses(request: AppMessage, peer: Peer) -> AppMessage:
            await asyncio.sleep(0.01)
            raise DiameterError(5012, "refused after a wait")

        server.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, waits_then_refuses)
        answers = await asyncio.gather(*(client.request(uar(client, n)) for n in range(20)))
        assert {CxMessage(a).result() for a in answers} == {CxResult.base(5012)}


async def test_requests_and_answers_leave_no_cyclic_garbage() -> None:
    """Servers run with the cyclic collector off (transport.loop.ServerGc):
    the Diameter path must free everything by reference counting."""
    import gc

    async with pair() as (_server, client, _):
        await asyncio.gather(*(client.request(uar(client, n)) for n in range(50)))
        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                await asyncio.gather(*(client.request(uar(client, n)) for n in range(50)))
            assert gc.collect() == 0
        finally:
            gc.enable()
