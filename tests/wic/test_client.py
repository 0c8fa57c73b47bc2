"""The Python WIC on the wire (webims.wic.client), against a WSS stand-in for
the eP-CSCF: TLS with a dev CA, subprotocol ``sip``, the project's parser on
every frame.  The stand-in answers what each test tells it to and can send
the WIC requests of its own."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request as HttpRequest

from webims.devca import ensure_dev_ca
from webims.sip import Request, Response, parse_message
from webims.sip.checks import make_response, new_tag
from webims.sip.uac import new_branch, new_request
from webims.wic.client import (
    HandshakeRefused,
    TransactionTimeout,
    WicClient,
    WicError,
    client_ssl_context,
)
from webims.wic.registration import UaInstance, refresh_delay

IMPU = "sip:user1_public1@home1.net"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJl"

Answer = Callable[[Request], Response | None]


def ok_200(request: Request, expires: int | None = None) -> Response:
    """A registrar's 200: Contact echoed with expires, P-Associated-URI, Service-Route."""
    granted = request.expires if expires is None else expires
    contacts = [("Contact", f"{v};expires={granted}") for v in request.headers.get_all("Contact")]
    return make_response(
        request,
        200,
        to_tag=new_tag(),
        extra=[
            *contacts,
            ("Path", "<sip:ft1@pcscf.home1.net:5060;transport=tcp;lr;ob>"),
            ("Service-Route", "<sip:orig@scscf.home1.net:5080;transport=tcp;lr>"),
            ("P-Associated-URI", f"<{IMPU}>, <tel:+15551234567>"),
            ("Require", "outbound"),
        ],
    )


@dataclass
class StandIn:
    """A WSS server standing where the eP-CSCF stands."""

    answer: Answer = ok_200
    subprotocols: list[str] | None = field(default_factory=lambda: ["sip"])
    offered: list[str | None] = field(default_factory=list)
    frames: list[str | bytes] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    connections: list[ServerConnection] = field(default_factory=list)
    server: Server | None = None
    port: int = 0

    async def start(self, cert: Path, key: Path) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        def look(_: ServerConnection, request: HttpRequest) -> None:
            self.offered.append(request.headers.get("Sec-WebSocket-Protocol"))

        self.server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            ssl=ctx,
            subprotocols=self.subprotocols,  # type: ignore[arg-type]
            process_request=look,
        )
        self.port = next(iter(self.server.sockets)).getsockname()[1]

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/"

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for frame in ws:
            self.frames.append(frame)
            message = parse_message(frame.encode() if isinstance(frame, str) else frame)
            if isinstance(message, Response):
                self.responses.append(message)
                continue
            self.requests.append(message)
            answer = self.answer(message)
            if answer is not None:
                await ws.send(answer.serialize().decode())

    async def send_request(
        self, method: str, *, call_id: str | None = None, body: bytes = b""
    ) -> Response:
        """Send the WIC a request on its connection; the WIC's answer."""
        before = len(self.responses)
        notify = [("Event", "reg"), ("Subscription-State", "active;expires=600")]
        request = new_request(
            method,
            "sip:ua@k3j9x2.invalid;transport=ws",
            from_=f"<{IMPU}>;tag={new_tag()}",
            to=f"<{IMPU}>;tag={new_tag()}",
            call_id=call_id or new_tag(),
            cseq=1,
            via=f"SIP/2.0/TCP pcscf.home1.net:5060;branch={new_branch()}",
            extra=notify if method == "NOTIFY" else None,
            body=body,
            content_type="application/reginfo+xml" if body else None,
        )
        await self.connections[-1].send(request.serialize().decode())
        async with asyncio.timeout(5):
            while len(self.responses) == before:
                await asyncio.sleep(0.01)
        return self.responses[-1]


@pytest.fixture
async def stand_in(pki: tuple[Path, Path, Path]) -> AsyncIterator[StandIn]:
    peer = StandIn()
    await peer.start(pki[1], pki[2])
    yield peer
    assert peer.server is not None
    peer.server.close()
    await peer.server.wait_closed()


