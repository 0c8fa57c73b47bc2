"""The login form over real HTTPS: sessions, CSRF, limits, redirects, headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from webims.wwsf.app import safe_next

from .conftest import csrf_of, logged_in, login, login_form, request_with_cookie, running_web


def seed_user1(data_dir: Path) -> None:
    from webims.wwsf.accounts import AccountStore
    from webims.wwsf.db import DATABASE_FILE, open_database

    with open_database(data_dir / DATABASE_FILE) as db:
        AccountStore(db).add(
            "user1", "user1-secret", "user1_private@home1.net", ["sip:user1_public1@home1.net"]
        )


async def test_login_ok_starts_a_new_session(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        r = await c.get("/login", params={"next": "/authorize?client_id=wic&x=1"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        cookie = r.headers["set-cookie"]
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=lax", "path=/", "max-age=1800"} <= flags
        assert cookie.startswith("webims_session=")
        before = c.cookies["webims_session"]
        token = csrf_of(r.text)

        r = await c.post(
            "/login",
            data={
                "username": "user1",
                "password": "user1-secret",
                "csrf_token": token,
                "next": "/authorize?client_id=wic&x=1",
            },
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/authorize?client_id=wic&x=1"
        after = c.cookies["webims_session"]
        assert after != before  # no session fixation
        assert await logged_in(c)
        # What the WAF is lent: the session's web user.
        assert await web.wwsf.current_user(request_with_cookie(after)) == "user1"
        assert await web.wwsf.current_user(request_with_cookie(before)) is None
        assert await web.wwsf.current_user(request_with_cookie(after + "x")) is None
        # The planted (pre-login) session id is worth nothing now.
        c.cookies.set("webims_session", before)
        assert not await logged_in(c)


@pytest.mark.parametrize(
    ("user", "password"), [("user1", "wrong"), ("nobody", "user1-secret"), ("", "")]
)
async def test_s8_2_bad_credentials_same_answer_and_no_session(
    tmp_path: Path, user: str, password: str
) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        r = await login(c, user, password)
        assert r.status_code == 401
        assert "Wrong web user or password." in r.text
        assert "set-cookie" not in r.headers
        assert not await logged_in(c)


async def test_unknown_user_and_wrong_password_look_alike(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        wrong = await login(c, "user1", "wrong")
        unknown = await login(c, "nobody", "wrong")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.text.replace('value="user1"', "") == unknown.text.replace('value="nobody"', "")


@pytest.mark.parametrize("csrf", [None, "", "forged-token-value"])
async def test_csrf_missing_or_wrong_is_403_and_no_session(
    tmp_path: Path, csrf: str | None
) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        await login_form(c)
        data = {"username": "user1", "password": "user1-secret", "next": "/"}
        if csrf is not None:
            data["csrf_token"] = csrf
        r = await c.post("/login", data=data)
        assert r.status_code == 403
        assert "set-cookie" not in r.headers
        assert not await logged_in(c)


async def test_csrf_of_another_session_is_refused(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as a, web.client() as b:
        token_a = await login_form(a)
        await login_form(b)
        r = await b.post(
            "/login",
            data={"username": "user1", "password": "user1-secret", "csrf_token": token_a},
        )
        assert r.status_code == 403
        assert not await logged_in(b)
        # Without any session cookie at all: 403 too, and none is made.
        async with web.client() as c:
            r = await c.post(
                "/login",
                data={"username": "user1", "password": "user1-secret", "csrf_token": token_a},
            )
            assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_failed_logins_limited_per_user(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path, login_failures=3, login_window=60) as web:
        for n in range(3):  # three addresses, one failure each
            async with web.client(local_address=f"127.0.0.{n + 2}") as c:
                assert (await login(c, "user1", "guess")).status_code == 401
        async with web.client(local_address="127.0.0.9") as c:
            r = await login(c, "User1", "user1-secret")  # right password, same user
            assert r.status_code == 429
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert "Too many failed logins" in r.text
            assert not await logged_in(c)
            # Another user from that address is not held back.
            r = await login(c, "user2", "whatever")
            assert r.status_code == 401


async def test_failed_logins_limited_per_address(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path, login_failures=3, login_window=60) as web:
        async with web.client(local_address="127.0.0.2") as c:
            for n in range(3):
                assert (await login(c, f"someone{n}", "guess")).status_code == 401
            r = await login(c, "user1", "user1-secret")
            assert r.status_code == 429 and "retry-after" in r.headers
        async with web.client(local_address="127.0.0.3") as c:
            assert (await login(c, "user1", "user1-secret")).status_code == 303


def test_safe_next() -> None:
    assert safe_next(None) == "/"
    assert safe_next("") == "/"
    assert safe_next("/authorize?a=1&b=%2F") == "/authorize?a=1&b=%2F"
    for bad in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "evil.example",
        "javascript:alert(1)",
        "/ok\r\nLocation: https://evil.example",
        "/\tx",
        "http:/evil.example",
    ]:
        assert safe_next(bad) is None, bad


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
async def test_open_redirect_refused(tmp_path: Path, target: str) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        r = await c.get("/login", params={"next": target})
        assert r.status_code == 400
        token = await login_form(c)
        r = await c.post(
            "/login",
            data={
                "username": "user1",
                "password": "user1-secret",
                "csrf_token": token,
                "next": target,
            },
        )
        assert r.status_code == 400
        assert "location" not in r.headers
        assert not await logged_in(c)


async def test_logout_ends_the_session(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        assert (await login(c, "user1", "user1-secret")).status_code == 303
        session_cookie = c.cookies["webims_session"]
        token = (await c.get("/api/config")).json()["csrf_token"]

        r = await c.post("/logout", data={"csrf_token": "wrong"})
        assert r.status_code == 403
        assert await logged_in(c)

        r = await c.post("/logout", headers={"X-CSRF-Token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert 'webims_session=""' in r.headers["set-cookie"]
        assert "max-age=0" in r.headers["set-cookie"].lower()
        assert not await logged_in(c)
        # The cookie, copied before, names nothing any more.
        c.cookies.set("webims_session", session_cookie)
        assert not await logged_in(c)
        assert await web.wwsf.current_user(request_with_cookie(session_cookie)) is None


async def test_api_config(tmp_path: Path) -> None:
    pcscf = "wss://pcscf.home1.net:7443/"
    async with running_web(tmp_path, pcscf_url=pcscf) as web, web.client() as c:
        r = await c.get("/api/config")
        assert r.status_code == 200
        body = r.json()
        assert "csrf_token" not in body  # no session yet
        base = web.settings.web.public_url
        assert body == {
            "pcscf_url": "wss://pcscf.home1.net:7443/",
            "domain": "home1.net",
            "client_id": "wic",
            "authorize_url": f"{base}/authorize",
            "token_url": f"{base}/token",
            "redirect_uri": f"{base}/callback",
            "scope": "ims:register ims:call",
            "logout_url": f"{base}/logout",
            "guests": True,
        }
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "connect-src 'self' wss://pcscf.home1.net:7443" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in r.headers


async def test_wic_served_at_root_and_callback(tmp_path: Path) -> None:
    async with running_web(tmp_path) as web, web.client() as c:
        for path in ("/", "/callback?code=x&state=y"):
            r = await c.get(path)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/html")
            assert "webims" in r.text
        r = await c.get("/wwsf/static/wwsf.css")
        assert r.status_code == 200 and "text/css" in r.headers["content-type"]
        assert (await c.get("/favicon.ico")).status_code == 204
        r = await c.get("/no/such/page")
        assert r.status_code == 404 and "Not found" in r.text
        r = await c.get("/api/nothing")
        assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_s8_1_production_refuses_plain_http(tmp_path: Path) -> None:
    async with running_web(tmp_path, tls=False, production=True) as web, web.client() as c:
        r = await c.get("/login?next=/x")
        assert r.status_code == 308
        assert r.headers["location"] == f"{web.settings.web.public_url}/login?next=/x"
        r = await c.post("/login", data={"username": "user1", "password": "user1-secret"})
        assert r.status_code == 403 and r.json()["error"] == "https_required"
        assert "set-cookie" not in r.headers
    async with running_web(tmp_path, production=True) as web, web.client() as c:
        r = await c.get("/api/config")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_production_needs_an_https_public_url(tmp_path: Path) -> None:
    from webims.config import load_settings
    from webims.wwsf.app import create_web_app
    from webims.wwsf.db import open_database

    settings = load_settings(
        None, data_dir=tmp_path, web={"production": True, "public_url": "http://x"}
    )
    with open_database(tmp_path / "w.sqlite3") as db, pytest.raises(ValueError, match="https"):
        create_web_app(settings, db, session_key=b"k" * 40)


async def test_form_without_length_or_too_large_is_refused(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path) as web, web.client() as c:
        token = await login_form(c)
        form = f"username=user1&password=user1-secret&csrf_token={token}&next=/"
        r = await c.post(
            "/login",
            content=form.encode() + b"&pad=" + b"x" * 20_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            yield form.encode()

        r = await c.post(
            "/login",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 411
        assert not await logged_in(c)
        r = await c.post(
            "/login",
            content=form.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 303
