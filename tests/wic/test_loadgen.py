"""The bench's WIC (webims.wic.loadgen) on the wire, against a scripted WSS
stand-in for the eP-CSCF (``websockets``' server: it checks the client's
masking and handshake), and ``run_register_bench`` counting what it gets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from tests.wic.test_client import IMPU, TOKEN, ok_200
from webims.devca import ensure_dev_ca
from webims.sip import Message, Request, Response, parse_message
from webims.sip.checks import make_response, new_tag
from webims.sip.uac import new_branch, new_request
from webims.wic.bench import BenchResult, run_register_bench
from webims.wic.client import HandshakeRefused, TransactionTimeout, WicError, client_ssl_context
from webims.wic.loadgen import LoadClient, RegisterTemplate, WsTarget
from webims.wic.login import WebLogin
from webims.wic.registration import UaInstance, build_register

#: What the stand-in sends back for the n-th REGISTER (n from 1).
Script = Callable[[int, Request], Sequence[Message]]


def answer_200(n: int, request: Request) -> Sequence[Message]:
    return [ok_200(request)]


def notify_for(request: Request) -> Request:
    """A reg event NOTIFY to the WIC, as the network sends it on the flow."""
    return new_request(
        "NOTIFY",
        "sip:ua@k3j9x2.invalid;transport=ws",
        from_=f"<{IMPU}>;tag={new_tag()}",
        to=f"<{IMPU}>;tag={new_tag()}",
        call_id=new_tag(),
        cseq=1,
        via=f"SIP/2.0/TCP pcscf.home1.net:5060;branch={new_branch()}",
        extra=[("Event", "reg"), ("Subscription-State", "active;expires=600")],
    )


@dataclass
class Registrar:
    """A WSS server where the eP-CSCF stands, answering each REGISTER by its script."""

    script: Script = answer_200
    #: Whether the n-th connection (from 1) gets subprotocol ``sip``.
    select_sip: Callable[[int], bool] = lambda n: True
    #: Ping the WIC before answering each REGISTER, and wait for its Pong.
    ping: bool = False
    connections: int = 0
    offered: list[str | None] = field(default_factory=list)
    registers: list[Request] = field(default_factory=list)
    #: The WIC's answers to requests sent to it.
    answers: list[Response] = field(default_factory=list)
    #: Close code the WIC sent on each connection, once closed.
    close_codes: list[int | None] = field(default_factory=list)
    pongs: int = 0
    #: Plain ``ws://`` instead of TLS.
    plain: bool = False
    server: Server | None = None
    port: int = 0

    async def start(self, cert: Path, key: Path) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        def select(_: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            self.connections += 1
            self.offered.extend(offered)
            if "sip" in offered and self.select_sip(self.connections):
                return Subprotocol("sip")
            return None

        self.server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            ssl=None if self.plain else ctx,
            select_subprotocol=select,
            ping_interval=None,
        )
        self.port = next(iter(self.server.sockets)).getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'ws' if self.plain else 'wss'}://127.0.0.1:{self.port}/"

    async def _serve(self, ws: ServerConnection) -> None:
        async for frame in ws:
            message = parse_message(frame.encode() if isinstance(frame, str) else frame)
            if isinstance(message, Response):
                self.answers.append(message)
                continue
            self.registers.append(message)
            if self.ping:
                async with asyncio.timeout(5):
                    await (await ws.ping())
                self.pongs += 1
            for out in self.script(len(self.registers), message):
                await ws.send(out.serialize().decode())
        await ws.wait_closed()
        self.close_codes.append(ws.close_code)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for the stand-in to see what the WIC did (its side ends later)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(peer: Registrar, pki: tuple[Path, Path, Path]) -> AsyncIterator[Registrar]:
    await peer.start(pki[1], pki[2])
    try:
        yield peer
    finally:
        assert peer.server is not None
        peer.server.close()
        await peer.server.wait_closed()


@pytest.fixture
async def running(pki: tuple[Path, Path, Path]) -> AsyncIterator[Registrar]:
    async with serving(Registrar(), pki) as peer:
        yield peer


def load_client(peer: Registrar, pki: tuple[Path, Path, Path], **kw: object) -> LoadClient:
    return LoadClient(
        WsTarget.parse(peer.url),
        IMPU,
        TOKEN,
        ssl_context=client_ssl_context(pki[0]),
        **kw,  # type: ignore[arg-type]
    )


async def bench(
    peer: Registrar, pki: tuple[Path, Path, Path], duration: float = 0.3
) -> BenchResult:
    return await run_register_bench(
        peer.url,
        [WebLogin(TOKEN, "user1_private@home1.net", (IMPU,), 3600)],
        clients=2,
        duration=duration,
        ssl_context=client_ssl_context(pki[0]),
        timeout=2.0,
    )


# -- one registration on the wire ---------------------------------------------------------


def test_the_template_is_the_register_of_build_register() -> None:
    ua = UaInstance(IMPU)
    template = RegisterTemplate(ua, TOKEN, 600)
    assert ua.cseq == 0  # the WIC's own CSeq is not consumed
    branch = new_branch()
    expected = build_register(replace(ua, cseq=6), TOKEN, expires=600)
    wire = expected.serialize().replace((expected.top_via.branch or "").encode(), branch.encode())
    assert template.render(branch, 7) == wire


def test_the_target_and_its_opening_handshake() -> None:
    target = WsTarget.parse("wss://[::1]/ws?x=1")
    assert (target.host, target.port, target.secure) == ("::1", 443, True)
    assert target.request_head.startswith(b"GET /ws?x=1 HTTP/1.1\r\nHost: [::1]\r\n")
    assert b"\r\nSec-WebSocket-Protocol: sip\r\n" in target.request_head
    assert b"\r\nHost: 127.0.0.1:8080\r\n" in WsTarget.parse("ws://127.0.0.1:8080").request_head
    with pytest.raises(ValueError, match="not a ws"):
        WsTarget.parse("https://127.0.0.1/")


async def test_registers_over_a_new_connection_each_time_and_closes_with_1000(
    running: Registrar, pki: tuple[Path, Path, Path]
) -> None:
    client = load_client(running, pki, expires=600)
    first = await client.register()
    second = await client.register()
    await client.drain(5)
    assert (first.status, second.status) == (200, 200)
    assert running.connections == 2 and running.offered == ["sip", "sip"]
    a, b = running.registers
    # The same WIC (instance, reg-id, Call-ID, From tag), a new transaction.
    assert a.call_id == b.call_id and a.from_tag == b.from_tag
    assert a.headers.get_all("Contact") == b.headers.get_all("Contact")
    assert '+sip.instance="<urn:uuid:' in a.headers.get_all("Contact")[0]
    assert (a.cseq.seq, b.cseq.seq) == (1, 2)
    assert a.top_via.branch != b.top_via.branch
    assert a.top_via.branch == first.top_via.branch
    # Everything else as the WIC's REGISTER (build_register) has it.
    ua = replace(client.ua, cseq=0)
    expected = build_register(ua, TOKEN, expires=600)
    assert a.uri_text == expected.uri_text == "sip:home1.net"
    for name in ("From", "To", "Contact", "Expires", "Supported", "Authorization", "User-Agent"):
        assert a.headers.get_all(name) == expected.headers.get_all(name), name
    assert a.headers.get("Authorization") == f"Bearer {TOKEN}"
    assert client.open == set()
    await until(lambda: len(running.close_codes) == 2)
    assert running.close_codes == [1000, 1000]


async def test_plain_ws_works_the_same_without_tls(pki: tuple[Path, Path, Path]) -> None:
    async with serving(Registrar(plain=True), pki) as peer:
        client = LoadClient(WsTarget.parse(peer.url), IMPU, TOKEN, ssl_context=None)
        assert (await client.register()).status == 200
        assert (await client.register()).status == 200
        await client.drain(5)
        await until(lambda: len(peer.close_codes) == 2)
    assert peer.offered == ["sip", "sip"] and peer.close_codes == [1000, 1000]
    assert [r.cseq.seq for r in peer.registers] == [1, 2]


async def test_a_provisional_response_is_skipped(pki: tuple[Path, Path, Path]) -> None:
    async with serving(
        Registrar(script=lambda n, r: [make_response(r, 100), ok_200(r)]), pki
    ) as registrar:
        result = await bench(registrar, pki)
        assert result.failed == 0 and result.errors == {}
        # Each REGISTER after the warm-up counted once, as ok.
        assert result.ok == len(registrar.registers) - 1
        assert result.ok > 0


async def test_a_request_and_a_ping_on_the_connection_are_answered(
    pki: tuple[Path, Path, Path],
) -> None:
    async with serving(
        Registrar(script=lambda n, r: [make_response(r, 100), notify_for(r), ok_200(r)], ping=True),
        pki,
    ) as registrar:
        client = load_client(registrar, pki)
        response = await client.register()
        await client.drain(5)
        assert response.status == 200
        assert registrar.pongs == 1
        assert [(a.status, a.cseq.method) for a in registrar.answers] == [(200, "NOTIFY")]
        await until(lambda: len(registrar.close_codes) == 1)
        assert registrar.close_codes == [1000]


async def test_a_response_of_another_transaction_is_not_taken(pki: tuple[Path, Path, Path]) -> None:
    def stray(n: int, request: Request) -> Sequence[Message]:
        other = parse_message(request.serialize().replace(b"branch=z9hG4bK", b"branch=z9hG4bKx"))
        assert isinstance(other, Request)
        again = parse_message(
            request.serialize().replace(
                f"CSeq: {request.cseq.seq} ".encode(), f"CSeq: {request.cseq.seq + 5} ".encode()
            )
        )
        assert isinstance(again, Request)
        return [ok_200(other), ok_200(again)]

    async with serving(Registrar(script=stray), pki) as registrar:
        client = load_client(registrar, pki, timeout=0.5)
        with pytest.raises(TransactionTimeout):
            await client.register()
        await client.drain(5)


async def test_no_final_response_is_a_timeout(pki: tuple[Path, Path, Path]) -> None:
    async with serving(Registrar(script=lambda n, r: [make_response(r, 100)]), pki) as registrar:
        client = load_client(registrar, pki, timeout=0.3)
        with pytest.raises(TransactionTimeout, match="no final response"):
            await client.register()
        await client.drain(5)
        assert client.open == set()


async def test_a_server_that_does_not_select_sip_fails_the_handshake(
    pki: tuple[Path, Path, Path],
) -> None:
    async with serving(Registrar(select_sip=lambda n: False), pki) as registrar:
        client = load_client(registrar, pki)
        with pytest.raises(HandshakeRefused, match="subprotocol sip"):
            await client.register()
        await client.drain(5)
        assert registrar.offered == ["sip"] and registrar.registers == []


async def test_an_untrusted_server_certificate_is_refused(
    running: Registrar, tmp_path: Path
) -> None:
    other = ensure_dev_ca(tmp_path).ca_cert
    client = LoadClient(
        WsTarget.parse(running.url), IMPU, TOKEN, ssl_context=client_ssl_context(other)
    )
    with pytest.raises(WicError, match="certificate verify failed"):
        await client.register()
    await client.drain(5)
    assert running.registers == []


async def test_nothing_listening_is_a_connection_failure(pki: tuple[Path, Path, Path]) -> None:
    peer = Registrar()
    await peer.start(pki[1], pki[2])
    assert peer.server is not None
    peer.server.close()
    await peer.server.wait_closed()
    with pytest.raises(WicError, match="cannot connect"):
        await load_client(peer, pki).register()


async def test_tls_resumption_is_offered_only_when_asked(
    running: Registrar, pki: tuple[Path, Path, Path]
) -> None:
    full = load_client(running, pki)
    resuming = load_client(running, pki, tls_resume=True)
    for client in (full, resuming, full, resuming):
        assert (await client.register()).status == 200
    await asyncio.gather(full.drain(5), resuming.drain(5))
    assert full.resumed == 0 and full.session is None
    assert resuming.resumed == 1


# -- the bench's counts -----------------------------------------------------------------------


async def test_a_refusal_is_a_failure_with_its_reason(pki: tuple[Path, Path, Path]) -> None:
    def refuse_after_warm_up(n: int, request: Request) -> Sequence[Message]:
        if n == 1:
            return [ok_200(request)]
        challenge = 'Bearer realm="home1.net", error="invalid_token", error_description="expired"'
        if n % 2:
            return [make_response(request, 403, to_tag=new_tag())]
        extra = [("WWW-Authenticate", challenge)]
        return [make_response(request, 401, to_tag=new_tag(), extra=extra)]

    async with serving(Registrar(script=refuse_after_warm_up), pki) as registrar:
        result = await bench(registrar, pki)
        assert result.ok == 0
        assert set(result.errors) == {
            "403 Forbidden",
            "401 Unauthorized (invalid_token: expired)",
        }
        assert result.failed == len(registrar.registers) - 1


async def test_a_handshake_refused_after_the_warm_up_is_counted(
    pki: tuple[Path, Path, Path],
) -> None:
    async with serving(Registrar(select_sip=lambda n: n == 1), pki) as registrar:
        result = await bench(registrar, pki)
        assert result.ok == 0
        assert result.errors["HandshakeRefused"] == result.failed > 0
        assert len(registrar.registers) == 1  # the warm-up's


async def test_a_refused_warm_up_stops_the_bench(pki: tuple[Path, Path, Path]) -> None:
    async with serving(
        Registrar(script=lambda n, r: [make_response(r, 403, to_tag=new_tag())]), pki
    ) as registrar:
        with pytest.raises(WicError, match="warm-up registration refused: 403"):
            await bench(registrar, pki)


def test_registers_on_uvloop_as_the_bench_runs(pki: tuple[Path, Path, Path]) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[int, int, list[int | None]]:
        async with serving(Registrar(), pki) as peer:
            client = load_client(peer, pki, tls_resume=True)
            statuses = [(await client.register()).status for _ in range(3)]
            await client.drain(5)
            await until(lambda: len(peer.close_codes) == 3)
        assert statuses == [200, 200, 200]
        return len(peer.registers), client.resumed, peer.close_codes

    assert uvloop.run(main()) == (3, 2, [1000, 1000, 1000])


async def test_a_later_run_registers_the_same_instances(pki: tuple[Path, Path, Path]) -> None:
    """Each client's +sip.instance is the same from run to run, so that a later run
    replaces the bindings of an earlier one at the registrar instead of adding
    flows (the S-CSCF answers 403 beyond its flows per UE)."""

    def instances(registrar: Registrar) -> set[str]:
        found = set()
        for register in registrar.registers:
            [contact] = register.contacts
            found.add(contact.params.get("+sip.instance") or "")
        return found

    async with serving(Registrar(), pki) as first:
        await bench(first, pki)
    async with serving(Registrar(), pki) as second:
        await bench(second, pki)
    assert len(instances(first)) == 2  # two clients, one instance each
    assert instances(second) == instances(first)
