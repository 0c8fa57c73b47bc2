"""Plain SIP phones on Gm at the eP-CSCF (TS 24.229 5.2.2 with SIP Digest without TLS).

In front of the stand-in core (``harness.FakeCore``, the I-CSCF of the topology, so a
core peer): what the phone's REGISTER becomes towards the I-CSCF, the binding its 2xx
makes, the identity rules on its later requests and the terminating path by its flow
token.  Against a real ``webims up`` (every element, the demo subscribers): a raw UDP
or TCP phone registers with RFC 2617 Digest through eP-CSCF, I-CSCF and S-CSCF, is
reached by an OPTIONS sent to the I-CSCF, and a phone claiming ``auth-done`` is
challenged, never registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.waf.conftest import WafSite
from webims.pcscf.gm import core_peers, forwarded_credentials
from webims.sip import Request, Response, parse_message
from webims.sip.auth import parse_challenge
from webims.transport.flow import Flow

from .conftest import StartPcscf
from .gm_system import (
    USER1,
    USER2,
    CoreSystem,
    Phone,
    bye_as_callee,
    core_system,
    invite,
    options_to,
    send_options,
)
from .harness import Deployment, wait_until

CHARGING = ("P-Charging-Vector", "P-Charging-Function-Addresses")


def phone_for(pcscf: Deployment, transport: str = "udp") -> Phone:
    return Phone(pcscf.sip_port, USER1, transport)


async def registered(pcscf: Deployment, phone: Phone) -> Response:
    """REGISTER through the stand-in core (which answers 200 at once)."""
    request = phone.register_request(authorization=phone.initial_credentials())
    ok = await asyncio.to_thread(phone.exchange, request)
    assert ok.status == 200, f"{ok.status} {ok.reason}"
    return ok


# -- in front of the stand-in core -----------------------------------------------------------


async def test_ue_register_goes_to_the_icscf_as_ts_24_229_5_2_2_1(pcscf: Deployment) -> None:
    phone = phone_for(pcscf)
    forged = (
        "P-Asserted-Identity: <sip:user2_public1@home1.net>\r\n"
        'P-Visited-Network-ID: "elsewhere.net"\r\n'
        'P-Charging-Vector: icid-value="forged"\r\n'
        "Path: <sip:attacker@192.0.2.66;lr>\r\n"
        "Route: <sip:192.0.2.66;lr>\r\n"
        "Supported: gruu\r\n"
    )
    auth = (
        'Digest username="user1_private@home1.net", realm="home1.net", uri="sip:home1.net", '
        'nonce="", response="", integrity-protected="auth-done", '
        'authorization-entity="webrtc_authserver1@thirdparty.net"'
    )
    try:
        request = phone.register_request(authorization=auth, extra=forged)
        await asyncio.to_thread(phone.exchange, request)
        [got] = pcscf.core.of("REGISTER")
        h = got.headers
        [route] = got.routes
        assert route.sip_uri.port == pcscf.core.port and "lr" in route.sip_uri.params
        [path] = got.paths
        uri = path.sip_uri
        assert uri.host == "pcscf.home1.net" and uri.port == pcscf.sip_port
        assert "lr" in uri.params and "ob" not in uri.params  # no reg-id
        flow = pcscf.app.transport.resolve_token(uri.user or "")
        assert flow == Flow("udp", ("127.0.0.1", pcscf.sip_port), ("127.0.0.1", phone.port))
        assert "path" in got.require and {"path", "gruu"} <= set(got.supported)
        assert h.get_all("P-Visited-Network-ID") == ['"home1.net"']
        [pcv] = h.get_all("P-Charging-Vector")
        assert "forged" not in pcv and "orig-ioi=home1.net" in pcv
        assert "P-Asserted-Identity" not in h
        [creds] = got.authorization
        assert str(creds) == (
            'Digest username="user1_private@home1.net", realm="home1.net", '
            'uri="sip:home1.net", nonce="", response=""'
        )
    finally:
        phone.close()


async def test_ue_register_with_outbound_gets_ob_in_path(pcscf: Deployment) -> None:
    phone = phone_for(pcscf, "tcp")
    try:
        request = phone.register_request(authorization=phone.initial_credentials())
        request = request.replace(
            b";expires=600\r\n",
            b';+sip.instance="<urn:uuid:00000000-0000-4000-8000-000000000001>";reg-id=1'
            b";expires=600\r\nSupported: outbound\r\n",
        )
        ok = await asyncio.to_thread(phone.exchange, request)
        assert ok.status == 200
        [got] = pcscf.core.of("REGISTER")
        [path] = got.paths
        assert "ob" in path.sip_uri.params
        flow = pcscf.app.transport.resolve_token(path.sip_uri.user or "")
        assert flow is not None and flow.transport == "tcp" and flow.remote[1] == phone.port
    finally:
        phone.close()


async def test_ue_register_without_a_username_is_challenged_by_the_pcscf(
    pcscf: Deployment,
) -> None:
    """An RFC 3261 phone's first REGISTER names no private identity: the eP-CSCF asks
    for it with a 401 of its own; nothing reaches the core."""
    phone = phone_for(pcscf)
    try:
        answer = await asyncio.to_thread(phone.exchange, phone.register_request())
        assert answer.status == 401
        chal = parse_challenge(answer.headers.get("WWW-Authenticate") or "")
        assert chal.scheme == "Digest" and chal.get("realm") == "home1.net"
        assert chal.get("nonce") and chal.get("qop") == "auth"
        bearer = "Bearer eyJhbGciOiJub25lIn0.e30."
        answer = await asyncio.to_thread(
            phone.exchange, phone.register_request(authorization=bearer)
        )
        assert answer.status == 401  # a Bearer token is no Digest username either
        assert pcscf.core.of("REGISTER") == []
    finally:
        phone.close()


async def test_2xx_binds_the_phone_and_loses_its_charging_headers(pcscf: Deployment) -> None:
    phone = phone_for(pcscf)
    try:
        ok = await registered(pcscf, phone)
        for name in CHARGING:
            assert name not in ok.headers
        assert [str(r.uri) for r in ok.service_routes] == [pcscf.core.service_route.strip("<>")]
        flow = Flow("udp", ("127.0.0.1", pcscf.sip_port), ("127.0.0.1", phone.port))
        reg = pcscf.app.bindings.for_flow(flow)
        assert reg is not None
        assert reg.impi == "user1_private@home1.net"
        assert reg.impus == {"sip:user1_public1@home1.net"}
        assert reg.service_route == (pcscf.core.service_route,)
        assert reg.contact == phone.contact
    finally:
        phone.close()


async def test_registered_phone_requests_get_the_asserted_identity(pcscf: Deployment) -> None:
    """TS 24.229 5.2.6.3 as for a WIC: a forged P-Asserted-Identity is replaced, the
    Service-Route is the Route, another user's identity is refused."""
    phone = phone_for(pcscf)
    try:
        await registered(pcscf, phone)
        forged = "P-Asserted-Identity: <sip:user2_public1@home1.net>\r\n"
        request = phone.message(USER2.impu, extra=forged)
        ok = await asyncio.to_thread(phone.exchange, request)
        assert ok.status == 200
        for name in CHARGING:
            assert name not in ok.headers
        [message] = pcscf.core.of("MESSAGE")
        assert message.headers.get_all("P-Asserted-Identity") == [f"<{USER1.impu}>"]
        assert [f"<{r.uri}>" for r in message.routes] == [pcscf.core.service_route]
        assert "P-Charging-Vector" in message.headers

        preferred = f"P-Preferred-Identity: <{USER2.impu}>\r\n"
        for request in (
            phone.message(USER2.impu, from_=USER2.impu),
            phone.message(USER2.impu, extra=preferred),
        ):
            refused = await asyncio.to_thread(phone.exchange, request)
            assert refused.status == 403
        assert len(pcscf.core.of("MESSAGE")) == 1
    finally:
        phone.close()


