"""Requests of a registered WIC through the eP-CSCF (SPEC §1.4 C, §8 items 46–50):
asserted identity, anti-impersonation per connection, Service-Route, Record-Route with
the flow token, in-dialog routing, and no Bearer token towards the core."""

from __future__ import annotations

from tests.waf.conftest import WafSite, pkce_pair
from webims.waf import ImsIdentity

from .conftest import StartPcscf
from .harness import USER1_IMPU, USER1_TEL, USER2_IMPU, Deployment, wait_until


async def _with_two_impus(site: WafSite, start_pcscf: StartPcscf) -> Deployment:
    site.identities["user1"] = ImsIdentity("user1_private@home1.net", (USER1_IMPU, USER1_TEL))
    return await start_pcscf(site, core={"associated": [USER1_IMPU, USER1_TEL]})


async def test_s8_46_preferred_identity_bound_to_the_connection_is_asserted(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await _with_two_impus(site, start_pcscf)
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        extra = f"P-Preferred-Identity: <{USER1_TEL}>\r\nAuthorization: Bearer {token}\r\n"
        answer = await wic.send(wic.request_message("MESSAGE", extra=extra))
        assert answer.status == 200
        assert "P-Charging-Vector" not in answer.headers
    [message] = pcscf.core.of("MESSAGE")
    assert [str(a.uri) for a in message.p_asserted_identity] == [USER1_TEL]
    assert "P-Preferred-Identity" not in message.headers
    assert "Authorization" not in message.headers  # the Bearer token stays at the edge
    assert "bearer" not in message.serialize().decode().lower()
    # Route: the stored Service-Route; a new P-Charging-Vector.
    assert [str(r) for r in message.routes] == [pcscf.core.service_route]
    assert message.p_charging_vector is not None


async def test_s8_47_without_preference_the_default_impu_is_asserted(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await _with_two_impus(site, start_pcscf)
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        extra = f"P-Asserted-Identity: <{USER2_IMPU}>\r\nRoute: <sip:evil.example.net;lr>\r\n"
        answer = await wic.send(wic.request_message("INVITE", from_=USER1_TEL, extra=extra))
        assert answer.status == 200
    [invite] = pcscf.core.of("INVITE")
    assert [str(a.uri) for a in invite.p_asserted_identity] == [USER1_IMPU]
    assert [str(r) for r in invite.routes] == [pcscf.core.service_route]
    # Record-Route with this connection's flow token (contract item 6).
    [rr] = invite.record_routes
    reg = next(iter(pcscf.app.bindings._by_flow.values()))
    assert str(rr.uri) == reg.record_route
    assert rr.sip_uri.user == reg.flow_token and rr.sip_uri.lr


async def test_s8_48_an_identity_not_bound_to_the_connection_is_refused(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        preferred = f"P-Preferred-Identity: <{USER2_IMPU}>\r\n"
        answer = await wic.send(wic.request_message("INVITE", extra=preferred))
        assert answer.status == 403
        answer = await wic.send(wic.request_message("INVITE", from_=USER2_IMPU))
        assert answer.status == 403
    assert pcscf.core.of("INVITE") == []


async def test_s8_49_a_request_on_an_unregistered_connection_is_refused(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as wic:
        answer = await wic.send(wic.request_message("INVITE"))
        assert answer.status == 403
        answer = await wic.send(wic.request_message("MESSAGE"))
        assert answer.status == 403
    assert pcscf.core.received == []


async def test_s8_50_identities_of_connection_a_are_unusable_on_connection_b(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as alice_a, pcscf.wic() as alice_b, pcscf.wic() as bob:
        assert (await alice_a.register(token)).status == 200
        # The same user's other connection, not registered itself.
        assert (await alice_b.send(alice_b.request_message("INVITE"))).status == 403
        # Bob registered on his own connection, trying Alice's IMPU.
        bob_token = (await site.tokens("user2"))["access_token"]
        assert (await bob.register(bob_token, impu=USER2_IMPU)).status == 200
        answer = await bob.send(bob.request_message("INVITE", from_=USER1_IMPU, to=USER2_IMPU))
        assert answer.status == 403
        # B registers successfully itself: now it may.
        token_b = (await site.tokens())["access_token"]
        assert (await alice_b.register(token_b)).status == 200
        assert (await alice_b.send(alice_b.request_message("MESSAGE"))).status == 200
    assert len(pcscf.core.of("MESSAGE")) == 1 and pcscf.core.of("INVITE") == []


async def test_s8_48_in_dialog_requests_follow_our_record_route_only(
    site: WafSite, pcscf: Deployment
) -> None:
    """A request in a dialog goes through our Record-Route for its connection, in a
    dialog this connection made through us, and along that dialog's route set only
    (TS 24.229 5.2.6.3.3): a WIC cannot send "in-dialog" requests wherever it likes."""
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        reg = next(iter(pcscf.app.bindings._by_flow.values()))
        invite = wic.request_message("INVITE", call_id="dialog-1", from_tag="caller")
        answer = await wic.send(invite)
        assert answer.status == 200 and answer.to_tag
        assert [str(rr.uri) for rr in answer.record_routes] == [reg.record_route]
        # A BYE in it, with our Record-Route and then a hop of the WIC's own.
        far_end = f"sip:callee@127.0.0.1:{pcscf.core.port};transport=tcp"
        elsewhere = "<sip:127.0.0.1:9;transport=tcp;lr>"
        route = f"Route: <{reg.record_route}>, {elsewhere}\r\nAuthorization: Bearer {token}\r\n"

        def bye(to_tag: str, routes: str = route) -> str:
            return wic.request_message(
                "BYE",
                to_tag=to_tag,
                extra=routes,
                call_id="dialog-1",
                from_tag="caller",
                uri=far_end,
            )

        assert (await wic.send(bye(answer.to_tag))).status == 200
        [forwarded] = pcscf.core.of("BYE")
        assert forwarded.routes == []  # the dialog's route set: nothing beyond us
        assert "Authorization" not in forwarded.headers
        # A dialog this connection never made, or one without our Record-Route: refused.
        assert (await wic.send(bye("x"))).status == 403
        assert (await wic.send(bye(answer.to_tag, f"Route: {elsewhere}\r\n"))).status == 403
    assert len(pcscf.core.of("BYE")) == 1


async def test_s9_2_8_after_deregistration_requests_are_refused(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        assert (await wic.register(token, expires=0)).status == 200
        [_, dereg] = pcscf.core.of("REGISTER")
        assert dereg.authorization[0].integrity_protected == "auth-done"  # type: ignore[attr-defined]
        await wait_until(lambda: len(pcscf.app.bindings) == 0)
        assert (await wic.send(wic.request_message("INVITE"))).status == 403
    assert pcscf.core.of("INVITE") == []


async def test_s8_49_an_options_probe_of_the_pcscf_itself_needs_no_registration(
    pcscf: Deployment,
) -> None:
    async with pcscf.wic() as wic:
        target = f"sip:pcscf.home1.net:{pcscf.sip_port};transport=tcp"
        answer = await wic.send(wic.request_message("OPTIONS", to=target))
        assert answer.status == 200 and "INVITE" in (answer.headers.get("Allow") or "")
        # Anything for somewhere else still needs a registration on this connection.
        assert (await wic.send(wic.request_message("OPTIONS"))).status == 403
    assert pcscf.core.received == []


# -- the token on later requests (TS 24.371 7.2.1; SPEC §1.4 C) ---------------------------


def _forged(token: str) -> str:
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


async def test_a_token_on_a_later_request_is_checked_again(
    site: WafSite, pcscf: Deployment
) -> None:
    """Outside a dialog, a WIC's token that is no longer good gets what a REGISTER
    with it would (401 ``invalid_token``), another subscriber's 403, and nothing
    goes to the core; a good one, or none at all, lets the bound connection through."""
    token = (await site.tokens())["access_token"]
    other = (await site.tokens("user2"))["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200

        def invite(bearer: str | None, call_id: str) -> str:
            extra = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
            return wic.request_message("INVITE", extra=extra, call_id=call_id)

        forged = await wic.send(invite(_forged(token), "forged"))
        assert forged.status == 401
        assert 'error="invalid_token"' in (forged.headers.get("WWW-Authenticate") or "")
        assert (await wic.send(invite(other, "other"))).status == 403
        assert (await wic.send(invite(token, "good"))).status == 200
        assert (await wic.send(invite(None, "none"))).status == 200
        site.clock.advance(3600)  # the token has expired; the registration has not
        expired = await wic.send(invite(token, "expired"))
        assert expired.status == 401
        assert 'error="invalid_token"' in (expired.headers.get("WWW-Authenticate") or "")
    assert [m.call_id for m in pcscf.core.of("INVITE")] == ["good", "none"]
    assert all("Authorization" not in m.headers for m in pcscf.core.of("INVITE"))


async def test_inside_a_dialog_an_expired_token_still_ends_the_call(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        auth = f"Authorization: Bearer {token}\r\n"
        invite = wic.request_message("INVITE", extra=auth, call_id="call", from_tag="a")
        answer = await wic.send(invite)
        assert answer.status == 200 and answer.to_tag
        site.clock.advance(3600)
        far_end = f"sip:callee@127.0.0.1:{pcscf.core.port};transport=tcp"
        bye = wic.request_message(
            "BYE",
            to_tag=answer.to_tag,
            extra=f"Route: {answer.headers.get('Record-Route')}\r\n{auth}",
            call_id="call",
            from_tag="a",
            uri=far_end,
        )
        assert (await wic.send(bye)).status == 200
    assert len(pcscf.core.of("BYE")) == 1


async def test_without_revalidation_a_later_token_is_only_stripped(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, revalidate_tokens=False)
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        extra = f"Authorization: Bearer {_forged(token)}\r\n"
        assert (await wic.send(wic.request_message("MESSAGE", extra=extra))).status == 200
    [message] = pcscf.core.of("MESSAGE")
    assert "Authorization" not in message.headers


async def test_an_invite_with_a_token_that_does_not_allow_calls_is_refused(
    site: WafSite, pcscf: Deployment
) -> None:
    """A token for registration only (scope ``ims:register``) registers, and carries a
    MESSAGE, but an INVITE with it gets 403 ``insufficient_scope`` naming ``ims:call``."""
    await site.login("user1")
    verifier, challenge = pkce_pair()
    response = await site.exchange(await site.code(challenge, scope="ims:register"), verifier)
    token = response.json()["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        auth = f"Authorization: Bearer {token}\r\n"
        assert (await wic.send(wic.request_message("MESSAGE", extra=auth))).status == 200
        answer = await wic.send(wic.request_message("INVITE", extra=auth))
        assert answer.status == 403
        challenge_value = answer.headers.get("WWW-Authenticate") or ""
        assert 'error="insufficient_scope"' in challenge_value
        assert 'scope="ims:call"' in challenge_value
    assert pcscf.core.of("INVITE") == [] and len(pcscf.core.of("MESSAGE")) == 1
