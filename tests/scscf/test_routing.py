"""Originating and terminating requests at the S-CSCF (TS 24.229 5.4.3; the
contract's item 4): the Service-Route's ``orig`` user, the I-CSCF route,
forking to the contacts along their Path, 480, and a 430 that removes a
contact (RFC 5626 §5.3)."""

from __future__ import annotations

import asyncio

from webims.diameter.cxdefs import ServerAssignmentType

from .conftest import IRS_BARRED, IRS_IMPI, IRS_IMPUS, USER1_IMPI, USER1_IMPU, Deployment
from .messages import register, request


def path_to(dep: Deployment, token: str) -> str:
    """A Path that leads back to the trusted peer (playing the eP-CSCF)."""
    return f"<sip:{token}@127.0.0.1:{dep.trusted.local_port};transport=tcp;lr;ob>"


async def test_terminating_forks_to_every_contact_along_its_path(deployment: Deployment) -> None:
    dep = deployment
    for n in (1, 2):
        register(
            dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=n, path_value=path_to(dep, f"flow{n}")
        )
        assert (await dep.trusted.response()).status == 200
    request(dep.trusted, "MESSAGE", USER1_IMPU, route=dep.route)
    first = await dep.trusted.request("MESSAGE")
    second = await dep.trusted.request("MESSAGE")
    got = {m.uri_text: m.headers.get_all("Route") for m in (first, second)}
    assert got == {
        "sip:wic1@192.0.2.1:5001;transport=ws": [path_to(dep, "flow1")],
        "sip:wic2@192.0.2.2:5002;transport=ws": [path_to(dep, "flow2")],
    }
    for m in (first, second):
        assert m.headers.get_all("P-Called-Party-ID") == [f"<{USER1_IMPU}>"]
        assert m.record_routes == []  # MESSAGE creates no dialog
    dep.trusted.reply(first, 200)
    dep.trusted.reply(second, 200)
    assert (await dep.trusted.response()).status == 200


async def test_terminating_not_registered_480(deployment: Deployment) -> None:
    dep = deployment
    request(dep.trusted, "INVITE", USER1_IMPU, route=dep.route)
    assert (await dep.trusted.response()).status == 480


async def test_s9_20_s9_35_terminating_430_removes_the_contact(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, path_value=path_to(dep, "dead"))
    assert (await dep.trusted.response()).status == 200
    request(dep.trusted, "MESSAGE", USER1_IMPU, route=dep.route)
    message = await dep.trusted.request("MESSAGE")
    dep.trusted.reply(message, 430, "Flow Failed")
    # RFC 5626 §11.5: the 430 stays between the edge proxy and the S-CSCF.
    assert (await dep.trusted.response()).status == 480
    async with asyncio.timeout(5):
        while await dep.scscf.scscf.store.get(USER1_IMPU) is not None:
            await asyncio.sleep(0.05)
    assert dep.spy.kinds()[-1] == ServerAssignmentType.TIMEOUT_DEREGISTRATION


async def test_a_dead_flow_beside_a_busy_device_gives_the_busy_answer(
    deployment: Deployment,
) -> None:
    """The 430 of one branch ranks below any answer of a device (RFC 5626
    §11.5): the caller hears 486 from the live one, the dead contact goes."""
    dep = deployment
    for n, token in ((1, "dead"), (2, "live")):
        register(
            dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=n, path_value=path_to(dep, token)
        )
        assert (await dep.trusted.response()).status == 200
    request(dep.trusted, "MESSAGE", USER1_IMPU, route=dep.route)
    branches = [await dep.trusted.request("MESSAGE"), await dep.trusted.request("MESSAGE")]
    by_token = {m.headers.get_all("Route")[0]: m for m in branches}
    dep.trusted.reply(by_token[path_to(dep, "dead")], 430, "Flow Failed")
    dep.trusted.reply(by_token[path_to(dep, "live")], 486, "Busy Here")
    assert (await dep.trusted.response()).status == 486
    async with asyncio.timeout(5):
        while True:
            registration = await dep.scscf.scscf.store.get(USER1_IMPU)
            assert registration is not None
            if [c.path for c in registration.contacts] == [(path_to(dep, "live"),)]:
                break
            await asyncio.sleep(0.05)


async def test_originating_goes_to_the_icscf(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    request(
        dep.trusted,
        "INVITE",
        "sip:user2_public1@home1.net",
        route=dep.orig_route,
        asserted=USER1_IMPU,
        from_uri=USER1_IMPU,
    )
    invite = await dep.trusted.request("INVITE")
    assert invite.uri_text == "sip:user2_public1@home1.net"
    assert invite.headers.get_all("Route") == [
        f"<sip:icscf.home1.net:{dep.trusted.local_port};transport=tcp;lr>"
    ]
    [rr] = invite.record_routes
    assert rr.sip_uri.port == dep.port and rr.sip_uri.lr
    dep.trusted.reply(invite, 486, "Busy Here")
    assert (await dep.trusted.response()).status == 486


async def test_originating_needs_a_registered_unbarred_asserted_identity(
    deployment: Deployment,
) -> None:
    dep = deployment
    register(dep.trusted, dep.route, IRS_IMPUS[0], IRS_IMPI)
    assert (await dep.trusted.response()).status == 200
    for asserted in (USER1_IMPU, IRS_BARRED, None):
        request(
            dep.trusted,
            "MESSAGE",
            "sip:user2_public1@home1.net",
            route=dep.orig_route,
            asserted=asserted,
        )
        assert (await dep.trusted.response()).status == 403, asserted
    # A registered identity asserted by an untrusted source.
    request(
        dep.untrusted,
        "MESSAGE",
        "sip:user2_public1@home1.net",
        route=dep.orig_route,
        asserted=IRS_IMPUS[0],
    )
    assert (await dep.untrusted.response()).status == 403
    await dep.trusted.no_request()


async def test_options_to_the_scscf_itself(deployment: Deployment) -> None:
    dep = deployment
    request(dep.untrusted, "OPTIONS", f"sip:scscf.home1.net:{dep.port};transport=tcp")
    resp = await dep.untrusted.response()
    assert resp.status == 200
    assert "REGISTER" in (resp.headers.get("Allow") or "")


async def test_terminating_invite_is_record_routed(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, path_value=path_to(dep, "f1"))
    assert (await dep.trusted.response()).status == 200
    request(dep.trusted, "INVITE", USER1_IMPU, route=dep.route)
    invite = await dep.trusted.request("INVITE")
    [rr] = invite.record_routes
    assert rr.sip_uri.host == "scscf.home1.net" and rr.sip_uri.port == dep.port
    assert rr.sip_uri.user is None and rr.sip_uri.lr
    dep.trusted.reply(invite, 486, "Busy Here")
    assert (await dep.trusted.response()).status == 486


async def test_originating_with_a_broken_asserted_identity_400(deployment: Deployment) -> None:
    dep = deployment
    lines = [
        "MESSAGE sip:user2_public1@home1.net SIP/2.0",
        f"Via: {dep.trusted.via()}",
        f"Route: {dep.orig_route}",
        "Max-Forwards: 69",
        "From: <sip:caller@home1.net>;tag=b1",
        "To: <sip:user2_public1@home1.net>",
        "Call-ID: broken-pai@test",
        "CSeq: 1 MESSAGE",
        "P-Asserted-Identity: <sip:broken",
        "Content-Length: 0",
    ]
    dep.trusted.send("\r\n".join(lines) + "\r\n\r\n")
    assert (await dep.trusted.response()).status == 400
