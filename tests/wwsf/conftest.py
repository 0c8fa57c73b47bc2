"""A real WWSF for the tests: uvicorn over HTTPS on 127.0.0.1 (a free port),
the dev CA of a temporary data directory, real SQLite; clients are httpx
trusting that CA."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from tests.ports import free_port
from webims.config import Settings, load_settings
from webims.devca import ensure_dev_ca, server_ssl_context
from webims.transport.http import HttpServer
from webims.wwsf.accounts import AccountStore
from webims.wwsf.app import WafFactory, Wwsf, create_web_app
from webims.wwsf.db import DATABASE_FILE, open_database
from webims.wwsf.element import default_waf_factory
from webims.wwsf.sessions import load_session_key

PAIRS = [
    {"impi": "pool1_private@home1.net", "impu": "sip:pool1_public1@home1.net"},
    {"impi": "pool2_private@home1.net", "impu": "sip:pool2_public1@home1.net"},
]


@dataclass
class Web:
    url: str
    settings: Settings
    wwsf: Wwsf
    ca: Path

    def client(self, local_address: str | None = None, **kw: Any) -> httpx.AsyncClient:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        transport = httpx.AsyncHTTPTransport(verify=ctx, local_address=local_address)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=10, **kw)


@asynccontextmanager
async def running_web(
    data_dir: Path,
    *,
    waf_factory: WafFactory | None = None,
    with_waf: bool = False,
    tls: bool = True,
    **web: Any,
) -> AsyncIterator[Web]:
    port = free_port()
    scheme = "https" if tls else "http"
    web.setdefault("public_url", f"https://127.0.0.1:{port}")
    web.setdefault("pool", PAIRS)
    settings = load_settings(None, data_dir=data_dir, web={"port": port, **web})
    if with_waf:
        waf_factory = default_waf_factory(settings)
    ca = ensure_dev_ca(data_dir)
    db = open_database(data_dir / DATABASE_FILE)
    app = create_web_app(
        settings,
        db,
        session_key=load_session_key(data_dir / "wwsf"),
        waf_factory=waf_factory,
    )
    ctx = server_ssl_context(ca.server_cert, ca.server_key) if tls else None
    server = HttpServer(app, "127.0.0.1", port, ctx)
    task = await server.start_serving()
    try:
        yield Web(f"{scheme}://127.0.0.1:{port}", settings, app.state.wwsf, ca.ca_cert)
    finally:
        await server.stop(task)
        db.close()


@pytest.fixture
def accounts_of(tmp_path: Path) -> Callable[[], AccountStore]:
    def make() -> AccountStore:
        return AccountStore(open_database(tmp_path / DATABASE_FILE))

    return make


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html
    return m.group(1)


async def login_form(client: httpx.AsyncClient, next_path: str = "/") -> str:
    r = await client.get("/login", params={"next": next_path})
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


async def login(
    client: httpx.AsyncClient, user: str, password: str, next_path: str = "/"
) -> httpx.Response:
    token = await login_form(client, next_path)
    return await client.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": token, "next": next_path},
    )


def request_with_cookie(value: str) -> Request:
    """A request carrying the session cookie ``value``."""
    cookie = f"webims_session={value}".encode()
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", cookie)]})


async def logged_in(client: httpx.AsyncClient) -> bool:
    """Whether the client's session is logged in (GET /login then redirects)."""
    r = await client.get("/login", params={"next": "/x"})
    return r.status_code == 303
