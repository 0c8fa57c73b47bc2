"""The WIC's REGISTER through the eP-CSCF on real sockets (SPEC §8 items 19–26, §1.4 A):
a real WAF token over WSS, the REGISTER as the stand-in I-CSCF receives it, the 200 OK
as the WIC receives it, the binding and the reg event subscription."""

from __future__ import annotations

from tests.waf.conftest import WafSite
from webims.pcscf.bindings import impu_key
from webims.sip.auth import DigestCredentials

from .conftest import StartPcscf
from .harness import USER1_IMPU, USER1_TEL, Deployment, wait_until


async def test_s8_20_21_22_registered_through_wss_with_the_rewritten_register(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        answer = await wic.register(token)
        assert answer.status == 200, answer
        [register] = pcscf.core.of("REGISTER")
        flow_token = register.paths[0].sip_uri.user
        assert flow_token and pcscf.app.transport.resolve_token(flow_token) is not None
    # The flow token stops resolving once the connection is gone.
    assert pcscf.app.transport.resolve_token(flow_token) is None
    # §8 20: exactly one Authorization, Digest auth-done, no Bearer anywhere.
    [auth_value] = register.headers.get_all("Authorization")
    assert auth_value.startswith("Digest ")
    assert "bearer" not in str(register.serialize()).lower()
    [creds] = register.authorization
    assert isinstance(creds, DigestCredentials)
    assert creds.username == "user1_private@home1.net"
    assert creds.realm == "home1.net"
    assert creds.uri == "sip:home1.net"
    assert creds.nonce == "" and creds.response == ""
    assert creds.integrity_protected == "auth-done"
    # §8 21: the WAF's identity from the token.
    assert creds.authorization_entity == "webrtc_authserver1@thirdparty.net"
    # §8 22: Path with the flow token, lr and ob; Require: path; P-Visited-Network-ID;
    # a P-Charging-Vector; our Via on top; Route to the I-CSCF.
    [path] = register.paths
    uri = path.sip_uri
    assert uri.host == "pcscf.home1.net" and uri.port == pcscf.sip_port
    assert uri.lr and "ob" in uri.params and uri.transport == "tcp"
    assert "path" in register.require
    assert {"path", "outbound"} <= set(register.supported)
    assert register.p_visited_network_id == ["home1.net"]
    pcv = register.p_charging_vector
    assert pcv is not None and pcv.get("orig-ioi") == "home1.net"
    assert pcv.get("icid-value")
    top, client = register.vias[:2]
    assert top.transport == "TCP" and top.port == pcscf.sip_port
    assert client.transport == "WSS" and client.host == wic.host
    assert [str(r.uri) for r in register.routes] == [
        f"sip:127.0.0.1:{pcscf.core.port};transport=tcp;lr"
    ]
    assert str(register.to.uri) == USER1_IMPU and str(register.from_.uri) == USER1_IMPU
    assert register.contacts[0].params.get("reg-id") == "1"


async def test_s8_24_the_200_binds_the_identities_and_loses_its_charging_headers(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    # The token names one IMPU; the registrar's P-Associated-URI adds the tel URI.
    pcscf = await start_pcscf(site, core={"associated": [USER1_IMPU, USER1_TEL]})
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        answer = await wic.register(token)
        assert answer.status == 200
        assert "P-Charging-Vector" not in answer.headers
        assert "P-Charging-Function-Addresses" not in answer.headers
        assert answer.service_routes  # the rest goes to the WIC unchanged
        [reg] = list(pcscf.app.bindings._by_flow.values())
        assert reg.impi == "user1_private@home1.net"
        assert reg.impus == {impu_key(USER1_IMPU), impu_key(USER1_TEL)}
        assert reg.default_impu == USER1_IMPU
        assert reg.service_route == (pcscf.core.service_route,)
        assert reg.flow.transport == "wss"
        assert reg.instance == wic.instance and reg.reg_id == "1"
        assert reg.charging_function_addresses == "ccf=192.0.2.10"
        assert reg.token_expires_at > site.clock.now
        assert pcscf.app.bindings.for_impu(impu_key(USER1_TEL)) == [reg]


async def test_s8_26_reg_event_subscription_after_the_initial_registration(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        await wait_until(lambda: len(pcscf.core.of("SUBSCRIBE")) == 1)
        [subscribe] = pcscf.core.of("SUBSCRIBE")
        assert subscribe.uri_text == USER1_IMPU
        assert str(subscribe.to.uri) == USER1_IMPU
        assert str(subscribe.from_.uri) == "sip:pcscf.home1.net" and subscribe.from_tag
        assert [str(a.uri) for a in subscribe.p_asserted_identity] == ["sip:pcscf.home1.net"]
        assert [str(r) for r in subscribe.routes] == [pcscf.core.service_route]
        assert (
            str(subscribe.contacts[0].uri) == f"sip:pcscf.home1.net:{pcscf.sip_port};transport=tcp"
        )
        assert subscribe.headers.get("Event") == "reg"
        assert subscribe.headers.get("Expires") == "600000"
        assert subscribe.headers.get("Accept") == "application/reginfo+xml"
        # The first NOTIFY (full state) is answered 200 on the same connection.
        notify_answer = await pcscf.core.next_response(1)
        assert notify_answer.status == 200 and notify_answer.cseq.method == "NOTIFY"
        # A re-REGISTER on the same flow does not subscribe again.
        assert (await wic.register((await site.tokens())["access_token"])).status == 200
        assert len(pcscf.core.of("REGISTER")) == 2
        assert len(pcscf.core.of("SUBSCRIBE")) == 1
