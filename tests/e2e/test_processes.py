"""The whole registration path with every element in a process of its own:
``webims run hss``, ``wwsf``, ``scscf``, ``icscf`` and ``pcscf``, one
configuration, real sockets throughout (HTTPS, WSS, SIP over TCP on Mw,
Diameter Cx).  The test is the WIC: it gets a token with ``webims token``,
registers over WSS with a small ``websockets`` client, and reads the outcome
in the HSS through its provisioning API.

Also from outside: a bad token, and ``auth-done`` REGISTERs sent straight to
the I-CSCF and the S-CSCF from a socket neither trusts, which must change
nothing in the HSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.ports import free_ports
from webims.sip import Request, Response, make_response, new_tag, parse_message
from webims.sip.framing import KeepAlive, StreamFramer

WEBIMS = str(Path(sys.executable).with_name("webims"))
ELEMENTS = ("hss", "wwsf", "scscf", "icscf", "pcscf")
USER1_IMPI = "user1_private@home1.net"
USER1_IMPU = "sip:user1_public1@home1.net"
USER2_IMPI = "user2_private@home1.net"
USER2_IMPU = "sip:user2_public1@home1.net"
STEP = 10.0  # seconds any one SIP or HTTP exchange may take

pytestmark = pytest.mark.timeout(180)

_n = itertools.count(1)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def drain(self) -> None:
        """Read the output to its end (so a full pipe never blocks the element)."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            if line.startswith("ready"):
                self.ready.set()
        self.ready.set()  # ended: nobody waits in vain

    @property
    def output(self) -> str:
        return "".join(self.lines)


@dataclass
class System:
    config: Path
    data_dir: Path
    ports: dict[str, int]
    processes: list[Process]
    token: str = ""

    @property
    def ca(self) -> Path:
        return self.data_dir / "pki" / "ca.pem"

    @property
    def server_name(self) -> str:
        return f"sip:scscf.home1.net:{self.ports['scscf']};transport=tcp"

    def api_key(self) -> str:
        return (self.data_dir / "hss-api-key").read_text().strip()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output}" for p in self.processes)


def webims(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEBIMS, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start(name: str, config: Path) -> Process:
    popen = subprocess.Popen(
        [WEBIMS, "run", name, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc = Process(name, popen)
    threading.Thread(target=proc.drain, name=f"drain-{name}", daemon=True).start()
    if not proc.ready.wait(30) or popen.poll() is not None:
        popen.kill()
        popen.wait(5)
        raise AssertionError(f"webims run {name} did not become ready:\n{proc.output}")
    return proc


def stop(processes: list[Process]) -> None:
    for proc in reversed(processes):
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in reversed(processes):
        try:
            proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("e2e")
    data_dir = tmp / "data"
    names = ("pcscf", "wss", "icscf", "scscf", "diameter", "api", "web")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    config = tmp / "webims.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\n'
        '[sip]\nhost = "127.0.0.1"\n'
        f"[pcscf]\nsip_port = {ports['pcscf']}\nws_port = 0\nwss_port = {ports['wss']}\n"
        f"[icscf]\nsip_port = {ports['icscf']}\n"
        f"[scscf]\nsip_port = {ports['scscf']}\n"
        f"[hss]\ndiameter_port = {ports['diameter']}\napi_port = {ports['api']}\n"
        f'[web]\nport = {ports["web"]}\npublic_url = "https://127.0.0.1:{ports["web"]}"\n'
        f'pcscf_url = "wss://127.0.0.1:{ports["wss"]}/"\n'
    )
    seeded = webims("subscriber", "seed-demo", config=config)
    assert seeded.returncode == 0, seeded.stderr
    processes: list[Process] = []
    sut = System(config, data_dir, ports, processes)
    try:
        for name in ELEMENTS:  # one at a time: the first to need the dev CA makes it
            processes.append(start(name, config))
        got = webims("token", "--user", "user1", "--password", "user1-secret", config=config)
        assert got.returncode == 0, got.stderr + sut.logs()
        sut.token = got.stdout.strip()
        assert sut.token.count(".") == 2, got.stdout  # a JWS
        yield sut
    finally:
        stop(processes)


# -- the WIC: SIP over WSS (RFC 7118) ---------------------------------------------------


class Wic:
    """One WSS connection with subprotocol ``sip``, as a WIC opens it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.host = f"{secrets.token_hex(5)}.invalid"
        self.instance = f"urn:uuid:{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}"
        self.call_id = f"{secrets.token_hex(8)}@{self.host}"
        self.cseq = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, sut: System) -> AsyncIterator[Wic]:
        ctx = ssl.create_default_context(cafile=str(sut.ca))
        url = f"wss://127.0.0.1:{sut.ports['wss']}/"
        async with websockets.connect(url, subprotocols=["sip"], ssl=ctx) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "sip"
            yield cls(ws)

    def register(self, impu: str, authorization: str, expires: int = 600) -> bytes:
        self.cseq += 1
        n = next(_n)
        return (
            "REGISTER sip:home1.net SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK-wic{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{impu}>;tag=w{n}\r\n"
            f"To: <{impu}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <sip:wic@{self.host};transport=ws>"
            f';+sip.instance="<{self.instance}>";reg-id=1;expires={expires}\r\n'
            f"Expires: {expires}\r\n"
            "Supported: path, outbound, gruu\r\n"
            f"Authorization: {authorization}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    async def next_request(self) -> Request:
        """Wait for a request from the network; answer it 200 and return it."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), STEP)
            msg = parse_message(frame.encode() if isinstance(frame, str) else frame)
            if isinstance(msg, Request):
                ok = make_response(msg, 200, to_tag=new_tag())
                await self.ws.send(ok.serialize().decode())
                return msg

    async def send(self, request: bytes) -> Response:
        """Send a request; its final response.  Requests from the network
        meanwhile (a NOTIFY, say) are answered 200."""
        await self.ws.send(request.decode())
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), STEP)
            msg = parse_message(frame.encode() if isinstance(frame, str) else frame)
            if isinstance(msg, Request):
                if msg.method != "ACK":
                    await self.ws.send(
                        make_response(msg, 200, to_tag=new_tag()).serialize().decode()
                    )
                continue
            if msg.status >= 200:
                return msg


