"""The I-CSCF on real sockets between a real HSS and a fake S-CSCF.

* The HSS runs in this process (:class:`~webims.hss.element.HssElement`) on
  a free port with a temporary SQLite store and the demo subscribers.  Its
  UAR and LIR handlers are wrapped so that a test reads each request as the
  HSS decoded it off the wire.
* :class:`FakeScscf` is a TCP SIP listener that records what reaches it and
  answers each request with a chosen status.
* :class:`MwPeer` is a TCP SIP connection to the I-CSCF from a chosen local
  port: the trusted eP-CSCF's, or any other.
* The I-CSCF itself is ``webims.icscf.element.make(settings)``, started as
  ``webims run icscf`` starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ports import free_port, free_ports
from webims.config import (
    CxClientSettings,
    HssSettings,
    IcscfSettings,
    PcscfSettings,
    ScscfSettings,
    Settings,
    SipSettings,
)
from webims.diameter.base import Identity
from webims.diameter.codec import AppMessage
from webims.diameter.cx import CxClient, CxMessage
from webims.diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP, CxCommand, ServerAssignmentType
from webims.diameter.node import DiameterNode, NodeConfig, Peer
from webims.hss.element import HssElement, HssOptions
from webims.hss.provisioning import seed_demo
from webims.icscf.element import make
from webims.ims.element import Cscf
from webims.sip import Request, Response, make_response, new_tag, parse_message
from webims.sip.framing import KeepAlive, StreamFramer

USER1_IMPI = "user1_private@home1.net"
USER1_IMPU = "sip:user1_public1@home1.net"
USER2_IMPI = "user2_private@home1.net"
TIMEOUT = 5.0

_branches = itertools.count(1)


async def read_messages(
    reader: asyncio.StreamReader, framer: StreamFramer
) -> AsyncIterator[Request | Response]:
    while True:
        while (raw := framer.next_message()) is not None:
            if not isinstance(raw, KeepAlive):
                yield parse_message(raw)
        data = await reader.read(65536)
        if not data:
            return
        framer.feed(data)


# -- the HSS -------------------------------------------------------------------------


@dataclass
class Hss:
    element: HssElement
    port: int
    #: Every UAR / LIR the HSS received, decoded.
    uars: list[CxMessage] = field(default_factory=list)
    lirs: list[CxMessage] = field(default_factory=list)
    #: Seconds the HSS waits before answering a UAR (to provoke a timeout).
    uar_delay: float = 0.0

    def tap(self) -> None:
        cx = self.element.cx
        node = self.element.node

        async def on_uar(request: AppMessage, peer: Peer) -> AppMessage:
            self.uars.append(CxMessage(request))
            if self.uar_delay:
                await asyncio.sleep(self.uar_delay)
            return await cx.on_uar(request, peer)

        async def on_lir(request: AppMessage, peer: Peer) -> AppMessage:
            self.lirs.append(CxMessage(request))
            return await cx.on_lir(request, peer)

        node.add_handler(CX_APPLICATION_ID, CxCommand.USER_AUTHORIZATION, on_uar)
        node.add_handler(CX_APPLICATION_ID, CxCommand.LOCATION_INFO, on_lir)


@pytest.fixture
async def hss(tmp_path: Path) -> AsyncIterator[Hss]:
    port = free_port()
    element = HssElement(
        HssOptions(
            store=str(tmp_path / "hss.sqlite3"),
            identity="hss.home1.net",
            realm="home1.net",
            host="127.0.0.1",
            diameter_port=port,
            api_port=0,
            api_key=None,
            data_dir=tmp_path,
            home_networks=frozenset({"home1.net"}),
        )
    )
    await element.start()
    await seed_demo(element.raw_store)
    server = Hss(element, port)
    server.tap()
    yield server
    await element.close()


@pytest.fixture
async def scscf_cx(hss: Hss) -> AsyncIterator[CxClient]:
    """A Cx client playing an S-CSCF, to put a user in the state a test needs
    (SAR REGISTRATION, deregistration) as a real S-CSCF would."""
    node = DiameterNode(
        Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),)),
        NodeConfig(reconnect_min=0.05, request_timeout=3),
    )
    node.add_peer("hss.home1.net", "127.0.0.1", hss.port)
    client = CxClient(node, destination_realm="home1.net", destination_host="hss.home1.net")
    await node.wait_open("hss.home1.net", TIMEOUT)
    yield client
    await node.stop()


async def register_at_hss(cx: CxClient, server_name: str) -> None:
    saa = await cx.sar(
        [USER1_IMPU], server_name, ServerAssignmentType.REGISTRATION, impi=USER1_IMPI
    )
    assert saa.result.success, saa.result


# -- the fake S-CSCF -------------------------------------------------------------------


class FakeScscf:
    """A TCP SIP listener that answers every request (ACKs excepted) with
    ``status`` (0: never) and keeps what it received."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port = port
        self.status = status
        self.received: list[Request] = []
        self.peers: list[tuple[str, int]] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Event()

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport=tcp"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[:2])
        try:
            async for msg in read_messages(reader, StreamFramer()):
                if not isinstance(msg, Request) or msg.method == "ACK":
                    continue
                self.received.append(msg)
                self._arrived.set()
                if not self.status:
                    continue  # a silent S-CSCF
                extra = [("Contact", f"<sip:scscf@127.0.0.1:{self.port};transport=tcp>")]
                resp = make_response(msg, self.status, to_tag=new_tag(), extra=extra)
                writer.write(resp.serialize())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def next_request(self, timeout: float = TIMEOUT) -> Request:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.received:
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, "nothing reached the S-CSCF"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return self.received.pop(0)