async def test_unregistered_phone_requests_are_refused(pcscf: Deployment) -> None:
    phone = phone_for(pcscf)
    try:
        refused = await asyncio.to_thread(phone.exchange, phone.message(USER2.impu))
        assert refused.status == 403
        assert pcscf.core.of("MESSAGE") == []
    finally:
        phone.close()


async def test_terminating_request_reaches_the_phone_by_its_path_token(
    pcscf: Deployment,
) -> None:
    phone = phone_for(pcscf)
    try:
        await registered(pcscf, phone)
        path = str(pcscf.core.of("REGISTER")[-1].paths[0].uri)
        request = options_to(USER1.impu, pcscf.core.port).replace(
            f"OPTIONS {USER1.impu}".encode(), f"OPTIONS {phone.contact}".encode()
        )
        request = request.replace(
            b"Max-Forwards: 70\r\n",
            f"Max-Forwards: 70\r\nRoute: <{path}>\r\n"
            'P-Charging-Vector: icid-value="core"\r\n'.encode(),
        )
        request = request.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
        received = asyncio.create_task(asyncio.to_thread(phone.next_request))
        pcscf.core.send(request)
        options = await received
        assert options.method == "OPTIONS" and options.uri_text == phone.contact
        assert "P-Charging-Vector" not in options.headers
        assert options.vias[0].transport == "UDP"
        await wait_until(lambda: any(r.status == 200 for r in pcscf.core.responses))
    finally:
        phone.close()