# -- an untrusted Mw client ----------------------------------------------------------------


async def send_tcp(port: int, request: bytes) -> Response:
    """``request`` over a new TCP connection from an ephemeral port; the final response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framer = StreamFramer()
    try:
        writer.write(request)
        await writer.drain()
        while True:
            while (raw := framer.next_message()) is not None:
                if isinstance(raw, KeepAlive):
                    continue
                msg = parse_message(raw)
                if isinstance(msg, Response) and msg.status >= 200:
                    return msg
            data = await asyncio.wait_for(reader.read(65536), STEP)
            assert data, "connection closed without a final response"
            framer.feed(data)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def forged_register(port: int, element: str, impu: str, impi: str) -> bytes:
    """An ``auth-done`` REGISTER as the eP-CSCF would forward it, sent by someone else."""
    local = f"127.0.0.1:{port}"
    n = next(_n)
    return (
        "REGISTER sip:home1.net SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK-forged{n}\r\n"
        "Max-Forwards: 69\r\n"
        f"Route: <sip:{element}.home1.net:{port};transport=tcp;lr>\r\n"
        f"From: <{impu}>;tag=x{n}\r\n"
        f"To: <{impu}>\r\n"
        f"Call-ID: forged-{n}@{local}\r\n"
        f"CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:attacker@{local};transport=tcp>;expires=600\r\n"
        f"Path: <sip:x@{local};transport=tcp;lr>\r\n"
        "Require: path\r\nSupported: path\r\n"
        'P-Visited-Network-ID: "home1.net"\r\n'
        f'Authorization: Digest username="{impi}", realm="home1.net", uri="sip:home1.net", '
        'nonce="", response="", integrity-protected="auth-done"\r\n'
        "Content-Length: 0\r\n\r\n"
    ).encode()


# -- the HSS's view --------------------------------------------------------------------------


async def subscriber(sut: System, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=STEP) as http:
        got = await http.get(
            f"http://127.0.0.1:{sut.ports['api']}/subscribers/{name}",
            headers={"X-API-Key": sut.api_key()},
        )
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def states(view: dict[str, Any]) -> dict[str, str]:
    return {p["impu"]: p["state"] for p in view["publics"]}


# -- the tests --------------------------------------------------------------------------------


async def test_s8_38_s9_5_s9_7_register_over_wss_then_deregister(system: System) -> None:
    """The seed flow end to end (Annex A.3.2), then the user's deregistration."""
    async with Wic.connect(system) as wic:
        ok = await wic.send(wic.register(USER1_IMPU, f"Bearer {system.token}"))
        assert ok.status == 200, f"{ok.status} {ok.reason}\n{system.logs()}"
        associated = [str(a.uri) for a in ok.p_associated_uri]
        assert associated and associated[0] == USER1_IMPU
        assert [str(r) for r in ok.service_routes] == [
            f"<sip:orig@scscf.home1.net:{system.ports['scscf']};transport=tcp;lr>"
        ]
        path = ok.paths[0].sip_uri
        assert (path.host, path.port, path.lr) == ("pcscf.home1.net", system.ports["pcscf"], True)
        (contact,) = ok.contacts
        assert contact.params.get("+sip.instance") == f"<{wic.instance}>"
        assert contact.params.get("reg-id") == "1"
        assert 0 < int(contact.params.get("expires") or 0) <= 600
        assert "outbound" in ok.require
        assert "P-Charging-Vector" not in ok.headers  # removed by the eP-CSCF (§8 24)
        assert "P-Charging-Function-Addresses" not in ok.headers

        user1 = await subscriber(system, "user1")
        assert states(user1)[USER1_IMPU] == "registered", user1
        assert user1["assignment"]["server_name"] == system.server_name

        bye = await wic.send(wic.register(USER1_IMPU, f"Bearer {system.token}", expires=0))
        assert bye.status == 200, f"{bye.status} {bye.reason}\n{system.logs()}"
    user1 = await subscriber(system, "user1")
    assert states(user1)[USER1_IMPU] != "registered", user1


