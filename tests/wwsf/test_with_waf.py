"""The WWSF with the real WAF mounted: code + PKCE through the login form,
and logout revoking the user's tokens (they introspect inactive after it)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .conftest import Web, csrf_of, running_web
from .test_login import seed_user1


async def token_for(web: Web, c: httpx.AsyncClient, login: dict[str, str] | None) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "response_type": "code",
        "client_id": "wic",
        "redirect_uri": f"{web.url}/callback",
        "scope": "ims:register ims:call",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = await c.get("/authorize", params=params)
    if login is not None:
        assert r.status_code == 302 and r.headers["location"].startswith("/login?next=")
        r = await c.get(r.headers["location"])
        form = {
            **login,
            "csrf_token": csrf_of(r.text),
            "next": parse_qs(urlsplit(str(r.url)).query)["next"][0],
        }
        path = "/guest" if "username" not in login else "/login"
        r = await c.post(path, data=form)
        assert r.status_code == 303, r.text
        r = await c.get(r.headers["location"])
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    r = await c.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{web.url}/callback",
            "client_id": "wic",
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def active(web: Web, c: httpx.AsyncClient, token: str) -> bool:
    waf = web.wwsf.waf
    assert waf is not None
    secret = waf.resource_server_secrets["pcscf"]  # type: ignore[attr-defined]
    r = await c.post("/introspect", data={"token": token}, auth=("pcscf", secret))
    assert r.status_code == 200, r.text
    return bool(r.json()["active"])


async def test_logout_revokes_the_users_tokens(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path, with_waf=True) as web, web.client() as c:
        body = await token_for(web, c, {"username": "user1", "password": "user1-secret"})
        assert body["impi"] == "user1_private@home1.net"
        assert body["impu"] == ["sip:user1_public1@home1.net"]
        assert await active(web, c, body["access_token"])
        csrf = (await c.get("/api/config")).json()["csrf_token"]
        r = await c.post(
            "/logout", data={"csrf_token": csrf}, headers={"Accept": "application/json"}
        )
        assert r.status_code == 200 and r.json()["revoked_tokens"] >= 1
        assert not await active(web, c, body["access_token"])
        r = await c.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": "wic",
            },
        )
        assert r.status_code == 400


async def test_guest_token_carries_a_pool_identity(tmp_path: Path) -> None:
    async with running_web(tmp_path, with_waf=True) as web, web.client() as c:
        body = await token_for(web, c, {})
        assert body["impi"] in {"pool1_private@home1.net", "pool2_private@home1.net"}
        assert await active(web, c, body["access_token"])
