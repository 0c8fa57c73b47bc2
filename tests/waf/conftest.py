"""A real HTTP deployment of the WAF alone, for its tests.

``waf_site`` builds a minimal Starlette app around ``Waf.routes()`` with a stand-in for
the WWSF's login: ``GET /test-login?user=U`` sets a cookie holding ``U`` and its HMAC, and
the ``current_user`` given to the WAF reads it back (a cookie with a bad MAC is nobody).
Identities come from a dict the test edits.  The app is served by uvicorn on 127.0.0.1
(an ephemeral port bound before the app is built, so the issuer URL is known) and driven
with httpx, redirects not followed.  Time is a ``FakeClock`` the test moves forward.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from joserfc import jws
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from webims.waf import ImsIdentity
from webims.waf.element import Waf, WafConfig

USER1 = ImsIdentity("user1_private@home1.net", ("sip:user1_public1@home1.net",))
USER2 = ImsIdentity("user2_private@home1.net", ("sip:user2_public1@home1.net",))
COOKIE = "test_session"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class WafSite:
    base: str
    waf: Waf
    clock: FakeClock
    http: httpx.AsyncClient
    data_dir: Path
    identities: dict[str, ImsIdentity | None]
    cookie_key: bytes = field(repr=False)

    @property
    def redirect_uri(self) -> str:
        return self.base + "/callback"

    @property
    def pcscf_auth(self) -> tuple[str, str]:
        return ("pcscf", self.waf.resource_server_secrets["pcscf"])

    async def login(self, user: str) -> None:
        response = await self.http.get("/test-login", params={"user": user})
        assert response.status_code == 200

    def logout(self) -> None:
        self.http.cookies.clear()

    async def authorize(self, challenge: str | None, **extra: str) -> httpx.Response:
        params = {
            "response_type": "code",
            "client_id": "wic",
            "redirect_uri": self.redirect_uri,
            "state": "st-" + secrets.token_hex(4),
        }
        if challenge is not None:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        params.update(extra)
        return await self.http.get("/authorize", params={k: v for k, v in params.items() if v})

    async def code(self, challenge: str, **extra: str) -> str:
        response = await self.authorize(challenge, **extra)
        assert response.status_code == 302, response.text
        location = urlsplit(response.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == self.redirect_uri
        query = parse_qs(location.query)
        assert "error" not in query, query
        return query["code"][0]

    async def exchange(self, code: str, verifier: str | None, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": "wic",
        }
        if verifier is not None:
            form["code_verifier"] = verifier
        form.update(extra)
        return await self.http.post("/token", data=form)

    async def tokens(self, user: str = "user1") -> dict[str, Any]:
        """A fresh token response for ``user`` through the whole code + PKCE flow."""
        await self.login(user)
        verifier, challenge = pkce_pair()
        response = await self.exchange(await self.code(challenge), verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "wic"}
        return await self.http.post("/token", data=form)

    async def introspect(self, token: str, auth: tuple[str, str] | None = None) -> httpx.Response:
        return await self.http.post(
            "/introspect", data={"token": token}, auth=auth or self.pcscf_auth
        )

    async def active(self, token: str) -> bool:
        response = await self.introspect(token)
        assert response.status_code == 200, response.text
        active = response.json()["active"]
        assert isinstance(active, bool)
        return active

    async def jwks(self) -> KeySet:
        metadata = (await self.http.get("/.well-known/oauth-authorization-server")).json()
        response = await self.http.get(urlsplit(metadata["jwks_uri"]).path)
        assert response.status_code == 200
        return KeySet.import_key_set(response.json())

    async def verify_locally(self, token: str) -> dict[str, Any]:
        """What a resource server does: the JWKS key named by ``kid``, ES256 only."""
        obj = jws.deserialize_compact(token, await self.jwks(), algorithms=["ES256"])
        claims: dict[str, Any] = json.loads(obj.payload)
        return claims

    def rows(self, table: str) -> int:
        with sqlite3.connect(self.data_dir / "waf.sqlite3") as db:
            count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return count


def _test_login_app(waf: Waf, key: bytes) -> Starlette:
    async def test_login(request: Request) -> Response:
        user = request.query_params["user"]
        mac = hmac.new(key, user.encode(), "sha256").hexdigest()
        response = PlainTextResponse("ok")
        response.set_cookie(COOKIE, f"{user}.{mac}", httponly=True, samesite="lax")
        return response

    return Starlette(routes=[*waf.routes(), Route("/test-login", test_login)])


def _current_user(key: bytes) -> Callable[[Request], Awaitable[str | None]]:
    async def current_user(request: Request) -> str | None:
        user, _, mac = request.cookies.get(COOKIE, "").rpartition(".")
        good = hmac.new(key, user.encode(), "sha256").hexdigest()
        return user if user and hmac.compare_digest(mac, good) else None

    return current_user


WafFactory = Callable[..., Awaitable[WafSite]]


@pytest.fixture
async def waf_site_factory(tmp_path: Path) -> AsyncIterator[WafFactory]:
    running: list[tuple[uvicorn.Server, asyncio.Task[None], WafSite]] = []

    async def start(data_dir: Path | None = None, **config: Any) -> WafSite:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        clock = FakeClock()
        key = secrets.token_bytes(32)
        identities: dict[str, ImsIdentity | None] = {"user1": USER1, "user2": USER2}

        async def resolve_identity(web_user: str) -> ImsIdentity | None:
            return identities.get(web_user)

        directory = data_dir or tmp_path / f"site{len(running)}"
        directory.mkdir(exist_ok=True)
        waf = Waf(
            WafConfig(issuer=base, **config),
            directory,
            _current_user(key),
            resolve_identity,
            clock=clock,
        )
        app = _test_login_app(waf, key)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        http = httpx.AsyncClient(base_url=base, timeout=10)
        site = WafSite(base, waf, clock, http, directory, identities, key)
        running.append((server, task, site))
        return site

    yield start
    for server, task, site in running:
        await site.http.aclose()
        server.should_exit = True
        await task
        await site.waf.close()


@pytest.fixture
async def site(waf_site_factory: WafFactory) -> WafSite:
    return await waf_site_factory()
