"""I-CSCF registration (TS 24.229 5.3.1.2) between a real HSS and a fake
S-CSCF, over TCP: the trust check, the UAR the HSS receives, and the
REGISTER the S-CSCF receives (or the answer the eP-CSCF gets)."""

from __future__ import annotations

import asyncio
import dataclasses

from webims.diameter import cx
from webims.diameter.cx import CxClient, CxMessage
from webims.diameter.cxdefs import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    UserAuthorizationType,
)
from webims.sip import Request

from .conftest import (
    USER1_IMPI,
    USER1_IMPU,
    USER2_IMPI,
    Hss,
    StartIcscf,
    free_port,
    register,
    register_at_hss,
)


def uar_fields(msg: CxMessage) -> dict[str, object]:
    vsai = {
        (a.code, a.vendor_id): a.value
        for a in msg.all(cx.VENDOR_SPECIFIC_APPLICATION_ID, 0)[0].value
    }
    return {
        "application": msg.message.header.application_id,
        "vendor_specific": (vsai[(cx.VENDOR_ID, 0)], vsai[(cx.AUTH_APPLICATION_ID, 0)]),
        "auth_session_state": msg.first(cx.AUTH_SESSION_STATE, 0),
        "user_name": msg.text(cx.USER_NAME, 0),
        "public_identity": msg.text(cx.PUBLIC_IDENTITY),
        "visited_network": msg.text(cx.VISITED_NETWORK_IDENTIFIER),
        "type": msg.first(cx.USER_AUTHORIZATION_TYPE),
    }


def assert_proxied_register(req: Request, route: str, peer_port: int) -> None:
    """What SPEC §8 29 asks of the REGISTER that reaches the S-CSCF."""
    assert req.method == "REGISTER"
    assert [str(r) for r in req.routes] == [route]
    assert "Record-Route" not in req.headers
    # the eP-CSCF's Path only: the I-CSCF adds none
    assert [str(p) for p in req.paths] == [
        f"<sip:{req.paths[0].sip_uri.user}@pcscf.home1.net:{peer_port};transport=tcp;lr;ob>"
    ]
    assert len(req.vias) == 3  # the I-CSCF's, the eP-CSCF's, the WIC's
    assert req.max_forwards == 68
    assert req.authorization and req.headers.get("P-Visited-Network-ID") == '"home1.net"'


