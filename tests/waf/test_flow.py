"""The authorisation code + PKCE flow over real HTTP, and every claim of a fresh token."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, quote, urlsplit

from tests.waf.conftest import USER1, WafFactory, WafSite, pkce_pair

_WIC = {"client_id": "wic"}


def _segment(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


async def test_s8_3_s8_4_code_pkce_flow_gives_a_token_with_every_claim(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    response = await site.authorize(challenge, state="xyz")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    assert len(query["code"][0]) >= 32

    response = await site.exchange(query["code"][0], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "ims:register ims:call"
    assert body["impi"] == USER1.impi
    assert body["impu"] == list(USER1.impus)
    assert len(body["refresh_token"]) >= 32

    token = body["access_token"]
    header = _segment(token, 0)
    jwks = await site.jwks()
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in [k.kid for k in jwks.keys]

    claims = await site.verify_locally(token)
    metadata = (await site.http.get("/.well-known/oauth-authorization-server")).json()
    assert claims["iss"] == metadata["issuer"] == site.base
    assert claims["aud"] == "home1.net"
    assert claims["sub"] == "user1"
    assert claims["client_id"] == "wic"
    assert claims["impi"] == "user1_private@home1.net"
    assert claims["impu"] == ["sip:user1_public1@home1.net"]
    assert claims["wwsf"] == "wwsf.home1.net"
    assert claims["authorization_entity"] == "webrtc_authserver1@thirdparty.net"
    assert claims["scope"] == "ims:register ims:call"
    assert claims["iat"] == int(site.clock())
    assert claims["exp"] - claims["iat"] == 600
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "client_id",
        "impi",
        "impu",
        "wwsf",
        "authorization_entity",
        "scope",
        "iat",
        "exp",
        "jti",
    }

    jtis = {claims["jti"]}
    for _ in range(5):
        other = await site.tokens("user1")
        jtis.add(_segment(other["access_token"], 1)["jti"])
    assert len(jtis) == 6


async def test_ttl_and_audiences_follow_the_configuration(waf_site_factory: WafFactory) -> None:
    site = await waf_site_factory(access_token_ttl=90, audience=("home1.net", "visited.net"))
    body = await site.tokens("user2")
    assert body["expires_in"] == 90
    claims = await site.verify_locally(body["access_token"])
    assert claims["exp"] - claims["iat"] == 90
    assert claims["aud"] == ["home1.net", "visited.net"]
    assert claims["impi"] == "user2_private@home1.net"


async def test_a_narrower_scope_is_granted_as_asked(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    code = await site.code(challenge, scope="ims:register")
    body = (await site.exchange(code, verifier)).json()
    assert body["scope"] == "ims:register"
    assert (await site.verify_locally(body["access_token"]))["scope"] == "ims:register"


async def test_authorize_without_session_sends_the_browser_to_login(site: WafSite) -> None:
    _, challenge = pkce_pair()
    response = await site.authorize(challenge)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    original = urlsplit(str(response.request.url))
    next_url = original.path + "?" + original.query
    assert location.query == "next=" + quote(next_url, safe="")
    assert site.rows("codes") == 0


async def test_metadata_per_rfc8414(site: WafSite) -> None:
    response = await site.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == site.base
    assert meta["authorization_endpoint"] == site.base + "/authorize"
    assert meta["token_endpoint"] == site.base + "/token"
    assert meta["jwks_uri"] == site.base + "/jwks.json"
    assert meta["introspection_endpoint"] == site.base + "/introspect"
    assert meta["revocation_endpoint"] == site.base + "/revoke"
    assert meta["response_types_supported"] == ["code"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert meta["scopes_supported"] == ["ims:register", "ims:call"]
    jwks = await site.http.get("/jwks.json")
    assert jwks.headers["content-type"] == "application/jwk-set+json"
    for key in jwks.json()["keys"]:
        assert set(key) == {"kty", "crv", "x", "y", "alg", "use", "kid"}


async def test_revoke_user_tokens_revokes_that_user_only(site: WafSite) -> None:
    first = await site.tokens("user1")
    second = await site.tokens("user1")
    other = await site.tokens("user2")
    assert await site.waf.revoke_user_tokens("user1") == 4  # two access, two refresh
    assert not await site.active(first["access_token"])
    assert not await site.active(second["access_token"])
    assert await site.active(other["access_token"])
    response = await site.refresh(first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await site.refresh(other["refresh_token"])).status_code == 200
    assert await site.waf.revoke_user_tokens("user1") == 0


async def test_client_revokes_its_access_token_rfc7009(site: WafSite) -> None:
    body = await site.tokens()
    response = await site.http.post(
        "/revoke", data={"token": body["access_token"], "client_id": "wic"}
    )
    assert response.status_code == 200
    assert not await site.active(body["access_token"])
    # The refresh token is another credential: still good until revoked itself.
    refreshed = await site.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    new = refreshed.json()
    response = await site.http.post(
        "/revoke",
        data={
            "token": new["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": "wic",
        },
    )
    assert response.status_code == 200
    assert not await site.active(new["access_token"])  # its family went with it
    assert (await site.refresh(new["refresh_token"])).json()["error"] == "invalid_grant"
    # An unknown token: 200 and nothing else (RFC 7009 §2.2).
    response = await site.http.post("/revoke", data={"token": "nonsense", "client_id": "wic"})
    assert response.status_code == 200
