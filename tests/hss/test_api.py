"""The provisioning API over a real SQLite store: every resource, every error
path (and that an error changes nothing), the key, and one server on a real
socket."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from webims.hss.api import (
    API_KEY_FILE,
    ApiKeyError,
    ApiServer,
    create_app,
    resolve_api_key,
    serve_api,
)
from webims.hss.model import RegistrationState, ServerAssignment, digest_ha1
from webims.hss.sqlite_store import SqliteStore

KEY = "k3y-for-the-tests-0123456789"

USER1: dict[str, Any] = {
    "name": "user1",
    "password": "user1-secret",
    "impi": "user1_private@home1.net",
    "impus": ["sip:user1_public1@home1.net", "tel:+15550001"],
    "barred_impus": ["sip:user1_barred@home1.net"],
    "allowed_waf": ["webrtc_authserver1@thirdparty.net"],
    "display_names": {"sip:user1_public1@home1.net": "User <One> & co"},
}

USER2: dict[str, Any] = {
    "name": "user2",
    "password": "p",
    "impi": "u2@home1.net",
    "impus": ["sip:u2@home1.net"],
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "hss.sqlite3")
    async with s:
        yield s


@pytest.fixture
async def client(store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store, KEY))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hss", headers={"X-API-Key": KEY}
    ) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]


def assert_no_secret(response: httpx.Response, *secrets: str) -> None:
    text = response.text
    assert "ha1" not in text.lower()
    assert "password" not in text.lower()
    for secret in secrets:
        assert secret not in text


async def test_add_then_get_shows_no_secret(client: httpx.AsyncClient, store: SqliteStore) -> None:
    r = await client.post("/subscribers", json=USER1)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/subscribers/user1"
    ha1 = digest_ha1("user1_private@home1.net", "home1.net", "user1-secret")
    assert_no_secret(r, "user1-secret", ha1)
    view = r.json()
    assert view["name"] == "user1"
    assert view["privates"] == [
        {
            "impi": "user1_private@home1.net",
            "realm": "home1.net",
            "impus": [
                "sip:user1_public1@home1.net",
                "tel:+15550001",
                "sip:user1_barred@home1.net",
            ],
        }
    ]
    barred = {p["impu"]: p["barred"] for p in view["publics"]}
    assert barred == {
        "sip:user1_public1@home1.net": False,
        "tel:+15550001": False,
        "sip:user1_barred@home1.net": True,
    }
    assert view["publics"][0]["display_name"] == "User <One> & co"
    assert view["publics"][0]["state"] == "not_registered"
    assert view["allowed_waf"] == ["webrtc_authserver1@thirdparty.net"]
    assert view["assignment"] is None

    got = await client.get("/subscribers/user1")
    assert got.status_code == 200
    assert got.json() == view
    assert_no_secret(got, "user1-secret", ha1)

    stored = await store.get("user1")
    assert stored is not None
    assert stored.privates[0].ha1 == ha1
    # The three IMPUs form one implicit registration set.
    assert len(stored.implicit_set("tel:+15550001")) == 3


async def test_list(client: httpx.AsyncClient) -> None:
    assert (await client.get("/subscribers")).json() == []
    await client.post("/subscribers", json=USER1)
    await client.post("/subscribers", json=USER2)
    r = await client.get("/subscribers")
    assert r.status_code == 200
    assert [v["name"] for v in r.json()] == ["user1", "user2"]
    assert_no_secret(r, "user1-secret")


async def test_conflicts_are_409_and_change_nothing(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await client.post("/subscribers", json=USER1)
    before = await store.get("user1")
    again = await client.post("/subscribers", json={**USER1, "password": "other"})
    assert_error(again, 409, "exists")
    # Same IMPU, or same IMPI, under a new name.
    for clash in (
        {"name": "mallory", "password": "p", "impi": "m@home1.net", "impus": ["tel:+15550001"]},
        {"name": "mallory", "password": "p", "impi": USER1["impi"], "impus": ["sip:m@home1.net"]},
    ):
        assert_error(await client.post("/subscribers", json=clash), 409, "exists")
    assert await store.get("user1") == before
    assert await store.names() == ["user1"]


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in USER1.items() if k != "impus"},  # missing field
        {**USER1, "impus": []},  # no IMPU
        {**USER1, "impus": ["mailto:user1@home1.net"]},  # not sip:/sips:/tel:
        {**USER1, "impi": "no-realm"},  # IMPI not user@realm
        {**USER1, "name": "two words"},
        {**USER1, "name": "a/b"},
        {**USER1, "password": None},  # a new subscriber needs one
        {**USER1, "password": ""},
        {**USER1, "surprise": 1},  # unknown field
        {**USER1, "impus": "sip:not-a-list@home1.net"},
        {**USER1, "barred_impus": ["sip:user1_public1@home1.net"]},  # listed twice
        {**USER1, "display_names": {"sip:user1_public1@home1.net": "nul\x00"}},
        {**USER1, "display_names": {"sip:elsewhere@home1.net": "x"}},
        {**USER1, "impus": ["sip:bad\x01@home1.net"]},
    ],
)
async def test_invalid_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, store: SqliteStore, body: dict[str, Any]
) -> None:
    r = await client.post("/subscribers", json=body)
    assert_error(r, 422, "invalid")
    assert await store.names() == []


async def test_non_json_body_is_422(client: httpx.AsyncClient, store: SqliteStore) -> None:
    r = await client.post(
        "/subscribers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(r, 422, "invalid")
    assert await store.names() == []


async def test_unknown_subscriber_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/subscribers/nobody"), 404, "not_found")
    assert_error(await client.delete("/subscribers/nobody"), 404, "not_found")
    body = {k: v for k, v in USER1.items() if k != "name"}
    assert_error(await client.put("/subscribers/nobody", json=body), 404, "not_found")
    for action in ("bar", "unbar"):
        url = f"/publics/{quote('sip:nobody@home1.net', safe='')}/{action}"
        assert_error(await client.post(url), 404, "not_found")


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nothing-here"), 404, "not_found")
    assert_error(await client.patch("/subscribers/user1", json={}), 405, "method_not_allowed")


async def test_put_replaces_and_keeps_state_and_ha1(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await client.post("/subscribers", json=USER1)
    assignment = ServerAssignment("sip:scscf.home1.net:5080", "scscf.home1.net")
    await store.set_registration(
        "user1", ["sip:user1_public1@home1.net"], RegistrationState.REGISTERED, assignment
    )
    old_ha1 = (await store.get("user1")).privates[0].ha1  # type: ignore[union-attr]
    update = {
        "impi": USER1["impi"],
        "impus": ["sip:user1_public1@home1.net", "sip:user1_public2@home1.net"],
        "allowed_wwsf": ["wwsf.home1.net"],
    }
    r = await client.put("/subscribers/user1", json=update)
    assert r.status_code == 200, r.text
    assert_no_secret(r, old_ha1)
    view = r.json()
    assert [p["impu"] for p in view["publics"]] == update["impus"]
    assert view["publics"][0]["state"] == "registered"
    assert view["publics"][1]["state"] == "not_registered"
    assert view["assignment"] == {
        "server_name": "sip:scscf.home1.net:5080",
        "diameter_host": "scscf.home1.net",
    }
    assert view["allowed_waf"] == []
    assert view["allowed_wwsf"] == ["wwsf.home1.net"]
    stored = await store.get("user1")
    assert stored is not None
    assert stored.privates[0].ha1 == old_ha1
    assert stored.privates[0].impus == tuple(update["impus"])

    r = await client.put("/subscribers/user1", json={**update, "password": "new-secret"})
    assert r.status_code == 200
    stored = await store.get("user1")
    assert stored is not None
    assert stored.privates[0].ha1 == digest_ha1(USER1["impi"], "home1.net", "new-secret")


async def test_put_errors_change_nothing(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await client.post("/subscribers", json=USER1)
    await client.post("/subscribers", json=USER2)
    before = await store.get("user1")
    body = {k: v for k, v in USER1.items() if k not in ("name", "password")}
    # A name in the body that is not the one in the path.
    assert_error(await client.put("/subscribers/user1", json={**body, "name": "x"}), 422, "invalid")
    # A new IMPI without a password.
    new_impi = {**body, "impi": "fresh@home1.net"}
    assert_error(await client.put("/subscribers/user1", json=new_impi), 422, "invalid")
    # An IMPU of another subscriber.
    stolen = {**body, "impus": ["sip:u2@home1.net"], "barred_impus": [], "display_names": {}}
    assert_error(await client.put("/subscribers/user1", json=stolen), 409, "exists")
    assert await store.get("user1") == before


async def test_delete(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await client.post("/subscribers", json=USER1)
    r = await client.delete("/subscribers/user1")
    assert r.status_code == 200
    assert r.json()["name"] == "user1"
    assert_no_secret(r, "user1-secret")
    assert_error(await client.get("/subscribers/user1"), 404, "not_found")
    assert await store.by_impu("tel:+15550001") is None


async def test_bar_and_unbar_with_url_encoded_impus(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    odd = "sip:odd/slash?x=1#frag@home1.net"
    await client.post("/subscribers", json={**USER1, "impus": [*USER1["impus"], odd]})
    for impu in ("sip:user1_public1@home1.net", odd):
        url = f"/publics/{quote(impu, safe='')}"
        r = await client.post(f"{url}/bar")
        assert r.status_code == 200, r.text
        assert {p["impu"]: p["barred"] for p in r.json()["publics"]}[impu] is True
        pub = (await store.get("user1")).public(impu)  # type: ignore[union-attr]
        assert pub is not None and pub.barred
        r = await client.post(f"{url}/unbar")
        assert r.status_code == 200
        pub = (await store.get("user1")).public(impu)  # type: ignore[union-attr]
        assert pub is not None and not pub.barred


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}, {"X-API-Key": KEY + "x"}],
)
async def test_every_resource_needs_the_key(store: SqliteStore, headers: dict[str, str]) -> None:
    transport = httpx.ASGITransport(app=create_app(store, KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://hss") as anon:
        impu = quote("sip:user1_public1@home1.net", safe="")
        for method, url, body in [
            ("GET", "/subscribers", None),
            ("POST", "/subscribers", USER1),
            ("POST", "/subscribers", {"bad": "body"}),
            ("GET", "/subscribers/user1", None),
            ("PUT", "/subscribers/user1", USER1),
            ("DELETE", "/subscribers/user1", None),
            ("POST", f"/publics/{impu}/bar", None),
            ("POST", f"/publics/{impu}/unbar", None),
            ("GET", "/nothing-here", None),
        ]:
            r = await anon.request(method, url, json=body, headers=headers)
            assert_error(r, 401, "unauthorized")
    assert await store.names() == []


async def test_openapi_document_lists_the_paths(store: SqliteStore) -> None:
    transport = httpx.ASGITransport(app=create_app(store, KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://hss") as anon:
        r = await anon.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert set(doc["paths"]) == {
        "/subscribers",
        "/subscribers/{name}",
        "/publics/{impu}/bar",
        "/publics/{impu}/unbar",
    }
    assert set(doc["paths"]["/subscribers/{name}"]) == {"get", "put", "delete"}
    schemes = doc["components"]["securitySchemes"]
    assert any(s["type"] == "apiKey" and s["name"] == "X-API-Key" for s in schemes.values())
    # What answers are made of has no field for a secret.
    schemas = doc["components"]["schemas"]
    for view in ("SubscriberView", "PrivateView", "PublicView"):
        assert not {k for k in schemas[view]["properties"] if "ha1" in k or "password" in k}
    assert "password" in schemas["NewSubscriber"]["properties"]


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key"):
        create_app(SqliteStore(tmp_path / "x.sqlite3"), "")


# -- the key file ----------------------------------------------------------------


def test_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = resolve_api_key(None, data_dir)
    assert first.created
    assert first.path == data_dir / API_KEY_FILE
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert len(first.value) >= 32
    assert str(first.path) in first.describe()
    second = resolve_api_key(None, data_dir)
    assert not second.created
    assert second.value == first.value
    configured = resolve_api_key("configured-key-0123456789", data_dir)
    assert configured.value == "configured-key-0123456789"
    assert configured.path is None


def test_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / API_KEY_FILE
    path.write_text("a-key-long-enough-to-be-used\n")
    os.chmod(path, 0o644)
    with pytest.raises(ApiKeyError, match="chmod 600"):
        resolve_api_key(None, tmp_path)
    os.chmod(path, 0o600)
    assert resolve_api_key(None, tmp_path).value == "a-key-long-enough-to-be-used"
    path.write_text("short\n")
    with pytest.raises(ApiKeyError, match="no key"):
        resolve_api_key(None, tmp_path)


# -- a real socket ----------------------------------------------------------------


async def start(store: SqliteStore, port: int = 0) -> tuple[asyncio.Task[None], ApiServer]:
    """serve_api in a task; returns once the socket is bound."""
    servers: list[ApiServer] = []
    task = asyncio.create_task(
        serve_api(create_app(store, KEY), "127.0.0.1", port, ready=servers.append)
    )
    while not servers:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return task, servers[0]


async def test_served_over_tcp_and_stopped_by_should_exit(store: SqliteStore) -> None:
    task, server = await start(store)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}) as c:
        r = await c.post("/subscribers", json=USER1)
        assert r.status_code == 201, r.text
        r = await c.get("/subscribers/user1")
        assert r.json()["name"] == "user1"
        assert_error(await c.get("/subscribers", headers={"X-API-Key": "no"}), 401, "unauthorized")
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=base) as c:
            await c.get("/openapi.json")


async def test_stopped_by_cancelling(store: SqliteStore) -> None:
    task, server = await start(store)
    port = server.port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
        assert (await c.get("/openapi.json")).status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    # The port is free again.
    again, server2 = await asyncio.wait_for(start(store, port), 5)
    server2.should_exit = True
    await asyncio.wait_for(again, 10)


async def test_busy_port_is_an_os_error(store: SqliteStore) -> None:
    task, server = await start(store)
    try:
        with pytest.raises(OSError):
            await serve_api(create_app(store, KEY), "127.0.0.1", server.port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
