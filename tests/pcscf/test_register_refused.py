"""Every kind of bad or missing token at the eP-CSCF (SPEC §1.4 B, §8 items 14–19, 23):
the right 401/403/400 with the RFC 8898 challenge, nothing reaches the stand-in
I-CSCF, no binding exists.  The tokens are the real WAF's, spoilt as an attacker would."""

from __future__ import annotations

import base64
import json

from tests.waf.conftest import WafFactory, WafSite, pkce_pair
from webims.sip import Response
from webims.waf import ImsIdentity

from .conftest import StartPcscf
from .harness import USER1_IMPU, USER2_IMPU, Deployment


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(segment: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def _challenge(answer: Response) -> dict[str, str | None]:
    [challenge] = answer.www_authenticate
    assert challenge.scheme == "Bearer"
    return {k: challenge.get(k) for k in ("realm", "authz_server", "error", "scope")}


def _nothing_forwarded(pcscf: Deployment) -> None:
    assert pcscf.core.of("REGISTER") == []
    assert len(pcscf.app.bindings) == 0


async def _register(pcscf: Deployment, authorization: str | None, **kw: object) -> Response:
    async with pcscf.wic() as wic:
        await wic.ws.send(wic.register_message(authorization, **kw))  # type: ignore[arg-type]
        return await wic.response()


async def _invalid_token(site: WafSite, pcscf: Deployment, token: str) -> None:
    answer = await _register(pcscf, f"Bearer {token}")
    assert answer.status == 401, answer
    assert _challenge(answer) == {
        "realm": "home1.net",
        "authz_server": site.base,
        "error": "invalid_token",
        "scope": None,
    }
    _nothing_forwarded(pcscf)


async def test_s8_14_register_without_authorization_is_challenged(
    site: WafSite, pcscf: Deployment
) -> None:
    answer = await _register(pcscf, None)
    assert answer.status == 401
    assert _challenge(answer) == {
        "realm": "home1.net",
        "authz_server": site.base,
        "error": None,
        "scope": None,
    }
    _nothing_forwarded(pcscf)


async def test_s8_15_expired_token(site: WafSite, pcscf: Deployment) -> None:
    token = (await site.tokens())["access_token"]
    site.clock.advance(600 + 31)  # the WAF's lifetime, then the validator's skew
    await _invalid_token(site, pcscf, token)


async def test_s8_16_forged_token_with_another_impu(site: WafSite, pcscf: Deployment) -> None:
    token = (await site.tokens())["access_token"]
    head, payload, signature = token.split(".")
    claims = _segment(payload)
    claims["impu"] = [USER2_IMPU]  # the signature no longer matches
    forged = f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"
    await _invalid_token(site, pcscf, forged)


async def test_s8_16_token_of_another_issuer(
    site: WafSite, waf_site_factory: WafFactory, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site)
    other = await waf_site_factory()  # another WAF, with keys of its own
    token = (await other.tokens())["access_token"]
    await _invalid_token(site, pcscf, token)


async def test_s8_16_token_for_another_audience(
    waf_site_factory: WafFactory, start_pcscf: StartPcscf
) -> None:
    site = await waf_site_factory(audience=("visited.example.net",))
    pcscf = await start_pcscf(site)
    token = (await site.tokens())["access_token"]
    await _invalid_token(site, pcscf, token)


async def test_s8_16_revoked_token_with_introspection(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, mode="introspect")
    token = (await site.tokens())["access_token"]
    revoked = await site.http.post("/revoke", data={"token": token, "client_id": "wic"})
    assert revoked.status_code == 200
    await _invalid_token(site, pcscf, token)


async def test_s8_16_alg_none_token(site: WafSite, pcscf: Deployment) -> None:
    token = (await site.tokens())["access_token"]
    head, payload, _ = token.split(".")
    none_head = _b64(json.dumps({**_segment(head), "alg": "none"}).encode())
    await _invalid_token(site, pcscf, f"{none_head}.{payload}.")


async def test_s8_16_malformed_token(site: WafSite, pcscf: Deployment) -> None:
    await _invalid_token(site, pcscf, "not-a-jwt")


async def test_s8_17_token_without_the_register_scope(site: WafSite, pcscf: Deployment) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    response = await site.exchange(await site.code(challenge, scope="ims:call"), verifier)
    token = response.json()["access_token"]
    answer = await _register(pcscf, f"Bearer {token}")
    assert answer.status == 403
    assert _challenge(answer) == {
        "realm": "home1.net",
        "authz_server": site.base,
        "error": "insufficient_scope",
        "scope": "ims:register",
    }
    _nothing_forwarded(pcscf)


async def test_s8_18_to_impu_not_in_the_token(site: WafSite, pcscf: Deployment) -> None:
    token = (await site.tokens("user1"))["access_token"]
    answer = await _register(pcscf, f"Bearer {token}", impu=USER2_IMPU)
    assert answer.status == 403
    assert answer.www_authenticate == []
    _nothing_forwarded(pcscf)


async def test_s8_14_unreadable_bearer_credentials_are_a_bad_request(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    for value in ("Bearer", f"Bearer {token} {token}", f'Bearer access_token="{token}", x=1'):
        answer = await _register(pcscf, value)
        assert answer.status == 400, value
        assert _challenge(answer)["error"] == "invalid_request"
    _nothing_forwarded(pcscf)


async def test_s8_23_a_wic_claiming_auth_done_is_still_challenged(
    site: WafSite, pcscf: Deployment
) -> None:
    digest = (
        'Digest username="user1_private@home1.net", realm="home1.net", uri="sip:home1.net", '
        'nonce="", response="", integrity-protected="auth-done"'
    )
    answer = await _register(pcscf, digest)
    assert answer.status == 401
    assert _challenge(answer)["error"] is None
    _nothing_forwarded(pcscf)


async def test_s8_19_both_bearer_syntaxes_register(site: WafSite, pcscf: Deployment) -> None:
    for form in ("Bearer {}", 'Bearer access_token="{}"'):
        token = (await site.tokens())["access_token"]
        answer = await _register(pcscf, form.format(token))
        assert answer.status == 200, form
    assert len(pcscf.core.of("REGISTER")) == 2


async def test_s8_23_what_the_wic_asserts_never_reaches_the_i_cscf(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    extra = (
        f"P-Asserted-Identity: <{USER2_IMPU}>\r\n"
        'P-Visited-Network-ID: "evil.example.net"\r\n'
        'P-Charging-Vector: icid-value="client-made"\r\n'
        "P-Charging-Function-Addresses: ccf=203.0.113.1\r\n"
        "P-Preferred-Identity: <sip:user2_public1@home1.net>\r\n"
        "Path: <sip:evil.example.net;lr>\r\n"
        'Authorization: Digest username="user2_private@home1.net", realm="home1.net", '
        'uri="sip:home1.net", nonce="", response="", integrity-protected="auth-done"\r\n'
    )
    async with pcscf.wic() as wic:
        answer = await wic.register(token, extra=extra)
        assert answer.status == 200
    [register] = pcscf.core.of("REGISTER")
    assert "P-Asserted-Identity" not in register.headers
    assert "P-Preferred-Identity" not in register.headers
    assert "P-Charging-Function-Addresses" not in register.headers
    assert register.p_visited_network_id == ["home1.net"]
    pcv = register.p_charging_vector
    assert pcv is not None and pcv.get("icid-value") != "client-made"
    [auth] = register.authorization
    assert auth.username == "user1_private@home1.net"  # type: ignore[attr-defined]
    assert [p.sip_uri.host for p in register.paths] == ["pcscf.home1.net"]


async def test_s8_18_from_impu_not_in_the_token(site: WafSite, pcscf: Deployment) -> None:
    site.identities["user1"] = ImsIdentity("user1_private@home1.net", (USER1_IMPU,))
    token = (await site.tokens("user1"))["access_token"]
    async with pcscf.wic() as wic:
        text = wic.register_message(f"Bearer {token}").replace(
            f"From: <{USER1_IMPU}>", f"From: <{USER2_IMPU}>"
        )
        await wic.ws.send(text)
        answer = await wic.response()
    assert answer.status == 403
    _nothing_forwarded(pcscf)


async def test_s8_16_a_waf_that_cannot_be_asked_gives_503_not_a_verdict(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    from tests.ports import free_port
    from webims.pcscf.token import TokenValidator

    unreachable = TokenValidator(f"http://127.0.0.1:{free_port()}", "home1.net", timeout=1)
    pcscf = await start_pcscf(site, validator=unreachable)
    token = (await site.tokens())["access_token"]
    answer = await _register(pcscf, f"Bearer {token}")
    assert answer.status == 503
    assert answer.headers.get("Retry-After") == "5"
    assert answer.www_authenticate == []
    _nothing_forwarded(pcscf)
