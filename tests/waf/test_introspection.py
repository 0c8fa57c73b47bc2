"""RFC 7662 introspection: resource servers only; anything but a live token of ours is
``{"active": false}``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from joserfc import jws
from joserfc.jwk import ECKey

from tests.waf.conftest import WafFactory, WafSite


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    head, body, _ = token.split(".")
    decode = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))  # noqa: E731
    return decode(head), decode(body)


async def test_a_valid_token_is_active_with_its_claims(site: WafSite) -> None:
    body = await site.tokens()
    response = await site.introspect(body["access_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    result = response.json()
    claims = await site.verify_locally(body["access_token"])
    assert result == {"active": True, "token_type": "Bearer", **claims}


async def test_an_expired_token_is_inactive(waf_site_factory: WafFactory) -> None:
    site: WafSite = await waf_site_factory(access_token_ttl=5)
    body = await site.tokens()
    site.clock.advance(4)
    assert await site.active(body["access_token"])
    site.clock.advance(1)
    assert (await site.introspect(body["access_token"])).json() == {"active": False}


async def test_a_revoked_token_is_inactive(site: WafSite) -> None:
    body = await site.tokens()
    other = await site.tokens()
    revoked = await site.http.post(
        "/revoke", data={"token": body["access_token"], "client_id": "wic"}
    )
    assert revoked.status_code == 200
    assert (await site.introspect(body["access_token"])).json() == {"active": False}
    assert await site.active(other["access_token"])


async def test_a_forged_token_is_inactive(site: WafSite) -> None:
    body = await site.tokens()
    header, claims = _parts(body["access_token"])
    # Same header (our kid) and claims, re-signed with another P-256 key.
    intruder = ECKey.generate_key("P-256", private=True)
    claims["impu"] = ["sip:someone_else@home1.net"]
    forged = jws.serialize_compact(header, json.dumps(claims), intruder, algorithms=["ES256"])
    assert (await site.introspect(forged)).json() == {"active": False}
    # A valid signature over other claims (a payload swapped in) is forged too.
    head, _, sig = body["access_token"].split(".")
    swapped = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    assert (await site.introspect(swapped)).json() == {"active": False}
    assert await site.active(body["access_token"])


async def test_alg_none_and_hs256_tokens_are_inactive(site: WafSite) -> None:
    body = await site.tokens()
    header, claims = _parts(body["access_token"])
    payload = _b64(json.dumps(claims).encode())

    none_head = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode())
    for token in (f"{none_head}.{payload}.", f"{none_head}.{payload}"):
        assert (await site.introspect(token)).json() == {"active": False}

    # HS256 keyed with the public JWK itself: the classic algorithm confusion.
    jwks = (await site.http.get("/jwks.json")).content
    hs_head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).encode())
    for secret in (jwks, json.dumps((await site.jwks()).keys[0].as_dict()).encode(), b"secret"):
        mac = hmac.new(secret, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{hs_head}.{payload}.{_b64(mac)}"
        assert (await site.introspect(token)).json() == {"active": False}


async def test_garbage_and_foreign_tokens_are_inactive(site: WafSite) -> None:
    body = await site.tokens()
    head, payload, signature = body["access_token"].split(".")
    odd_headers = [_b64(b) for b in (b"1", b"[]", b'"x"', b"null", b"\xff", b"{")]
    garbage = ["", "x", "a.b.c", body["refresh_token"], body["access_token"] + "x"]
    garbage += [f"{h}.{payload}.{signature}" for h in odd_headers]
    garbage += [f"{head}.{payload}.{signature[:-4]}", f"{head}.{payload}.{signature}.x"]
    garbage += [f"{head}.{payload}.{signature}=", f"{head}.{_b64(b'[1]')}.{signature}"]
    for token in garbage:
        response = await site.introspect(token)
        assert response.status_code == 200
        assert response.json() == {"active": False}


async def test_introspection_requires_resource_server_credentials(site: WafSite) -> None:
    body = await site.tokens()
    for auth in (("pcscf", "wrong-secret-0123456789"), ("nobody", "x" * 20), ("wic", "x" * 20)):
        response = await site.introspect(body["access_token"], auth=auth)
        assert response.status_code == 401, auth
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
        assert "active" not in response.json()
    anonymous = await site.http.post("/introspect", data={"token": body["access_token"]})
    assert anonymous.status_code == 401
    as_client = await site.http.post(
        "/introspect", data={"token": body["access_token"], "client_id": "wic"}
    )
    assert as_client.status_code == 401
    missing = await site.http.post("/introspect", data={}, auth=site.pcscf_auth)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_resource_server_secret_is_made_once_and_private(site: WafSite) -> None:
    path = site.data_dir / "waf" / "pcscf-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == site.pcscf_auth[1]
    assert len(site.pcscf_auth[1]) >= 32
