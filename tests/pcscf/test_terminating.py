"""Requests from the core to a WIC through the eP-CSCF (SPEC §1.4 D and E, contract
item 6, §9.1 item 4, §9.5 item 19, §9.6 items 20–21): the flow token of the Path or
Record-Route picks the connection; a dead flow gets 430; identities never move to another
connection without a REGISTER of its own."""

from __future__ import annotations

import itertools

from tests.waf.conftest import WafSite
from webims.sip import Request, Response, make_response

from .conftest import StartPcscf
from .harness import USER1_IMPU, USER2_IMPU, Deployment, FakeCore, Wic, wait_until

_n = itertools.count(1)


def core_request(
    core: FakeCore, method: str, target: str, route: str, *, to_tag: str | None = None
) -> bytes:
    n = next(_n)
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} {target} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{core.port};branch=z9hG4bK-core{n}\r\n"
        f"Route: <{route}>\r\n"
        "Max-Forwards: 69\r\n"
        f"From: <{USER2_IMPU}>;tag=c{n}\r\n"
        f"To: <{USER1_IMPU}>{tag}\r\n"
        f"Call-ID: core{n}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:127.0.0.1:{core.port};transport=tcp>\r\n"
        'P-Charging-Vector: icid-value="core-icid"\r\n'
        "P-Charging-Function-Addresses: ccf=192.0.2.10\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def final_from_pcscf(core: FakeCore, call_id: str) -> Response:
    def found() -> Response | None:
        for r in core.responses:
            if r.call_id == call_id and r.status >= 200:
                return r
        return None

    await wait_until(lambda: found() is not None)
    answer = found()
    assert answer is not None
    return answer


async def _registered(site: WafSite, pcscf: Deployment, wic: Wic, **kw: object) -> str:
    """Register ``wic``; returns the Path URI the core got (without its brackets)."""
    token = (await site.tokens())["access_token"]
    assert (await wic.register(token, **kw)).status == 200
    return str(pcscf.core.of("REGISTER")[-1].paths[0].uri)