def wic(peer: StandIn, pki: tuple[Path, Path, Path], **kw: object) -> WicClient:
    return WicClient(peer.url, IMPU, TOKEN, ssl_context=client_ssl_context(pki[0]), **kw)  # type: ignore[arg-type]


# -- SPEC §8 6-9 ----------------------------------------------------------------------


async def test_s8_6_offers_sip_and_gets_it_echoed(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    await client.close()
    assert stand_in.offered == ["sip"]


async def test_s8_6_aborts_when_the_server_does_not_echo_sip(
    pki: tuple[Path, Path, Path],
) -> None:
    peer = StandIn(subprotocols=None)
    await peer.start(pki[1], pki[2])
    try:
        client = wic(peer, pki)
        with pytest.raises(HandshakeRefused, match="subprotocol sip"):
            await client.connect()
        assert peer.offered == ["sip"]
        await asyncio.sleep(0.1)
        assert peer.requests == []  # nothing sent on a connection without sip
        assert not client.connected
    finally:
        assert peer.server is not None
        peer.server.close()
        await peer.server.wait_closed()


async def test_an_untrusted_server_certificate_is_refused(
    stand_in: StandIn, tmp_path: Path
) -> None:
    other = ensure_dev_ca(tmp_path).ca_cert
    client = WicClient(stand_in.url, IMPU, TOKEN, ssl_context=client_ssl_context(other))
    with pytest.raises(Exception, match="certificate verify failed"):
        await client.connect()


async def test_s8_7_one_sip_message_per_text_frame(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    await client.register(600)
    await client.deregister()
    await client.close()
    assert len(stand_in.frames) == 2
    for frame in stand_in.frames:
        assert isinstance(frame, str)  # text frame: SIP over WS is UTF-8 here
        head, _, body = frame.partition("\r\n\r\n")
        assert body == ""  # nothing after the one message
        assert "Content-Length: 0" in head
        assert frame.count("SIP/2.0\r\n") == 1


async def test_s8_8_register_has_every_property(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    outcome = await client.register(1800)
    await client.close()
    assert outcome.ok
    (req,) = stand_in.requests
    assert req.method == "REGISTER" and req.uri_text == "sip:home1.net"
    via = req.top_via
    assert via.transport.upper() == "WSS"
    assert via.host.endswith(".invalid") and len(via.host) > len(".invalid") + 4
    assert via.branch and via.branch.startswith("z9hG4bK")
    (contact,) = req.contacts
    assert contact.sip_uri.transport == "ws"
    assert contact.sip_uri.host == via.host  # the same random .invalid host
    instance = contact.params.get("+sip.instance") or ""
    assert instance.startswith("<urn:uuid:") and instance.endswith(">")
    assert f'+sip.instance="{instance}"' in (req.headers.get("Contact") or "")  # quoted
    assert contact.params.get("reg-id") == "1"
    assert {"path", "outbound"} <= set(req.supported)
    assert "gruu" in req.supported
    assert str(req.to.uri) == str(req.from_.uri) == IMPU
    assert req.from_tag and req.to_tag is None
    assert req.headers.get_all("Authorization") == [f"Bearer {TOKEN}"]
    assert req.expires == 1800
    assert req.cseq.method == "REGISTER" and req.max_forwards == 70


async def test_s8_9_bearer_token_in_every_request(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    await client.register(600)
    await client.register()  # a re-registration
    await client.deregister()
    await client.close()
    assert [r.expires for r in stand_in.requests] == [600, 600, 0]
    for req in stand_in.requests:
        assert req.headers.get_all("Authorization") == [f"Bearer {TOKEN}"]


# -- the answers -------------------------------------------------------------------------


async def test_the_200_gives_identities_service_route_and_granted_expiry(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = lambda r: ok_200(r, expires=900)
    client = wic(stand_in, pki)
    await client.connect()
    outcome = await client.register(3600)
    await client.close()
    assert outcome.status == 200
    assert outcome.associated_uris == (IMPU, "tel:+15551234567")
    assert outcome.service_route == ("<sip:orig@scscf.home1.net:5080;transport=tcp;lr>",)
    assert outcome.expires == 900  # the Contact's expires, not what was asked
    assert client.registration == outcome


async def test_401_shows_the_challenge(stand_in: StandIn, pki: tuple[Path, Path, Path]) -> None:
    challenge = (
        'Bearer realm="home1.net", authz_server="https://127.0.0.1:8443", error="invalid_token"'
    )
    stand_in.answer = lambda r: make_response(
        r, 401, to_tag=new_tag(), extra=[("WWW-Authenticate", challenge)]
    )
    client = wic(stand_in, pki)
    await client.connect()
    outcome = await client.register()
    await client.close()
    assert (outcome.status, outcome.ok) == (401, False)
    assert outcome.www_authenticate == (challenge,)
    assert client.registration is None
    assert len(stand_in.requests) == 1  # without a way to renew it, no second try


async def test_401_invalid_token_is_retried_once_with_a_fresh_token(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    def refuse_old(request: Request) -> Response:
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            challenge = 'Bearer realm="home1.net", error="invalid_token"'
            return make_response(
                request, 401, to_tag=new_tag(), extra=[("WWW-Authenticate", challenge)]
            )
        return ok_200(request)

    renewed: list[str] = []

    async def renew() -> str:
        renewed.append("fresh-token")
        return "fresh-token"

    stand_in.answer = refuse_old
    client = wic(stand_in, pki, renew_token=renew)
    await client.connect()
    outcome = await client.register()
    await client.close()
    assert outcome.ok and renewed == ["fresh-token"]
    first, second = stand_in.requests
    assert first.headers.get("Authorization") == f"Bearer {TOKEN}"
    assert second.headers.get("Authorization") == "Bearer fresh-token"  # never the refused one
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id


async def test_403_is_an_outcome_not_an_error(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = lambda r: make_response(r, 403, to_tag=new_tag())
    client = wic(stand_in, pki)
    await client.connect()
    outcome = await client.register()
    await client.close()
    assert (outcome.status, outcome.reason, outcome.ok) == (403, "Forbidden", False)


async def test_deregistration_is_expires_0_on_the_same_flow_and_call_id(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    await client.register(600)
    outcome = await client.deregister()
    await client.close()
    assert outcome.ok and client.registration is None
    reg, dereg = stand_in.requests
    assert len(stand_in.connections) == 1
    assert dereg.expires == 0
    assert dereg.call_id == reg.call_id and dereg.cseq.seq == reg.cseq.seq + 1
    assert dereg.headers.get("Contact") == reg.headers.get("Contact")
    assert dereg.top_via.branch != reg.top_via.branch


async def test_no_final_response_within_timer_f(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = lambda r: make_response(r, 100)  # provisional only
    client = wic(stand_in, pki, timer_f=0.3)
    await client.connect()
    with pytest.raises(TransactionTimeout):
        await client.register()
    await client.close()


# -- re-registration timing, SPEC §9.1 3 --------------------------------------------------


def test_s9_3_refresh_600_s_before_expiry_of_a_long_registration() -> None:
    assert refresh_delay(3600) == 3000
    assert refresh_delay(600000) == 599400
    assert refresh_delay(1201) == 601


def test_s9_3_refresh_at_half_time_of_a_short_registration() -> None:
    assert refresh_delay(1200) == 600
    assert refresh_delay(600) == 300
    assert refresh_delay(2) == 1


async def test_s9_3_re_registers_on_its_own_at_half_time(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = lambda r: ok_200(r, expires=1)  # granted 1 s: refresh after 0.5 s
    client = wic(stand_in, pki)
    await client.connect()
    await client.register(3600)
    client.keep_registered()
    await asyncio.sleep(1.2)
    await client.close()
    assert 2 <= len(stand_in.requests) - 1 <= 3
    assert all(r.expires == 3600 for r in stand_in.requests)
    seqs = [r.cseq.seq for r in stand_in.requests]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# -- requests from the network --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status"),
    [("NOTIFY", 200), ("OPTIONS", 200), ("INVITE", 486), ("MESSAGE", 480), ("BYE", 480)],
)
async def test_answers_requests_from_the_network(
    stand_in: StandIn, pki: tuple[Path, Path, Path], method: str, status: int
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    await client.register()
    answer = await stand_in.send_request(method)
    await client.close()
    assert answer.status == status
    assert answer.cseq.method == method and answer.to_tag


# -- the reg event subscription (TS 24.229 5.1.1.3) ---------------------------------------

REGINFO = (
    b'<?xml version="1.0"?>\n'
    b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
    b'<registration aor="sip:user1_public1@home1.net" id="r1" state="active">'
    b'<contact id="c1" state="active" event="registered"><uri>sip:x@y.invalid</uri></contact>'
    b"</registration></reginfo>"
)


def subscribe_200(request: Request) -> Response | None:
    if request.method == "SUBSCRIBE":
        return make_response(request, 200, to_tag=new_tag(), extra=[("Expires", "3600")])
    return ok_200(request)


async def test_s8_9_reg_event_subscribe_has_the_bearer_token_and_goes_by_service_route(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = subscribe_200
    client = wic(stand_in, pki)
    await client.connect()
    await client.register()
    answer = await client.subscribe_reg_event()
    await client.close()
    assert answer.status == 200
    register, subscribe = stand_in.requests
    assert subscribe.method == "SUBSCRIBE"
    assert subscribe.uri_text == IMPU  # the default IMPU, first P-Associated-URI
    assert str(subscribe.to.uri) == str(subscribe.from_.uri) == IMPU
    assert subscribe.headers.get_all("Route") == [
        "<sip:orig@scscf.home1.net:5080;transport=tcp;lr>"  # the Service-Route
    ]
    assert subscribe.headers.get("Event") == "reg"
    assert subscribe.expires == 600000
    assert subscribe.headers.get("Accept") == "application/reginfo+xml"
    assert subscribe.headers.get_all("Authorization") == [f"Bearer {TOKEN}"]
    (contact,) = subscribe.contacts
    assert contact.sip_uri.transport == "ws" and "ob" in contact.sip_uri.params
    assert subscribe.top_via.host == register.top_via.host
    assert subscribe.call_id != register.call_id


async def test_reg_event_notify_is_read_and_answered_200(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    stand_in.answer = subscribe_200
    client = wic(stand_in, pki)
    await client.connect()
    await client.register()
    await client.subscribe_reg_event()
    subscription = stand_in.requests[-1].call_id
    answer = await stand_in.send_request("NOTIFY", call_id=subscription, body=REGINFO)
    notification = await client.next_reg_notification(timeout=2)
    other = await stand_in.send_request("NOTIFY", body=REGINFO)  # not our subscription
    await client.close()
    assert answer.status == other.status == 200
    assert notification.version == 0 and notification.state == "full"
    assert notification.subscription_state == "active;expires=600"
    assert notification.registrations == (("sip:user1_public1@home1.net", "active"),)
    assert len(client.reg_notifications) == 1


async def test_no_reg_event_subscription_before_a_registration(
    stand_in: StandIn, pki: tuple[Path, Path, Path]
) -> None:
    client = wic(stand_in, pki)
    await client.connect()
    with pytest.raises(WicError, match="after a successful registration"):
        await client.subscribe_reg_event()
    await client.close()
    assert stand_in.requests == []


def test_one_instance_keeps_its_identity_across_registrations() -> None:
    ua = UaInstance(IMPU)
    assert ua.contact_uri == f"sip:{ua.contact_user}@{ua.host};transport=ws"
    assert ua.call_id.endswith(f"@{ua.host}")
    assert UaInstance(IMPU).instance != ua.instance
