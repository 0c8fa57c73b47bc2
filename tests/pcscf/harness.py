"""The eP-CSCF on real sockets, between WICs over WSS/WS and a stand-in core over TCP.

* :class:`FakeCore` is a TCP SIP listener standing in for the I-CSCF (REGISTER) and the
  S-CSCF (the Service-Route it hands out names the same listener): it records every
  request, answers REGISTER 200 OK with Path, Service-Route, P-Associated-URI, Contact and
  the charging headers (or a chosen failure), SUBSCRIBE 200 followed by a full-state
  NOTIFY, anything else 200, and can send requests to the eP-CSCF on the connection
  the eP-CSCF opened (terminating requests, NOTIFYs).
* :class:`Wic` is a ``websockets`` client with subprotocol ``sip`` that builds the
  REGISTER of SPEC §7 (3) and reads what the eP-CSCF sends back.
* Tokens come from the real WAF of ``tests.waf`` (HTTP, a FakeClock the validator shares).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from webims.ims.element import Cscf
from webims.pcscf.app import EpCscf
from webims.sip import Request, Response, make_response, new_tag, parse_message
from webims.sip.framing import KeepAlive, StreamFramer

SIP = [Subprotocol("sip")]
TIMEOUT = 5.0
USER1_IMPU = "sip:user1_public1@home1.net"
USER1_TEL = "tel:+15551234567"
USER2_IMPU = "sip:user2_public1@home1.net"

_n = itertools.count(1)


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def reginfo(aor: str, state: str, contact: str, contact_state: str, event: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        '<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="full">'
        f'<registration aor="{aor}" id="r1" state="{state}">'
        f'<contact id="c1" state="{contact_state}" event="{event}"><uri>{contact}</uri></contact>'
        "</registration></reginfo>"
    ).encode()


@dataclass
class FakeCore:
    port: int
    #: Status for REGISTER (200, or a failure to forward to the WIC).
    register_status: int = 200
    #: P-Associated-URI of a 200 to REGISTER; None: the To URI alone.
    associated: list[str] | None = None
    #: Send a full-state NOTIFY after answering a SUBSCRIBE.
    notify: bool = True
    #: Expires granted to a SUBSCRIBE.
    sub_expires: int = 3600
    received: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def service_route(self) -> str:
        return f"<sip:orig@127.0.0.1:{self.port};transport=tcp;lr>"

    def methods(self) -> list[str]:
        return [r.method for r in self.received]

    def of(self, method: str) -> list[Request]:
        return [r for r in self.received if r.method == method]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def send(self, data: bytes) -> None:
        """Write a message on the newest connection from the eP-CSCF."""
        self.writers[-1].write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                framer.feed(data)
                while (raw := framer.next_message()) is not None:
                    if isinstance(raw, KeepAlive):
                        continue
                    msg = parse_message(raw)
                    if isinstance(msg, Response):
                        self.responses.append(msg)
                    else:
                        self.received.append(msg)
                        for out in self.answer(msg):
                            writer.write(out)

    def answer(self, req: Request) -> list[bytes]:
        if req.method == "ACK":
            return []
        if req.method == "REGISTER":
            return [self._register(req)]
        if req.method == "SUBSCRIBE":
            tag = req.to_tag or new_tag()
            extra = [
                ("Expires", str(self.sub_expires)),
                ("Contact", f"<sip:127.0.0.1:{self.port};transport=tcp>"),
            ]
            ok = make_response(req, 200, to_tag=tag, extra=extra)
            out = [ok.serialize()]
            if self.notify:
                out.append(self.notify_for(req, tag, "active", "active", "registered"))
            return out
        # A UAS copies Record-Route into its answers to a dialog-forming request
        # (RFC 3261 §12.1.1).
        copied = req.headers.get_all("Record-Route") if req.method in ("INVITE", "REFER") else []
        extra = [("Record-Route", value) for value in copied]
        return [make_response(req, 200, to_tag=new_tag(), extra=extra).serialize()]

    def _register(self, req: Request) -> bytes:
        if self.register_status != 200:
            extra = [("P-Charging-Vector", 'icid-value="core-1"')]
            return make_response(
                req, self.register_status, to_tag=new_tag(), extra=extra
            ).serialize()
        to = str(req.to.uri)
        associated = self.associated or [to]
        extra = [(name, value) for name, value in req.headers if name.lower() == "path"]
        extra += [
            ("Service-Route", self.service_route),
            ("P-Associated-URI", ", ".join(f"<{a}>" for a in associated)),
        ]
        dereg = req.expires == 0 or all(c.params.get("expires") == "0" for c in req.contacts)
        if not dereg:
            for contact in req.contacts:
                c = str(contact)
                if "expires=" not in c:
                    c += f";expires={req.expires or 3600}"
                extra.append(("Contact", c))
            extra.append(("Require", "outbound"))
        extra += [
            ("P-Charging-Function-Addresses", "ccf=192.0.2.10"),
            ("P-Charging-Vector", 'icid-value="core-icid";orig-ioi=home1.net'),
        ]
        return make_response(req, 200, to_tag=new_tag(), extra=extra).serialize()

    def notify_for(
        self,
        subscribe: Request,
        to_tag: str,
        state: str,
        contact_state: str,
        event: str,
        *,
        contact: str = "sip:x@y.invalid;transport=ws",
        terminated: bool = False,
    ) -> bytes:
        """A NOTIFY on the subscription ``subscribe`` created (as the notifier)."""
        n = next(_n)
        body = reginfo(str(subscribe.to.uri), state, contact, contact_state, event)
        sub_state = "terminated;reason=noresource" if terminated else "active;expires=3600"
        contact_uri = subscribe.contacts[0].uri
        return (
            f"NOTIFY {contact_uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{self.port};branch=z9hG4bK-n{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{subscribe.to.uri}>;tag={to_tag}\r\n"
            f"To: {subscribe.headers.get('From')}\r\n"
            f"Call-ID: {subscribe.call_id}\r\n"
            f"CSeq: {n} NOTIFY\r\n"
            f"Contact: <sip:127.0.0.1:{self.port};transport=tcp>\r\n"
            "Event: reg\r\n"
            f"Subscription-State: {sub_state}\r\n"
            "Content-Type: application/reginfo+xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def next_response(self, count: int) -> Response:
        await wait_until(lambda: len(self.responses) >= count)
        return self.responses[count - 1]


class Wic:
    """A browser WIC's SIP over WebSocket, as far as these tests need it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.host = uuid.uuid4().hex[:10] + ".invalid"
        self.instance = f"<urn:uuid:{uuid.uuid4()}>"
        self.call_id = f"{uuid.uuid4().hex}@{self.host}"
        self.cseq = 0
        self.requests: list[Request] = []

    @property
    def contact_uri(self) -> str:
        return f"sip:u1@{self.host};transport=ws"

    def register_message(
        self,
        authorization: str | None,
        *,
        impu: str = USER1_IMPU,
        expires: int = 3600,
        extra: str = "",
        instance: str | None = None,
    ) -> str:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization is not None else ""
        return (
            "REGISTER sip:home1.net SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK-r{next(_n)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{impu}>;tag=f{self.cseq}\r\n"
            f"To: <{impu}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f'Contact: <{self.contact_uri}>;+sip.instance="{instance or self.instance}"'
            f";reg-id=1;expires={expires}\r\n"
            "Supported: path, outbound, gruu\r\n"
            f"{auth}{extra}"
            "Content-Length: 0\r\n\r\n"
        )

    async def register(self, token: str | None, **kw: object) -> Response:
        auth = f"Bearer {token}" if token is not None else None
        await self.ws.send(self.register_message(auth, **kw))  # type: ignore[arg-type]
        return await self.response()

    def request_message(
        self,
        method: str = "MESSAGE",
        *,
        from_: str = USER1_IMPU,
        to: str = USER2_IMPU,
        extra: str = "",
        to_tag: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
        uri: str | None = None,
    ) -> str:
        """A request of this WIC; ``uri``: its Request-URI when not ``to``."""
        n = next(_n)
        tag = f";tag={to_tag}" if to_tag else ""
        body = "hello" if method == "MESSAGE" else ""
        ctype = "Content-Type: text/plain\r\n" if body else ""
        return (
            f"{method} {uri or to} SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK-m{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{from_}>;tag={from_tag or f'm{n}'}\r\n"
            f"To: <{to}>{tag}\r\n"
            f"Call-ID: {call_id or f'm{n}@{self.host}'}\r\n"
            f"CSeq: 1 {method}\r\n"
            f"Contact: <{self.contact_uri};ob>\r\n"
            f"{ctype}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )

    async def send(self, text: str) -> Response:
        await self.ws.send(text)
        return await self.response()

    async def response(self) -> Response:
        """The next final response (requests met on the way are kept)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                msg = parse_message(await self.ws.recv(decode=False))
                if isinstance(msg, Request):
                    self.requests.append(msg)
                elif msg.status >= 200:
                    return msg

    async def request(self) -> Request:
        """The next request the eP-CSCF sends this WIC."""
        async with asyncio.timeout(TIMEOUT):
            while not self.requests:
                msg = parse_message(await self.ws.recv(decode=False))
                if isinstance(msg, Request):
                    self.requests.append(msg)
            return self.requests.pop(0)

    async def answer(self, req: Request, status: int = 200) -> None:
        await self.ws.send(make_response(req, status, to_tag=new_tag()).serialize().decode())


@dataclass
class Deployment:
    cscf: Cscf
    core: FakeCore
    ca: ssl.SSLContext
    wss_port: int
    ws_port: int
    sip_port: int

    @property
    def app(self) -> EpCscf:
        app = self.cscf.app
        assert isinstance(app, EpCscf)
        return app

    @contextlib.asynccontextmanager
    async def wic(self, secure: bool = True) -> AsyncIterator[Wic]:
        if secure:
            url, ssl_ctx = f"wss://127.0.0.1:{self.wss_port}/", self.ca
        else:
            url, ssl_ctx = f"ws://127.0.0.1:{self.ws_port}/", None
        async with connect(url, subprotocols=SIP, ssl=ssl_ctx, open_timeout=TIMEOUT) as ws:
            assert ws.subprotocol == "sip"
            yield Wic(ws)