async def test_s8_12_terminating_invite_reaches_the_wic_on_its_own_flow(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as wic:
        path = await _registered(site, pcscf, wic)
        pcscf.core.send(core_request(pcscf.core, "INVITE", wic.contact_uri, path))
        invite = await wic.request()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        assert "P-Charging-Vector" not in invite.headers
        assert "P-Charging-Function-Addresses" not in invite.headers
        token = path.split("@", 1)[0].removeprefix("sip:")
        [rr] = invite.record_routes[:1]
        assert rr.sip_uri.user == token and rr.sip_uri.lr
        assert invite.vias[0].transport == "WSS"
        assert invite.uri_text == wic.contact_uri  # the .invalid host is never resolved
        await wic.answer(invite, 200)
        answer = await final_from_pcscf(pcscf.core, invite.call_id)
        assert answer.status == 200


async def test_s9_5_19_notify_to_the_wic_follows_the_record_routed_dialog(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as wic:
        await _registered(site, pcscf, wic)
        reg = next(iter(pcscf.app.bindings._by_flow.values()))
        # The WIC's own reg event SUBSCRIBE: record-routed with its flow token.
        subscribe = wic.request_message("SUBSCRIBE", to=USER1_IMPU, extra="Event: reg\r\n")
        assert (await wic.send(subscribe)).status == 200
        [sub] = [s for s in pcscf.core.of("SUBSCRIBE") if s.call_id.endswith(wic.host)]
        assert str(sub.record_routes[0].uri) == reg.record_route
        # The S-CSCF's NOTIFY on that dialog, through the Record-Route.
        notify = core_request(pcscf.core, "NOTIFY", wic.contact_uri, reg.record_route, to_tag="w1")
        pcscf.core.send(notify)
        got = await wic.request()
        assert got.method == "NOTIFY" and got.to_tag == "w1"
        assert "P-Charging-Vector" not in got.headers
        await wic.answer(got, 200)
        assert (await final_from_pcscf(pcscf.core, got.call_id)).status == 200


async def test_s9_6_20_a_closed_websocket_makes_its_flow_fail_with_430(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as wic:
        path = await _registered(site, pcscf, wic)
        contact = wic.contact_uri
        reg = next(iter(pcscf.app.bindings._by_flow.values()))
    await wait_until(lambda: reg.dead)
    invite = core_request(pcscf.core, "INVITE", contact, path)
    pcscf.core.send(invite)
    answer = await final_from_pcscf(pcscf.core, _call_id(invite))
    assert answer.status == 430
    # A forged token fails the same way.
    forged = path.replace(path[4:10], "aaaaaa", 1)
    pcscf.core.send(bogus := core_request(pcscf.core, "INVITE", contact, forged))
    assert (await final_from_pcscf(pcscf.core, _call_id(bogus))).status == 430


def _call_id(raw: bytes) -> str:
    for line in raw.decode().split("\r\n"):
        if line.startswith("Call-ID: "):
            return line[len("Call-ID: ") :]
    raise AssertionError("no Call-ID")


async def test_s9_6_21_identities_of_a_dead_connection_are_not_moved(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as first:
        await _registered(site, pcscf, first)
    async with pcscf.wic() as second:
        # The same browser comes back on a new connection and calls without registering.
        assert (await second.send(second.request_message("INVITE"))).status == 403
        assert pcscf.core.of("INVITE") == []
        # After its own REGISTER it may.
        await _registered(site, pcscf, second)
        assert (await second.send(second.request_message("MESSAGE"))).status == 200


async def test_s9_1_4_a_re_register_on_a_new_connection_replaces_the_old_flow(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as old, pcscf.wic() as new:
        old_path = await _registered(site, pcscf, old)
        new.instance = old.instance  # the same browser instance, reg-id 1, a new flow
        new.host = old.host
        new_path = await _registered(site, pcscf, new)
        assert new_path != old_path
        bindings = pcscf.app.bindings
        assert len(bindings) == 1
        [reg] = bindings.for_impu("sip:user1_public1@home1.net")
        assert reg.flow_token in new_path
        # The old connection's identities are gone with it.
        assert (await old.send(old.request_message("MESSAGE"))).status == 403
        # Terminating requests by the new Path reach the new connection.
        pcscf.core.send(core_request(pcscf.core, "MESSAGE", new.contact_uri, new_path))
        got = await new.request()
        assert got.method == "MESSAGE"
        await new.answer(got, 200)
        assert (await final_from_pcscf(pcscf.core, got.call_id)).status == 200


async def test_s9_6_22_deregistration_on_behalf_of_a_wic_whose_websocket_closed(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, deregister_on_close=True)
    async with pcscf.wic() as wic:
        path = await _registered(site, pcscf, wic)
        instance = wic.instance
    await wait_until(lambda: len(pcscf.core.of("REGISTER")) == 2)
    dereg = pcscf.core.of("REGISTER")[1]
    assert dereg.expires == 0
    [contact] = dereg.contacts
    assert contact.params.get("expires") == "0"
    assert contact.params.get("+sip.instance") == instance
    assert contact.params.get("reg-id") == "1"
    [creds] = dereg.authorization
    assert creds.username == "user1_private@home1.net"  # type: ignore[attr-defined]
    assert creds.integrity_protected == "auth-done"  # type: ignore[attr-defined]
    assert str(dereg.to.uri) == USER1_IMPU and str(dereg.paths[0].uri) == path
    assert "bearer" not in dereg.serialize().decode().lower()
    await wait_until(lambda: len(pcscf.app.bindings) == 0)


async def test_a_dialog_the_core_opens_gives_the_wic_its_route_set_and_a_bad_one_gets_400(
    site: WafSite, pcscf: Deployment
) -> None:
    """The WIC's answer to an INVITE from the core makes a dialog whose route set is
    the INVITE's Record-Route (its BYE goes along it, whatever Route it writes); an
    INVITE whose Record-Route cannot be read is refused with 400 and reaches nobody."""
    async with pcscf.wic() as wic:
        path = await _registered(site, pcscf, wic)
        far = f"<sip:127.0.0.1:{pcscf.core.port};transport=tcp;lr>"
        request = core_request(pcscf.core, "INVITE", wic.contact_uri, path)
        pcscf.core.send(
            request.replace(b"Max-Forwards", f"Record-Route: {far}\r\nMax-Forwards".encode())
        )
        invite = await wic.request()
        tag = "callee-tag"
        await wic.ws.send(make_response(invite, 200, to_tag=tag).serialize().decode())
        assert (await final_from_pcscf(pcscf.core, invite.call_id)).status == 200
        ours = str(invite.record_routes[0].uri)
        bye = wic.request_message(
            "BYE",
            to_tag=invite.from_tag,
            from_tag=tag,
            call_id=invite.call_id,
            uri="sip:caller@127.0.0.1:9;transport=tcp",
            extra=f"Route: <{ours}>, <sip:127.0.0.1:9;lr>\r\n",
        )
        assert (await wic.send(bye)).status == 200
        [forwarded] = pcscf.core.of("BYE")
        assert [str(r) for r in forwarded.routes] == [far]
        # A Record-Route that does not parse: 400 to the core, nothing to the WIC.
        bad = core_request(pcscf.core, "INVITE", wic.contact_uri, path)
        bad = bad.replace(b"Max-Forwards", b"Record-Route: <sip:@@@;lr\r\nMax-Forwards")
        pcscf.core.send(bad)
        call_id = bad.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
        assert (await final_from_pcscf(pcscf.core, call_id)).status == 400
    assert not [r for r in wic.requests if r.call_id == call_id]
