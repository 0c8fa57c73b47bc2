"""The identity pool of TS 33.203 X.4: lending, giving back, exhaustion."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.waf.identity import ImsIdentity
from webims.wwsf.db import DATABASE_FILE, open_database
from webims.wwsf.pool import ISSUE_MARGIN, IdentityPool, PoolExhausted, PoolPair

from .conftest import PAIRS, logged_in, login_form, running_web

PAIR_OBJECTS = [PoolPair(p["impi"], p["impu"]) for p in PAIRS]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_pool(tmp_path: Path, clock: Clock) -> IdentityPool:
    return IdentityPool(
        open_database(tmp_path / DATABASE_FILE),
        PAIR_OBJECTS,
        lease=900,
        token_ttl=600,
        clock=clock,
    )


def test_lend_distinct_pairs_then_exhausted(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, clock)
    a, b = pool.new_guest_name(), pool.new_guest_name()
    got_a, got_b = pool.lend(a), pool.lend(b)
    assert got_a.pool and got_b.pool
    assert {got_a.impi, got_b.impi} == {p.impi for p in PAIR_OBJECTS}
    assert pool.lend(a) == got_a  # a holder keeps its pair
    with pytest.raises(PoolExhausted, match="all 2 identities"):
        pool.lend(pool.new_guest_name())
    # Another connection (another process) sees the same leases.
    other = make_pool(tmp_path, clock)
    with pytest.raises(PoolExhausted):
        other.lend(other.new_guest_name())
    assert pool.identity(a) == ImsIdentity(got_a.impi, got_a.impus, pool=True)
    with pytest.raises(ValueError, match="guests"):
        pool.lend("user1")


def test_give_back_without_tokens_frees_at_once(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, clock)
    a, b = pool.new_guest_name(), pool.new_guest_name()
    lent = pool.lend(a)
    pool.lend(b)
    assert pool.give_back(a)
    assert not pool.give_back(a)
    assert pool.identity(a) is None
    assert pool.lend(pool.new_guest_name()).impi == lent.impi


def test_given_back_pair_waits_for_its_tokens_to_expire(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, clock)
    a, b = pool.new_guest_name(), pool.new_guest_name()
    lent = pool.lend(a)
    pool.lend(b)
    assert pool.identity(a) is not None  # a token is issued now: valid 600 s
    pool.give_back(a)
    assert pool.identity(a) is None
    clock.now += 600 + ISSUE_MARGIN - 1
    with pytest.raises(PoolExhausted):
        pool.lend(pool.new_guest_name())
    clock.now += 1
    assert pool.lend(pool.new_guest_name()).impi == lent.impi


def test_lease_lapses_unless_renewed(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, clock)
    a, b = pool.new_guest_name(), pool.new_guest_name()
    pool.lend(a)
    pool.lend(b)
    clock.now += 800
    assert pool.identity(a) is not None  # renewed: 900 s from now
    clock.now += 800
    assert pool.identity(b) is None  # lapsed after 900 s
    assert pool.identity(a) is not None
    assert len(pool.leases()) == 1
    pool.lend(pool.new_guest_name())  # b's pair is free again


def test_lease_must_outlast_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outlast"):
        IdentityPool(open_database(tmp_path / "x.sqlite3"), PAIR_OBJECTS, lease=600, token_ttl=600)


async def test_guest_over_http(tmp_path: Path) -> None:
    async with running_web(tmp_path) as web:
        clients = [web.client() for _ in range(3)]
        try:
            guests = []
            for c in clients[:2]:
                token = await login_form(c)
                r = await c.post("/guest", data={"csrf_token": token, "next": "/"})
                assert r.status_code == 303 and r.headers["location"] == "/"
                assert await logged_in(c)
                user = await web.wwsf.current_user(request_of(c))
                assert user is not None and user.startswith("guest-")
                # (resolve_identity would mark tokens as issued: peek instead.)
                identity = web.wwsf.pool.identity(user, renew=False)
                assert identity is not None and identity.pool
                guests.append(identity.impi)
            assert sorted(guests) == sorted(p["impi"] for p in PAIRS)

            third = clients[2]
            token = await login_form(third)
            r = await third.post("/guest", data={"csrf_token": token})
            assert r.status_code == 503 and "Every guest identity is in use" in r.text
            assert r.headers["retry-after"] == "60"
            r = await third.post(
                "/guest", data={"csrf_token": token}, headers={"Accept": "application/json"}
            )
            assert r.status_code == 503
            assert r.json()["error"] == "temporarily_unavailable"
            assert not await logged_in(third)

            # Without the CSRF token: refused, nothing lent.
            r = await third.post("/guest", data={})
            assert r.status_code == 403

            # The first guest logs out: its pair (no token issued) is free again.
            first = clients[0]
            csrf = (await first.get("/api/config")).json()["csrf_token"]
            r = await first.post(
                "/logout", data={"csrf_token": csrf}, headers={"Accept": "application/json"}
            )
            assert r.status_code == 200 and r.json()["logged_out"].startswith("guest-")
            r = await third.post("/guest", data={"csrf_token": token})
            assert r.status_code == 303
            user = await web.wwsf.current_user(request_of(third))
            assert user is not None
            identity = await web.wwsf.resolve_identity(user)
            assert identity is not None and identity.impi == guests[0]
        finally:
            for c in clients:
                await c.aclose()


def request_of(client: object) -> object:
    from .conftest import request_with_cookie

    cookies = client.cookies  # type: ignore[attr-defined]
    return request_with_cookie(cookies["webims_session"])


async def test_guest_identities_limited_per_address(tmp_path: Path) -> None:
    async with running_web(tmp_path, guest_lends=1) as web:
        async with (
            web.client(local_address="127.0.0.2") as a,
            web.client(local_address="127.0.0.2") as b,
        ):
            for c, status in [(a, 303), (b, 429)]:
                token = await login_form(c)
                r = await c.post("/guest", data={"csrf_token": token})
                assert r.status_code == status, r.text
            assert 1 <= int(r.headers["retry-after"]) <= 300
            assert len(web.wwsf.pool.leases()) == 1  # the refused one took nothing
        async with web.client(local_address="127.0.0.3") as c:
            token = await login_form(c)
            assert (await c.post("/guest", data={"csrf_token": token})).status_code == 303