# -- the Mw peer (an eP-CSCF, trusted or not) -------------------------------------------


class MwPeer:
    """One TCP connection to the I-CSCF from ``local_port`` (0: any)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.port = int(writer.get_extra_info("sockname")[1])
        self._messages = read_messages(reader, StreamFramer())

    @classmethod
    async def connect(cls, port: int, local_port: int = 0) -> MwPeer:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_port))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def send(self, request: bytes) -> Response:
        """Send ``request``; its final response (provisional ones skipped)."""
        self.writer.write(request)
        await self.writer.drain()
        while True:
            msg = await asyncio.wait_for(anext(self._messages), TIMEOUT)
            assert isinstance(msg, Response)
            if msg.status >= 200:
                return msg


def register(
    icscf_port: int,
    peer_port: int,
    *,
    impu: str = USER1_IMPU,
    impi: str | None = USER1_IMPI,
    visited: str | None = "home1.net",
    expires: str = "",
    contact_expires: str = "3600",
) -> bytes:
    """A REGISTER as the eP-CSCF forwards it on Mw (SPEC §7 (4))."""
    n = next(_branches)
    lines = [
        "REGISTER sip:home1.net SIP/2.0",
        f"Via: SIP/2.0/TCP pcscf.home1.net:{peer_port};branch=z9hG4bK-pc{n}",
        "Via: SIP/2.0/WSS k3j9x2.invalid;received=198.51.100.7;rport=54321;branch=z9hG4bK-w1",
        "Max-Forwards: 69",
        f"Route: <sip:icscf.home1.net:{icscf_port};transport=tcp;lr>",
        f"From: <{impu}>;tag=f{n}",
        f"To: <{impu}>",
        f"Call-ID: reg-{n}@k3j9x2.invalid",
        f"CSeq: {n} REGISTER",
        "Contact: <sip:u8s7@k3j9x2.invalid;transport=ws>"
        ';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1'
        + (f";expires={contact_expires}" if contact_expires else ""),
        f"Path: <sip:ft{n}@pcscf.home1.net:{peer_port};transport=tcp;lr;ob>",
        "Require: path",
        "Supported: path, outbound",
        f'P-Charging-Vector: icid-value="icid-{n}";orig-ioi=home1.net',
    ]
    if visited is not None:
        lines.append(f'P-Visited-Network-ID: "{visited}"')
    if expires:
        lines.append(f"Expires: {expires}")
    if impi is not None:
        lines.append(
            f'Authorization: Digest username="{impi}", realm="home1.net", uri="sip:home1.net", '
            'nonce="", response="", integrity-protected="auth-done", '
            'authorization-entity="webrtc_authserver1@thirdparty.net"'
        )
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def request(
    method: str,
    uri: str,
    icscf_port: int,
    *,
    route: list[str] | None = None,
    to_tag: str | None = None,
) -> bytes:
    """An initial (or, with ``to_tag``, in-dialog) request arriving at the I-CSCF."""
    n = next(_branches)
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TCP scscf.home1.net;branch=z9hG4bK-rq{n}",
        "Max-Forwards: 68",
        *(f"Route: {r}" for r in route or [f"<sip:icscf.home1.net:{icscf_port};lr>"]),
        f"From: <sip:user2_public1@home1.net>;tag=c{n}",
        f"To: {to}",
        f"Call-ID: call-{n}@home1.net",
        f"CSeq: 1 {method}",
        "Contact: <sip:user2@192.0.2.5;transport=tcp>",
        "P-Asserted-Identity: <sip:user2_public1@home1.net>",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


# -- the I-CSCF ---------------------------------------------------------------------------


@dataclass
class Deployment:
    """A started I-CSCF, its HSS, its S-CSCFs and an eP-CSCF port it trusts."""

    icscf: Cscf
    port: int
    trusted_port: int
    hss: Hss
    scscfs: list[FakeScscf]

    @property
    def scscf(self) -> FakeScscf:
        return self.scscfs[0]

    async def trusted(self) -> MwPeer:
        return await MwPeer.connect(self.port, self.trusted_port)

    async def untrusted(self) -> MwPeer:
        return await MwPeer.connect(self.port)


StartIcscf = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def start_icscf(tmp_path: Path, hss: Hss) -> AsyncIterator[StartIcscf]:
    """Start an I-CSCF and fake S-CSCFs: one per list of ``capabilities``
    (``[icscf] scscfs``), or, without, the deployment's own S-CSCF with every
    capability."""
    started: list[tuple[Cscf, list[FakeScscf]]] = []

    async def start(
        capabilities: list[list[int]] | None = None,
        *,
        hss_port: int | None = None,
        cx_timeout: float = 1.0,
        t1: float = 0.5,
    ) -> Deployment:
        icscf_port, trusted_port = free_ports(2)
        fakes = [FakeScscf(p) for p in free_ports(len(capabilities) if capabilities else 1)]
        scscfs = (
            {f.uri: caps for f, caps in zip(fakes, capabilities, strict=True)}
            if capabilities
            else None
        )
        settings = Settings(
            data_dir=tmp_path,
            sip=SipSettings(t1=t1),
            pcscf=PcscfSettings(sip_port=trusted_port, ws_port=0, wss_port=0),
            icscf=IcscfSettings(
                sip_port=icscf_port,
                trusted_peers=[f"127.0.0.1:{trusted_port}"],
                scscfs=scscfs,
                cx=CxClientSettings(identity="icscf.home1.net", timeout=cx_timeout),
            ),
            scscf=ScscfSettings(sip_port=fakes[0].port),
            hss=HssSettings(diameter_port=hss_port or hss.port, api_port=0),
        )
        for f in fakes:
            await f.start()
        icscf = make(settings)
        started.append((icscf, fakes))
        await icscf.start()
        return Deployment(icscf, icscf_port, trusted_port, hss, fakes)

    yield start
    for icscf, fakes in started:
        await icscf.close()
        for f in fakes:
            await f.close()