async def test_a_flow_token_from_outside_the_core_is_not_relayed(pcscf: Deployment) -> None:
    """A UA that is no core peer and names a registered phone's flow token (learnt
    from a Record-Route, say) is refused: only the core reaches a UE by its token."""
    phone = phone_for(pcscf)
    intruder = Phone(pcscf.sip_port, USER2)
    try:
        await registered(pcscf, phone)
        path = str(pcscf.core.of("REGISTER")[-1].paths[0].uri)
        forged = f"Route: <{path}>\r\nP-Asserted-Identity: <{USER2.impu}>\r\n"
        message = intruder.message(phone.contact, extra=forged)
        refused = await asyncio.to_thread(intruder.exchange, message)
        assert refused.status == 403
        register = intruder.register_request(
            authorization=intruder.initial_credentials(), extra=forged
        )
        ok = await asyncio.to_thread(intruder.exchange, register)
        assert ok.status == 200  # the stand-in core's: it went to the I-CSCF as user2's own
        assert [r.method for r in pcscf.core.received if r.method != "SUBSCRIBE"] == [
            "REGISTER",
            "REGISTER",
        ]
        phone.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            phone.next_request()
    finally:
        phone.close()
        intruder.close()


def token_of(pcscf: Deployment) -> str:
    """The flow token of the Path of the last REGISTER the core got."""
    user = pcscf.core.of("REGISTER")[-1].paths[0].sip_uri.user
    assert user
    return user


async def test_ue_originated_dialog_is_double_record_routed(pcscf: Deployment) -> None:
    """RFC 5658: the core sees the Mw-side entry on top, the UE the Gm-side one (the
    address and transport it used) first in its route set; its in-dialog request
    through both leaves the eP-CSCF without either, and without a Route the UE added
    that the dialog's route set does not have (TS 24.229 5.2.6.3.3).  A request in a
    dialog the eP-CSCF never saw is refused."""
    phone = phone_for(pcscf)
    try:
        await registered(pcscf, phone)
        token = token_of(pcscf)
        ok = await asyncio.to_thread(phone.exchange, invite(phone, USER2.impu))
        assert ok.status == 200
        [sent] = pcscf.core.of("INVITE")
        mw_side, gm_side = (rr.sip_uri for rr in sent.record_routes)
        assert (mw_side.user, mw_side.host, mw_side.port) == (
            token,
            "pcscf.home1.net",
            pcscf.sip_port,
        )
        assert mw_side.params.get("transport") == "tcp" and "lr" in mw_side.params
        assert (gm_side.user, gm_side.host, gm_side.port) == (token, "127.0.0.1", pcscf.sip_port)
        assert "transport" not in gm_side.params and "lr" in gm_side.params

        # The core's 200 carried the Record-Route back: that is the dialog's route set.
        assert [str(rr.uri) for rr in ok.record_routes] == [str(mw_side), str(gm_side)]
        elsewhere = "sip:127.0.0.1:9;transport=tcp;lr"

        def bye(to_tag: str) -> bytes:
            return (
                f"BYE sip:callee@127.0.0.1:{pcscf.core.port};transport=tcp SIP/2.0\r\n"
                f"Via: {phone.via()}\r\nMax-Forwards: 70\r\n"
                f"Route: <{gm_side}>, <{mw_side}>, <{elsewhere}>\r\n"
                f"From: {sent.headers.get('From')}\r\nTo: <{USER2.impu}>;tag={to_tag}\r\n"
                f"Call-ID: {sent.call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
            ).encode()

        assert (await asyncio.to_thread(phone.exchange, bye("no-such-dialog"))).status == 403
        assert (await asyncio.to_thread(phone.exchange, bye(ok.to_tag or ""))).status == 200
        [got] = pcscf.core.of("BYE")
        assert got.routes == []
    finally:
        phone.close()