async def test_s8_16_bad_token_gets_401_and_changes_nothing(system: System) -> None:
    before = await subscriber(system, "user1")
    forged = system.token[:-4] + ("AAAA" if not system.token.endswith("AAAA") else "BBBB")
    async with Wic.connect(system) as wic:
        for credentials in (f"Bearer {forged}", "Bearer not-a-token"):
            resp = await wic.send(wic.register(USER1_IMPU, credentials))
            assert resp.status == 401, f"{credentials[:20]}…: {resp.status} {resp.reason}"
            challenge = resp.headers.get("WWW-Authenticate") or ""
            assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert await subscriber(system, "user1") == before


async def test_s8_27_s8_32_auth_done_from_an_untrusted_socket_gets_403(system: System) -> None:
    """A REGISTER claiming ``auth-done`` straight to the I-CSCF and to the
    S-CSCF, from a port neither trusts: 403 from both, no registration."""
    before = {name: await subscriber(system, name) for name in ("user1", "user2")}
    for element in ("icscf", "scscf"):
        port = system.ports[element]
        resp = await send_tcp(port, forged_register(port, element, USER2_IMPU, USER2_IMPI))
        assert resp.status == 403, f"{element}: {resp.status} {resp.reason}"
    after = {name: await subscriber(system, name) for name in ("user1", "user2")}
    assert after == before
    assert states(after["user2"])[USER2_IMPU] != "registered"


async def test_request_for_a_registered_wic_arrives_over_its_websocket(system: System) -> None:
    """Terminating routing through every element: a MESSAGE for the IMPU
    enters at the I-CSCF (LIR), goes to the S-CSCF that serves the user, then
    along the registration's Path to the eP-CSCF and down the WIC's WSS."""
    async with Wic.connect(system) as wic:
        ok = await wic.send(wic.register(USER1_IMPU, f"Bearer {system.token}"))
        assert ok.status == 200, f"{ok.status} {ok.reason}\n{system.logs()}"
        n = next(_n)
        message = (
            f"MESSAGE {USER1_IMPU} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK-msg{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{USER2_IMPU}>;tag=m{n}\r\n"
            f"To: <{USER1_IMPU}>\r\n"
            f"Call-ID: msg-{n}@127.0.0.1\r\n"
            "CSeq: 1 MESSAGE\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length: 5\r\n\r\nhello"
        ).encode()
        answer, arrived = await asyncio.gather(
            send_tcp(system.ports["icscf"], message), wic.next_request()
        )
        assert arrived.method == "MESSAGE" and arrived.body == b"hello"
        assert arrived.headers.get("Call-ID") == f"msg-{n}@127.0.0.1"
        assert answer.status == 200, f"{answer.status} {answer.reason}"
        bye = await wic.send(wic.register(USER1_IMPU, f"Bearer {system.token}", expires=0))
        assert bye.status == 200
