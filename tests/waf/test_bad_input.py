"""Every bad request gets its OAuth error and changes nothing: no code issued, no code
used up, no token issued."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.waf.conftest import WafSite, pkce_pair


def _redirect_error(response: httpx.Response, site: WafSite) -> dict[str, list[str]]:
    """The error the client got at its registered redirect URI."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert location.geturl().startswith(site.redirect_uri + "?")
    query = parse_qs(location.query)
    assert "code" not in query
    return query


async def _counts(site: WafSite) -> tuple[int, int, int]:
    return site.rows("codes"), site.rows("access_tokens"), site.rows("refresh_tokens")


async def test_plain_or_missing_pkce_is_refused_at_authorize(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    before = await _counts(site)
    plain = await site.authorize(None, code_challenge=verifier, code_challenge_method="plain")
    error = _redirect_error(plain, site)
    assert error["error"] == ["invalid_request"]
    assert error["state"]
    no_method = await site.authorize(None, code_challenge=challenge)  # defaults to plain
    assert _redirect_error(no_method, site)["error"] == ["invalid_request"]
    missing = await site.authorize(None)
    assert _redirect_error(missing, site)["error"] == ["invalid_request"]
    short = await site.authorize(None, code_challenge="abc", code_challenge_method="S256")
    assert _redirect_error(short, site)["error"] == ["invalid_request"]
    assert await _counts(site) == before


async def test_missing_or_wrong_code_verifier_is_refused_and_the_code_survives(
    site: WafSite,
) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    code = await site.code(challenge)
    before = await _counts(site)

    missing = await site.exchange(code, None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    other_verifier, _ = pkce_pair()
    wrong = await site.exchange(code, other_verifier)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The challenge itself presented as the verifier (what `plain` would accept).
    as_plain = await site.exchange(code, challenge)
    assert as_plain.json()["error"] == "invalid_grant"
    assert await _counts(site) == before

    assert (await site.exchange(code, verifier)).status_code == 200


async def test_a_code_is_used_once(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    code = await site.code(challenge)
    first = await site.exchange(code, verifier)
    assert first.status_code == 200
    before = await _counts(site)
    again = await site.exchange(code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert await _counts(site) == before
    assert await site.active(first.json()["access_token"])


async def test_an_expired_code_is_refused(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    code = await site.code(challenge)
    site.clock.advance(61)
    assert (await site.exchange(code, verifier)).json()["error"] == "invalid_grant"


async def test_an_unregistered_redirect_uri_is_never_redirected_to(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    before = await _counts(site)
    for uri in ("https://evil.example/callback", site.redirect_uri + "/x", site.base + "/"):
        response = await site.authorize(challenge, redirect_uri=uri)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "invalid_request" in response.text
    assert await _counts(site) == before

    # A code is bound to its redirect URI: another one at /token is refused.
    code = await site.code(challenge)
    wrong = await site.exchange(code, verifier, redirect_uri=site.base + "/elsewhere")
    assert wrong.json()["error"] == "invalid_grant"
    assert (await site.exchange(code, verifier)).status_code == 200


async def test_an_unknown_client_is_refused(site: WafSite) -> None:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    before = await _counts(site)
    response = await site.authorize(challenge, client_id="mallory")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "invalid_client" in response.text
    # The resource server is a client too, but not one that may ask for codes.
    response = await site.authorize(challenge, client_id="pcscf")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert await _counts(site) == before

    code = await site.code(challenge)
    unknown = await site.exchange(code, verifier, client_id="mallory")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_client"
    as_pcscf = await site.exchange(code, verifier, client_id="pcscf")
    assert as_pcscf.json()["error"] == "invalid_client"
    assert (await site.exchange(code, verifier)).status_code == 200


async def test_s8_5_a_user_without_ims_identity_gets_no_token(site: WafSite) -> None:
    site.identities["guest"] = None
    await site.login("guest")
    verifier, challenge = pkce_pair()
    before = await _counts(site)
    response = await site.authorize(challenge, state="s1")
    error = _redirect_error(response, site)
    assert error["error"] == ["access_denied"]
    assert error["state"] == ["s1"]
    assert await _counts(site) == before

    # The identity goes between /authorize and /token: the code buys nothing.
    await site.login("user1")
    code = await site.code(challenge)
    site.identities["user1"] = None
    before = await _counts(site)
    refused = await site.exchange(code, verifier)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert await _counts(site) == before


async def test_other_malformed_token_requests(site: WafSite) -> None:
    before = await _counts(site)
    cases = [
        (
            {"grant_type": "password", "username": "user1", "password": "x"},
            "unsupported_grant_type",
        ),
        ({"grant_type": "client_credentials", "client_id": "wic"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "client_id": "wic"}, "invalid_request"),
        ({"grant_type": "refresh_token", "client_id": "wic"}, "invalid_request"),
        (
            {"grant_type": "refresh_token", "client_id": "wic", "refresh_token": "x"},
            "invalid_grant",
        ),
    ]
    for form, error in cases:
        response = await site.http.post("/token", data=form)
        assert response.status_code in (400, 401), form
        assert response.json()["error"] == error, form
    as_json = await site.http.post("/token", json={"grant_type": "authorization_code"})
    assert as_json.json()["error"] == "unsupported_grant_type"
    assert await _counts(site) == before


async def test_bad_authorize_requests(site: WafSite) -> None:
    await site.login("user1")
    _, challenge = pkce_pair()
    before = await _counts(site)
    token_type = await site.authorize(challenge, response_type="token")
    assert _redirect_error(token_type, site)["error"] == ["unsupported_response_type"]
    scope = await site.authorize(challenge, scope="ims:register admin")
    assert _redirect_error(scope, site)["error"] == ["invalid_scope"]
    missing_client = await site.http.get("/authorize", params={"response_type": "code"})
    assert missing_client.status_code == 400
    assert "location" not in missing_client.headers
    assert await _counts(site) == before