async def test_ue_terminated_dialog_is_double_record_routed(pcscf: Deployment) -> None:
    phone = phone_for(pcscf, "tcp")
    try:
        await registered(pcscf, phone)
        token = token_of(pcscf)
        path = str(pcscf.core.of("REGISTER")[-1].paths[0].uri)
        core = pcscf.core.port
        request = (
            f"INVITE {phone.contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{core};branch=z9hG4bK-term-invite\r\n"
            f"Route: <{path}>\r\nMax-Forwards: 69\r\n"
            f"From: <{USER2.impu}>;tag=caller\r\nTo: <{USER1.impu}>\r\n"
            "Call-ID: term-invite@core\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:caller@127.0.0.1:{core};transport=tcp>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        received = asyncio.create_task(asyncio.to_thread(phone.next_request))
        pcscf.core.send(request)
        got = await received
        gm_side, mw_side = (rr.sip_uri for rr in got.record_routes)
        assert (gm_side.user, gm_side.host, gm_side.port) == (token, "127.0.0.1", pcscf.sip_port)
        assert gm_side.params.get("transport") == "tcp"
        assert (mw_side.user, mw_side.host) == (token, "pcscf.home1.net")

        assert (await asyncio.to_thread(phone.exchange, bye_as_callee(phone, got))).status == 200
        [bye] = pcscf.core.of("BYE")
        assert bye.routes == [] and bye.uri_text == str(got.contacts[0].uri)
    finally:
        phone.close()


async def test_closed_tcp_phone_flow_gets_430(pcscf: Deployment) -> None:
    """RFC 5626 §5.3 as for a WIC: once the phone's TCP connection is gone its Path
    flow token no longer resolves, and a request for it is answered 430."""
    phone = phone_for(pcscf, "tcp")
    try:
        await registered(pcscf, phone)
    finally:
        phone.close()
    path = str(pcscf.core.of("REGISTER")[-1].paths[0].uri)
    token = path.split("@", 1)[0].removeprefix("sip:")
    await wait_until(lambda: pcscf.app.transport.resolve_token(token) is None)
    request = options_to(USER1.impu, pcscf.core.port).replace(
        b"Max-Forwards: 70\r\n", f"Max-Forwards: 70\r\nRoute: <{path}>\r\n".encode()
    )
    pcscf.core.send(request.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    await wait_until(lambda: any(r.status == 430 for r in pcscf.core.responses))


async def test_core_peers_are_the_topology_cscfs(site: WafSite, start_pcscf: StartPcscf) -> None:
    pcscf = await start_pcscf(site)
    topology = pcscf.cscf.topology
    peers = core_peers(topology)
    icscf = Flow("tcp", ("127.0.0.1", pcscf.sip_port), ("127.0.0.1", pcscf.core.port), 7)
    phone = Flow("udp", ("127.0.0.1", pcscf.sip_port), ("127.0.0.1", 40000))
    assert icscf in peers and phone not in peers


def test_forwarded_credentials_lose_what_only_a_p_cscf_may_set() -> None:
    raw = (
        b"REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
        b"From: <sip:a@home1.net>;tag=1\r\nTo: <sip:a@home1.net>\r\nCall-ID: c\r\n"
        b"CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        b'Authorization: Digest username="a", realm="home1.net", nonce="n", uri="sip:home1.net", '
        b'response="r", integrity-protected="auth-done", authorization-entity="x"\r\n'
        b"Authorization: Bearer abc\r\nContent-Length: 0\r\n\r\n"
    )
    req = parse_message(raw)
    assert isinstance(req, Request)
    [creds] = forwarded_credentials(req)
    assert creds.integrity_protected is None and creds.authorization_entity is None
    assert creds.username == "a" and creds.response == "r"
    assert req.authorization[0].integrity_protected == "auth-done"  # type: ignore[attr-defined]


# -- a real ``webims up`` ------------------------------------------------------------------


def unregister_quietly(phone: Phone) -> None:
    """After a failed test: leave the user unregistered for the next ones, then close."""
    with contextlib.suppress(Exception):
        phone.sock.settimeout(2)
        phone.register(expires=0)
    phone.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreSystem]:
    with core_system(tmp_path_factory.mktemp("gm-up")) as running_system:
        yield running_system


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_phone_registers_with_digest_through_the_core(system: CoreSystem, transport: str) -> None:
    phone = Phone(system.pcscf, USER1, transport)
    try:
        challenge, ok = phone.register()
        chal = parse_challenge(challenge.headers.get("WWW-Authenticate") or "")
        assert chal.get("realm") == "home1.net" and chal.get("qop") == "auth"
        assert not (chal.get("nonce") or "").startswith("pcscf-")  # the S-CSCF's own
        assert ok.status == 200, f"{ok.status} {ok.reason}"
        [route] = ok.service_routes
        assert route.sip_uri.user == "orig" and route.sip_uri.host == "scscf.home1.net"
        assert str(ok.p_associated_uri[0].uri) == USER1.impu
        [path] = ok.paths
        assert path.sip_uri.host == "pcscf.home1.net" and path.sip_uri.user
        for name in CHARGING:
            assert name not in ok.headers and name not in challenge.headers
        assert system.wait_state(USER1, "registered") == "registered"

        # Terminating: the I-CSCF (LIR), the S-CSCF's binding, our Path flow token.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(10)
            probe.sendto(
                options_to(USER1.impu, probe.getsockname()[1]), ("127.0.0.1", system.icscf)
            )
            options = phone.next_request()
            assert options.method == "OPTIONS" and options.uri_text == phone.contact
            assert "P-Charging-Vector" not in options.headers
            while True:
                answer = parse_message(probe.recv(65535))
                if isinstance(answer, Response) and answer.status >= 200:
                    break
            assert answer.status == 200

        _, gone = phone.register(expires=0)
        assert gone.status == 200
        assert system.wait_state(USER1, "not_registered") != "registered"
        assert send_options(system.icscf, USER1.impu).status == 480
    finally:
        unregister_quietly(phone)


def test_message_from_one_phone_reaches_another_through_the_core(system: CoreSystem) -> None:
    """Originating at the eP-CSCF (asserted identity, Service-Route), the S-CSCF's
    originating and terminating procedures, LIR at the I-CSCF, and the Path flow
    token of the callee's TCP connection: the callee sees the caller's IMPU asserted."""
    caller, callee = Phone(system.pcscf, USER1), Phone(system.pcscf, USER2, "tcp")
    try:
        assert caller.register()[1].status == 200
        assert callee.register()[1].status == 200
        forged = f"P-Asserted-Identity: <{USER2.impu}>\r\n"
        caller.send(caller.message(USER2.impu, extra=forged))
        message = callee.next_request()
        assert message.method == "MESSAGE" and message.body == b"hello from a SIP phone"
        assert message.headers.get_all("P-Asserted-Identity") == [f"<{USER1.impu}>"]
        for name in CHARGING:
            assert name not in message.headers
        assert caller.final_response().status == 200
        for phone in (caller, callee):
            assert phone.register(expires=0)[1].status == 200
    finally:
        for phone in (caller, callee):
            unregister_quietly(phone)


def test_call_between_two_phones_is_routed_both_ways_through_the_core(
    system: CoreSystem,
) -> None:
    """An INVITE from a UDP phone to a TCP phone through the whole core, and the
    callee's BYE back along the INVITE's Record-Route: both eP-CSCF legs double
    record-route (RFC 5658), so each phone reaches the eP-CSCF by address."""
    caller, callee = Phone(system.pcscf, USER1), Phone(system.pcscf, USER2, "tcp")
    try:
        assert caller.register()[1].status == 200
        assert callee.register()[1].status == 200
        caller.send(invite(caller, USER2.impu))
        got = callee.next_request()
        assert got.method == "INVITE"
        assert got.headers.get_all("P-Asserted-Identity") == [f"<{USER1.impu}>"]
        hops = [rr.sip_uri for rr in got.record_routes]
        assert (hops[0].host, hops[0].params.get("transport")) == ("127.0.0.1", "tcp")
        assert hops[1].host == "pcscf.home1.net"
        assert hops[-2].host == "pcscf.home1.net"
        assert (hops[-1].host, hops[-1].params.get("transport")) == ("127.0.0.1", None)
        assert caller.final_response().status == 200

        callee.send(bye_as_callee(callee, got))
        bye = caller.next_request()
        assert bye.method == "BYE" and bye.call_id == got.call_id
        assert bye.routes == []
        assert callee.final_response().status == 200
        for phone in (caller, callee):
            assert phone.register(expires=0)[1].status == 200
    finally:
        for phone in (caller, callee):
            unregister_quietly(phone)


def test_phone_without_initial_credentials_registers_after_two_challenges(
    system: CoreSystem,
) -> None:
    """The RFC 3261 phone's REGISTER without Authorization: the eP-CSCF's 401 asks
    for the username, the S-CSCF's 401 (``stale=true``) for a response to its nonce."""
    phone = Phone(system.pcscf, USER2)
    try:
        first = phone.exchange(phone.register_request())
        assert first.status == 401
        second = phone.exchange(phone.register_request(authorization=phone.answer_challenge(first)))
        assert second.status == 401
        chal = parse_challenge(second.headers.get("WWW-Authenticate") or "")
        assert chal.get("stale") == "true"
        ok = phone.exchange(phone.register_request(authorization=phone.answer_challenge(second)))
        assert ok.status == 200, f"{ok.status} {ok.reason}"
        assert system.wait_state(USER2, "registered") == "registered"
        _, gone = phone.register(expires=0)
        assert gone.status == 200
    finally:
        unregister_quietly(phone)


def test_phone_claiming_auth_done_is_challenged_never_registered(system: CoreSystem) -> None:
    """TS 24.229 5.2.2.1 / TS 33.203 U.1: a UE's ``integrity-protected="auth-done"``
    never reaches the S-CSCF, which challenges the REGISTER like any other."""
    before = system.state(USER2)
    assert before != "registered"
    phone = Phone(system.pcscf, USER2)
    try:
        for extra in ("", ', authorization-entity="webrtc_authserver1@thirdparty.net"'):
            claim = (
                f'Digest username="{USER2.impi}", realm="home1.net", uri="sip:home1.net", '
                f'nonce="", response="", integrity-protected="auth-done"{extra}'
            )
            answer = phone.exchange(phone.register_request(authorization=claim))
            assert answer.status == 401, f"{answer.status} {answer.reason}"
            assert "Digest" in (answer.headers.get("WWW-Authenticate") or "")
        assert system.state(USER2) == before
    finally:
        phone.close()


def test_phone_with_a_wrong_password_is_refused(system: CoreSystem) -> None:
    wrong = Phone(system.pcscf, replace(USER2, password="not-it"))
    try:
        _, refused = wrong.register()
        assert refused.status == 403
        assert system.state(USER2) != "registered"
    finally:
        wrong.close()