async def test_s8_27_register_from_untrusted_source_gets_403_and_no_uar(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    d = await start_icscf()
    peer = await d.untrusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 403
    assert hss.uars == []
    assert d.scscf.received == []


async def test_s8_27_trusted_peer_is_known_by_address_and_port(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    """The trusted eP-CSCF's port lets the same REGISTER through."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert len(hss.uars) == 1


async def test_s8_28_uar_carries_impi_impu_visited_network_and_registration(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert len(hss.uars) == 1
    assert uar_fields(hss.uars[0]) == {
        "application": CX_APPLICATION_ID,
        "vendor_specific": (VENDOR_3GPP, CX_APPLICATION_ID),
        "auth_session_state": 1,
        "user_name": USER1_IMPI,
        "public_identity": USER1_IMPU,
        "visited_network": "home1.net",
        "type": UserAuthorizationType.REGISTRATION,
    }


async def test_s8_28_without_authorization_the_impi_is_derived_from_the_to_impu(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    """TS 24.229 5.3.1.2: no Authorization -> IMPI = the IMPU without scheme.
    The demo user's IMPI is another one, so the HSS answers 5001 -> 403."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, impi=None))
    finally:
        await peer.close()
    assert uar_fields(hss.uars[0])["user_name"] == "user1_public1@home1.net"
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_29_first_registration_is_forwarded_to_the_selected_scscf(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    """UAA Exp 2001 + Server-Capabilities (none required): the deployment's
    S-CSCF, reached with a Route, no Record-Route, no Path added."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    got = await d.scscf.next_request()
    route = f"<sip:scscf.home1.net:{d.scscf.port};transport=tcp;lr>"
    assert_proxied_register(got, route, d.trusted_port)
    # the S-CSCF's answer came back on the eP-CSCF's connection
    assert resp.cseq.method == "REGISTER" and len(resp.vias) == 2


async def test_s8_29_capabilities_select_the_scscf_with_every_mandatory_one(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    store = hss.element.raw_store
    user1 = await store.get("user1")
    assert user1 is not None
    await store.replace(
        dataclasses.replace(user1, mandatory_capabilities=(7,), optional_capabilities=(8, 9))
    )
    # a: lacks 7; b: has 7 and one optional; c: has 7 and both optional
    d = await start_icscf([[8, 9], [7, 8], [7, 8, 9]])
    a, b, c = d.scscfs
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    got = await c.next_request()
    assert_proxied_register(got, f"<sip:127.0.0.1:{c.port};transport=tcp;lr>", d.trusted_port)
    assert a.received == [] and b.received == []


async def test_s8_29_no_scscf_with_the_mandatory_capabilities_gets_600(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    store = hss.element.raw_store
    user1 = await store.get("user1")
    assert user1 is not None
    await store.replace(dataclasses.replace(user1, mandatory_capabilities=(7,)))
    d = await start_icscf([[8], [9]])
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 600
    assert all(s.received == [] for s in d.scscfs)


async def test_s8_29_subsequent_registration_goes_to_the_server_name(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    """UAA Exp 2002 + Server-Name: that S-CSCF, even when the selection by
    capabilities would have picked another."""
    d = await start_icscf([[1, 2, 3], [1]])
    first, second = d.scscfs
    await register_at_hss(scscf_cx, second.uri)
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    got = await second.next_request()
    assert_proxied_register(got, f"<sip:127.0.0.1:{second.port};transport=tcp;lr>", d.trusted_port)
    assert first.received == []


async def test_s9_6_expires_0_sends_uar_de_registration(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    """SPEC §9 statement 6: Expires: 0 -> DE_REGISTRATION; the HSS answers
    Result-Code 2001 + Server-Name and the REGISTER goes there."""
    d = await start_icscf()
    server_name = f"sip:scscf.home1.net:{d.scscf.port};transport=tcp"
    await register_at_hss(scscf_cx, server_name)
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, expires="0", contact_expires=""))
    finally:
        await peer.close()
    assert uar_fields(hss.uars[0])["type"] == UserAuthorizationType.DE_REGISTRATION
    assert resp.status == 200
    got = await d.scscf.next_request()
    assert [str(r) for r in got.routes] == [f"<{server_name};lr>"]


async def test_s9_6_every_contact_expires_0_is_a_de_registration(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    d = await start_icscf()
    await register_at_hss(scscf_cx, f"sip:scscf.home1.net:{d.scscf.port};transport=tcp")
    peer = await d.trusted()
    try:
        # the Contact's own expires=0 wins over a header Expires
        resp = await peer.send(register(d.port, peer.port, expires="600", contact_expires="0"))
        again = await peer.send(register(d.port, peer.port, contact_expires="600"))
    finally:
        await peer.close()
    assert [uar_fields(u)["type"] for u in hss.uars] == [
        UserAuthorizationType.DE_REGISTRATION,
        UserAuthorizationType.REGISTRATION,
    ]
    assert resp.status == 200 and again.status == 200


async def test_s9_6_de_registration_of_a_user_not_registered_gets_403(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    """The HSS answers Exp 5003 IDENTITY_NOT_REGISTERED: nothing to forward."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, expires="0", contact_expires=""))
    finally:
        await peer.close()
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_30_unknown_user_gets_403(start_icscf: StartIcscf, hss: Hss) -> None:
    """UAA Exp 5001 USER_UNKNOWN."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(
            register(d.port, peer.port, impu="sip:nobody@home1.net", impi="nobody@home1.net")
        )
    finally:
        await peer.close()
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_30_identities_that_dont_match_get_403(start_icscf: StartIcscf, hss: Hss) -> None:
    """UAA Exp 5002: user2's IMPI with user1's IMPU."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, impi=USER2_IMPI))
    finally:
        await peer.close()
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_30_roaming_not_allowed_gets_403(start_icscf: StartIcscf, hss: Hss) -> None:
    """UAA Exp 5004: a visited network the subscription may not register from."""
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, visited="visited.example.net"))
    finally:
        await peer.close()
    assert uar_fields(hss.uars[0])["visited_network"] == "visited.example.net"
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_30_barred_identity_gets_403(start_icscf: StartIcscf, hss: Hss) -> None:
    """UAA Result-Code 5003 DIAMETER_AUTHORIZATION_REJECTED (the whole set barred)."""
    await hss.element.raw_store.set_barred(USER1_IMPU, True)
    d = await start_icscf()
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 403
    assert d.scscf.received == []


async def test_s8_30_hss_timeout_gets_480(start_icscf: StartIcscf, hss: Hss) -> None:
    hss.uar_delay = 3.0
    d = await start_icscf(cx_timeout=0.5)
    peer = await d.trusted()
    try:
        started = asyncio.get_running_loop().time()
        resp = await peer.send(register(d.port, peer.port))
        waited = asyncio.get_running_loop().time() - started
    finally:
        await peer.close()
    assert resp.status == 480
    assert len(hss.uars) == 1 and waited < 2.5
    assert d.scscf.received == []


async def test_s8_30_hss_unreachable_gets_480(start_icscf: StartIcscf, hss: Hss) -> None:
    d = await start_icscf(hss_port=free_port())  # nobody listens there
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 480
    assert d.scscf.received == []


async def test_scscf_failure_reaches_the_pcscf(start_icscf: StartIcscf, hss: Hss) -> None:
    """The S-CSCF's own refusal goes back unchanged (the I-CSCF is a proxy)."""
    d = await start_icscf()
    d.scscf.status = 423
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 423
    assert len(d.scscf.received) == 1


async def test_dereg_leaves_hss_state_to_the_scscf(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    """The I-CSCF's UAR changes nothing in the HSS: the S-CSCF's SAR does."""
    d = await start_icscf()
    server_name = f"sip:scscf.home1.net:{d.scscf.port};transport=tcp"
    await register_at_hss(scscf_cx, server_name)
    peer = await d.trusted()
    try:
        await peer.send(register(d.port, peer.port, expires="0", contact_expires=""))
    finally:
        await peer.close()
    user1 = await hss.element.raw_store.get("user1")
    assert user1 is not None and user1.assignment is not None
    assert user1.assignment.server_name == server_name
    assert {p.state.name for p in user1.publics} == {"REGISTERED"}


# -- another S-CSCF when the selected one fails (TS 24.229 5.3.1.3) ----------------------


async def test_scscf_answering_480_is_replaced_once_after_a_capabilities_uar(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    d = await start_icscf([[1], [1]])
    first, second = d.scscfs
    first.status = 480
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert [uar_fields(u)["type"] for u in hss.uars] == [
        UserAuthorizationType.REGISTRATION,
        UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
    ]
    assert len(first.received) == 1
    got = await second.next_request()
    assert_proxied_register(got, f"<sip:127.0.0.1:{second.port};transport=tcp;lr>", d.trusted_port)


async def test_silent_scscf_is_replaced(start_icscf: StartIcscf, hss: Hss) -> None:
    """No answer from the S-CSCF: its branch ends in 408 at Timer F (64*T1;
    T1 is 50 ms here), then another S-CSCF is tried."""
    d = await start_icscf([[1], [1]], t1=0.05)
    first, second = d.scscfs
    first.status = 0
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert len(first.received) == 1 and len(hss.uars) == 2
    assert (await second.next_request()).method == "REGISTER"


async def test_unreachable_scscf_is_replaced_at_once(start_icscf: StartIcscf, hss: Hss) -> None:
    """A refused connection is a transport error (503 on the branch, RFC 3261
    §17.1.4), known at once rather than at Timer F."""
    d = await start_icscf([[1], [1]])
    first, second = d.scscfs
    await first.close()
    peer = await d.trusted()
    try:
        started = asyncio.get_running_loop().time()
        resp = await peer.send(register(d.port, peer.port))
        waited = asyncio.get_running_loop().time() - started
    finally:
        await peer.close()
    assert resp.status == 200
    assert waited < 2.0  # Timer F would be 32 s
    assert len(hss.uars) == 2
    assert (await second.next_request()).method == "REGISTER"


async def test_second_scscf_failing_too_goes_upstream(start_icscf: StartIcscf, hss: Hss) -> None:
    d = await start_icscf([[1], [1], [1]])
    for s in d.scscfs:
        s.status = 480
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 480
    assert [len(s.received) for s in d.scscfs] == [1, 1, 0]
    assert len(hss.uars) == 2


async def test_scscf_refusal_is_not_retried(start_icscf: StartIcscf, hss: Hss) -> None:
    """A 403 (or 401, 423) is the S-CSCF's answer to the user, not a failure."""
    d = await start_icscf([[1], [1]])
    first, second = d.scscfs
    first.status = 403
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 403
    assert len(hss.uars) == 1 and second.received == []


async def test_failure_without_another_scscf_goes_upstream(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    d = await start_icscf()
    d.scscf.status = 480
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port))
    finally:
        await peer.close()
    assert resp.status == 480
    assert len(hss.uars) == 1


async def test_failed_de_registration_is_not_sent_elsewhere(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    d = await start_icscf([[1], [1]])
    first, second = d.scscfs
    await register_at_hss(scscf_cx, first.uri)
    first.status = 480
    peer = await d.trusted()
    try:
        resp = await peer.send(register(d.port, peer.port, expires="0", contact_expires=""))
    finally:
        await peer.close()
    assert resp.status == 480
    assert len(hss.uars) == 1 and second.received == []
