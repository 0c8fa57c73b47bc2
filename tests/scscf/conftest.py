"""The S-CSCF's tests: the real HSS (in this process, a temporary SQLite store
with the demo subscribers and a few more), the S-CSCF as ``webims run scscf``
makes it, and SIP peers over real TCP connections, one from a port the
S-CSCF trusts (``[scscf] trusted_peers``) and one from a port it does not."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port
from webims.config import Settings
from webims.diameter.cx import CxClient, MaAnswer, SaAnswer
from webims.diameter.cxdefs import ServerAssignmentType
from webims.hss.element import HssElement, HssOptions
from webims.hss.provisioning import NewSubscriber, seed_demo
from webims.scscf.element import ScscfElement, make
from webims.sip.message import Request, Response, parse_message

USER1_IMPI = "user1_private@home1.net"
USER1_IMPU = "sip:user1_public1@home1.net"
USER2_IMPI = "user2_private@home1.net"
USER2_IMPU = "sip:user2_public1@home1.net"
WAF = "webrtc_authserver1@thirdparty.net"
#: A subscriber with a three-IMPU implicit registration set, one of them barred.
IRS_IMPI = "user3_private@home1.net"
IRS_IMPUS = ["sip:user3_public1@home1.net", "sip:user3_public2@home1.net", "tel:+15551230003"]
IRS_BARRED = "sip:user3_barred@home1.net"
#: A subscriber whose Allowed-WAF-WWSF-Identities does not list the demo WAF.
OTHER_WAF_IMPI = "user4_private@home1.net"
OTHER_WAF_IMPU = "sip:user4_public1@home1.net"
#: A subscriber with no allowed list provisioned.
NO_LIST_IMPI = "user5_private@home1.net"
NO_LIST_IMPU = "sip:user5_public1@home1.net"
BARRED_WAF = "evil_authserver@thirdparty.net"
CCF = "aaa://ccf.home1.net"
ECF = "aaa://ecf.home1.net"

TIMEOUT = 5.0


EXTRA_SUBSCRIBERS = (
    NewSubscriber(
        name="user3",
        password="user3-secret",
        impi=IRS_IMPI,
        impus=IRS_IMPUS,
        barred_impus=[IRS_BARRED],
        allowed_waf=[WAF],
    ),
    NewSubscriber(
        name="user4",
        password="user4-secret",
        impi=OTHER_WAF_IMPI,
        impus=[OTHER_WAF_IMPU],
        allowed_waf=["some_other_waf@elsewhere.net"],
    ),
    NewSubscriber(
        name="user5",
        password="user5-secret",
        impi=NO_LIST_IMPI,
        impus=[NO_LIST_IMPU],
    ),
)


@pytest.fixture
async def hss(tmp_path: Path) -> AsyncIterator[HssElement]:
    element = HssElement(
        HssOptions(
            store=str(tmp_path / "hss.sqlite3"),
            identity="hss.home1.net",
            realm="home1.net",
            host="127.0.0.1",
            diameter_port=0,
            api_port=0,
            api_key=None,
            data_dir=tmp_path,
            home_networks=frozenset({"home1.net"}),
        )
    )
    await element.start()
    await seed_demo(element.raw_store)
    for sub in EXTRA_SUBSCRIBERS:
        subscriber = sub.subscriber()
        if sub.impi == NO_LIST_IMPI:  # with Charging-Information
            subscriber = replace(subscriber, ccf=(CCF,), ecf=(ECF,))
        await element.raw_store.add(subscriber)
    try:
        yield element
    finally:
        await element.close()


# -- Cx requests the S-CSCF makes ------------------------------------------------------


@dataclass
class CxSpy:
    """Records the MARs and SARs the S-CSCF sends (they still go to the HSS)."""

    sars: list[tuple[tuple[str, ...], ServerAssignmentType, str | None, bool]] = field(
        default_factory=list
    )
    mars: list[tuple[str, str]] = field(default_factory=list)

    def install(self, client: CxClient) -> None:
        sar, mar = client.sar, client.mar

        async def spy_sar(
            impus: Any, server_name: str, kind: ServerAssignmentType, **kw: Any
        ) -> SaAnswer:
            self.sars.append(
                (tuple(impus), kind, kw.get("impi"), bool(kw.get("user_data_available")))
            )
            return await sar(impus, server_name, kind, **kw)

        async def spy_mar(impi: str, impu: str, server_name: str, **kw: Any) -> MaAnswer:
            self.mars.append((impi, impu))
            return await mar(impi, impu, server_name, **kw)

        client.sar = spy_sar  # type: ignore[method-assign,assignment]
        client.mar = spy_mar  # type: ignore[method-assign]

    def kinds(self) -> list[ServerAssignmentType]:
        return [k for _, k, _, _ in self.sars]


# -- SIP peers ------------------------------------------------------------------------------


_branches = itertools.count(1)


class SipPeer:
    """A SIP element on a TCP connection to the S-CSCF, from a fixed local port.

    Responses and requests it receives are queued; NOTIFYs are answered 200
    unless ``answer_notify`` says otherwise.
    """

    def __init__(self, local_port: int, remote_port: int) -> None:
        self.local_port = local_port
        self.remote_port = remote_port
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.requests: asyncio.Queue[Request] = asyncio.Queue()
        self.answer_notify: int | None = 200
        self.last_sent = b""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.local_port))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.remote_port))
        self._reader, self._writer = await asyncio.open_connection(sock=sock)
        self._task = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()

    async def _read(self) -> None:
        assert self._reader is not None
        reader = self._reader
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            msg = parse_message(head + body)
            if isinstance(msg, Response):
                await self.responses.put(msg)
            else:
                if msg.method == "NOTIFY" and self.answer_notify is not None:
                    self.reply(msg, self.answer_notify)
                await self.requests.put(msg)

    def send(self, data: bytes | str) -> None:
        assert self._writer is not None
        raw = data.encode() if isinstance(data, str) else data
        self.last_sent = raw
        self._writer.write(raw)

    def reply(self, req: Request, status: int, reason: str = "OK") -> None:
        lines = [f"SIP/2.0 {status} {reason}"]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in req.headers.get_all(name):
                if name == "To" and "tag=" not in value:
                    value += ";tag=peer1"
                lines.append(f"{name}: {value}")
        lines.append("Content-Length: 0")
        self.send("\r\n".join(lines) + "\r\n\r\n")

    def via(self) -> str:
        return f"SIP/2.0/TCP 127.0.0.1:{self.local_port};branch=z9hG4bK-t{next(_branches)}"

    async def response(self, timeout: float = TIMEOUT) -> Response:
        while True:
            resp = await asyncio.wait_for(self.responses.get(), timeout)
            if resp.status >= 200:
                return resp

    async def request(self, method: str = "NOTIFY", timeout: float = TIMEOUT) -> Request:
        while True:
            req = await asyncio.wait_for(self.requests.get(), timeout)
            if req.method == method:
                return req

    async def no_request(self, wait: float = 0.3) -> None:
        try:
            req = await asyncio.wait_for(self.requests.get(), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {req.method}")


@dataclass
class Deployment:
    hss: HssElement
    scscf: ScscfElement
    settings: Settings
    trusted: SipPeer
    untrusted: SipPeer
    spy: CxSpy
    port: int

    @property
    def route(self) -> str:
        return f"<sip:scscf.home1.net:{self.port};transport=tcp;lr>"

    @property
    def orig_route(self) -> str:
        return f"<sip:orig@scscf.home1.net:{self.port};transport=tcp;lr>"


StartScscf = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def start_scscf(hss: HssElement, tmp_path: Path) -> AsyncIterator[StartScscf]:
    running: list[Deployment] = []

    async def start(**scscf: Any) -> Deployment:
        port, trusted_port, untrusted_port = free_port(), free_port(), free_port()
        while len({port, trusted_port, untrusted_port}) < 3:
            trusted_port, untrusted_port = free_port(), free_port()
        section: dict[str, Any] = {
            "sip_port": port,
            "trusted_peers": [f"127.0.0.1:{trusted_port}"],
            "cx": {"identity": "scscf.home1.net", "timeout": 2.0},
        }
        section.update(scscf)
        settings = Settings.model_validate(
            {
                "data_dir": tmp_path / "data",
                "sip": {"host": "127.0.0.1"},
                "scscf": section,
                # The "I-CSCF" is the trusted peer: originating requests come back to it.
                "icscf": {"sip_port": trusted_port},
                "hss": {"diameter_port": hss.diameter_port, "api_port": 0},
            }
        )
        element = make(settings)
        await element.start()
        spy = CxSpy()
        assert element.cx is not None
        spy.install(element.cx)
        trusted = SipPeer(trusted_port, port)
        untrusted = SipPeer(untrusted_port, port)
        await trusted.connect()
        await untrusted.connect()
        dep = Deployment(hss, element, settings, trusted, untrusted, spy, port)
        running.append(dep)
        return dep

    try:
        yield start
    finally:
        for dep in running:
            await dep.trusted.close()
            await dep.untrusted.close()
            await dep.scscf.close()


@pytest.fixture
async def deployment(start_scscf: StartScscf) -> Deployment:
    return await start_scscf()
