"""The subscriber store contract, run against SQLite and PostgreSQL alike.

Every error path checks that nothing was written, by reading back every
identity the refused write carried.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from webims.hss import open_store
from webims.hss.migrations import LATEST, MIGRATIONS
from webims.hss.model import (
    IdentityType,
    InvalidSubscriber,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    ServiceProfile,
    Subscriber,
    digest_ha1,
)
from webims.hss.postgres_store import PostgresStore, migrate_postgres
from webims.hss.sqlite_store import SqliteStore, migrate_sqlite
from webims.hss.sqlstore import POSTGRES, SQLITE
from webims.hss.store import StoreError, SubscriberExists, SubscriberNotFound, SubscriberStore

IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><ApplicationServer>"
    "<ServerName>sip:as1.home1.net</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)
SCSCF = ServerAssignment("sip:scscf1.home1.net:5080", "scscf1.home1.net")


def full() -> Subscriber:
    """A subscription with every field away from its default."""
    return Subscriber(
        name="user1",
        privates=(
            PrivateIdentity.with_password(
                "user1_private@home1.net",
                "user1-secret",
                ("sip:user1_public1@home1.net", "tel:+15550001", "sip:user1_public2@home1.net"),
            ),
            PrivateIdentity(
                impi="user1_phone@home1.net",
                realm="ims.home1.net",
                ha1=digest_ha1("user1_phone@home1.net", "ims.home1.net", "x"),
                impus=("sip:user1_public2@home1.net", "sip:user1_public1@home1.net"),
            ),
        ),
        publics=(
            PublicIdentity(
                "sip:user1_public1@home1.net",
                irs="irs1",
                service_profile="basic",
                display_name="User <One> ünïcode",
                state=RegistrationState.REGISTERED,
            ),
            PublicIdentity("tel:+15550001", irs="irs1", service_profile="basic"),
            PublicIdentity(
                "sip:user1_public2@home1.net",
                irs="irs2",
                service_profile="premium",
                barred=True,
                state=RegistrationState.UNREGISTERED,
            ),
            PublicIdentity(
                "sip:user1-!.*!@home1.net",
                irs="irs3",
                service_profile="premium",
                identity_type=IdentityType.WILDCARDED_IMPU,
            ),
            PublicIdentity(
                "sip:conf-user1@home1.net",
                irs="irs4",
                service_profile="basic",
                identity_type=IdentityType.DISTINCT_PSI,
            ),
        ),
        profiles=(ServiceProfile("basic"), ServiceProfile("premium", IFC)),
        allowed_waf=("webrtc_authserver1@thirdparty.net", "waf2.thirdparty.net"),
        allowed_wwsf=("wwsf.home1.net",),
        barred_auth_entities=("evil.example.net",),
        mandatory_capabilities=(7, 1),
        optional_capabilities=(3,),
        roaming_networks=("visited1.net", "*"),
        ccf=("aaa://ccf1.home1.net", "aaa://ccf2.home1.net"),
        ecf=("aaa://ecf1.home1.net",),
        assignment=SCSCF,
    )


def simple(n: int, *impus: str, impi: str | None = None) -> Subscriber:
    impus = impus or (f"sip:user{n}@home1.net",)
    return Subscriber(
        name=f"user{n}",
        privates=(
            PrivateIdentity.with_password(impi or f"user{n}_private@home1.net", "pw", impus),
        ),
        publics=tuple(PublicIdentity(u, irs="irs", service_profile="default") for u in impus),
    )


async def assert_absent(store: SubscriberStore, sub: Subscriber, *, but: Subscriber) -> None:
    """None of ``sub``'s identities resolves to anything but ``but``'s owner."""
    owners = {but.name}
    for pub in sub.publics:
        found = await store.by_impu(pub.impu)
        assert found is None or found.name in owners, pub.impu
    for priv in sub.privates:
        found = await store.by_impi(priv.impi)
        assert found is None or found.name in owners, priv.impi


# -- reads ---------------------------------------------------------------------


async def test_a_full_subscriber_reads_back_equal_by_every_key(store: SubscriberStore) -> None:
    sub = full()
    await store.add(sub)
    await store.add(simple(2))
    assert await store.get("user1") == sub
    for pub in sub.publics:
        assert await store.by_impu(pub.impu) == sub, pub.impu
    for priv in sub.privates:
        assert await store.by_impi(priv.impi) == sub, priv.impi
    assert await store.by_impu("sip:user1-anything@home1.net") == sub  # the wildcarded IMPU
    assert await store.names() == ["user1", "user2"]
    assert await store.get("user3") is None
    assert await store.by_impi("nobody@home1.net") is None
    assert await store.by_impu("sip:nobody@home1.net") is None


async def test_names_are_sorted_as_python_sorts(store: SubscriberStore) -> None:
    names = ["b", "B", "a_1", "a-2", "Zed", "ä"]
    for i, name in enumerate(names):
        await store.add(replace(simple(i), name=name))
    assert await store.names() == sorted(names)


async def test_wildcards_answer_only_when_no_identity_matches_exactly(
    store: SubscriberStore,
) -> None:
    rooms = Subscriber(
        name="rooms",
        privates=(PrivateIdentity.with_password("rooms@home1.net", "x", ("sip:rooms@home1.net",)),),
        publics=(
            PublicIdentity("sip:rooms@home1.net", "irs", "default"),
            PublicIdentity(
                "sip:chatroom-!.*!@home1.net",
                "psi",
                "default",
                identity_type=IdentityType.WILDCARDED_PSI,
            ),
        ),
    )
    special = simple(2, "sip:chatroom-special@home1.net")
    await store.add(rooms)
    await store.add(special)
    assert await store.by_impu("sip:chatroom-42@home1.net") == rooms
    assert await store.by_impu("sip:chatroom-@home1.net") == rooms
    assert await store.by_impu("sip:chatroom-!.*!@home1.net") == rooms
    assert await store.by_impu("sip:chatroom-special@home1.net") == special
    # The whole URI must match, and the literal parts are literal.
    assert await store.by_impu("sip:chatroom-42@home1.net.evil") is None
    assert await store.by_impu("sip:chatroom-42@home1xnet") is None
    assert await store.by_impu("sip:xchatroom-42@home1.net") is None


# -- add -------------------------------------------------------------------------


@pytest.mark.parametrize("clash", ["name", "impi", "impu", "wildcard"])
async def test_add_refuses_a_taken_identity_and_writes_nothing(
    store: SubscriberStore, clash: str
) -> None:
    first = full()
    await store.add(first)
    fresh = "sip:fresh@home1.net"
    second = {
        "name": replace(simple(2, fresh), name="user1"),
        "impi": simple(2, fresh, impi="user1_phone@home1.net"),
        # The taken IMPU comes last, after rows for the others were inserted.
        "impu": simple(2, fresh, "sip:user1_public2@home1.net"),
        "wildcard": simple(2, fresh, "sip:user1-!.*!@home1.net"),
    }[clash]
    with pytest.raises(SubscriberExists) as refused:
        await store.add(second)
    # Said in the model's words, whatever the database's message was.
    assert (
        str(refused.value)
        == {
            "name": "a subscriber of this name is already provisioned",
            "impi": "an IMPI of this subscriber is already provisioned",
            "impu": "an IMPU of this subscriber is already provisioned",
            "wildcard": "an IMPU of this subscriber is already provisioned",
        }[clash]
    )
    assert await store.names() == ["user1"]
    assert await store.get("user1") == first
    await assert_absent(store, second, but=first)
    assert await store.by_impu(fresh) is None


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(replace(full(), name="user 1"), id="name-with-space"),
        pytest.param(replace(full(), privates=()), id="no-impi"),
        pytest.param(
            replace(full(), privates=(replace(full().privates[0], ha1="XYZ"),)), id="bad-ha1"
        ),
        pytest.param(
            replace(
                full(),
                privates=(replace(full().privates[0], impus=("sip:someone-else@home1.net",)),),
            ),
            id="impi-linked-to-foreign-impu",
        ),
        pytest.param(
            replace(full(), publics=(*full().publics, replace(full().publics[1], irs="x"))),
            id="impu-twice",
        ),
        pytest.param(
            replace(full(), publics=(replace(full().publics[0], service_profile="gold"),)),
            id="unknown-profile",
        ),
        pytest.param(
            replace(full(), profiles=(*full().profiles, ServiceProfile("basic", IFC))),
            id="profile-twice",
        ),
        pytest.param(
            replace(
                full(),
                privates=(
                    replace(
                        full().privates[0],
                        impus=("sip:user1_public1@home1.net", "sip:user1_public1@home1.net"),
                    ),
                ),
            ),
            id="impi-lists-impu-twice",
        ),
    ],
)
async def test_invalid_subscribers_are_refused_and_write_nothing(
    store: SubscriberStore, broken: Subscriber
) -> None:
    with pytest.raises(InvalidSubscriber):
        await store.add(broken)
    assert await store.names() == []
    await store.add(full())  # would clash with anything the refused add left
    with pytest.raises(InvalidSubscriber):
        await store.replace(broken)
    assert await store.get("user1") == full()


# -- set_registration, set_barred --------------------------------------------------


async def test_set_registration_changes_states_and_assignment(store: SubscriberStore) -> None:
    sub = replace(full(), assignment=None)
    await store.add(sub)
    irs1 = ["sip:user1_public1@home1.net", "tel:+15550001"]
    await store.set_registration("user1", irs1, RegistrationState.REGISTERED, SCSCF)
    after = await store.get("user1")
    assert after is not None
    assert after.assignment == SCSCF
    assert [p.state for p in after.publics] == [
        RegistrationState.REGISTERED,
        RegistrationState.REGISTERED,
        RegistrationState.UNREGISTERED,
        RegistrationState.NOT_REGISTERED,
        RegistrationState.NOT_REGISTERED,
    ]
    # Everything else is as provisioned.
    assert replace(after, publics=sub.publics, assignment=None) == sub

    await store.set_registration("user1", irs1, RegistrationState.NOT_REGISTERED, None)
    cleared = await store.get("user1")
    assert cleared is not None
    assert cleared.assignment is None
    assert [p.state for p in cleared.publics][:2] == [RegistrationState.NOT_REGISTERED] * 2

    # The assignment alone.
    await store.set_registration("user1", [], RegistrationState.REGISTERED, SCSCF)
    assert await store.get("user1") == replace(cleared, assignment=SCSCF)


@pytest.mark.parametrize(
    "impus",
    [
        pytest.param(["sip:user1_public1@home1.net", "sip:unknown@home1.net"], id="unknown-impu"),
        pytest.param(["sip:unknown@home1.net", "sip:user1_public1@home1.net"], id="unknown-first"),
        pytest.param(["sip:user1_public1@home1.net", "sip:user2@home1.net"], id="other-subs-impu"),
        pytest.param(["sip:user1-42@home1.net"], id="wildcard-match-not-the-identity"),
    ],
)
async def test_set_registration_with_an_identity_it_lacks_changes_nothing(
    store: SubscriberStore, impus: list[str]
) -> None:
    await store.add(full())
    await store.add(simple(2))
    other = ServerAssignment("sip:scscf2.home1.net", "scscf2.home1.net")
    with pytest.raises(SubscriberNotFound):
        await store.set_registration("user1", impus, RegistrationState.REGISTERED, other)
    assert await store.get("user1") == full()
    assert await store.get("user2") == simple(2)


async def test_set_registration_of_an_unknown_subscriber(store: SubscriberStore) -> None:
    await store.add(simple(2))
    with pytest.raises(SubscriberNotFound):
        await store.set_registration(
            "user1", ["sip:user2@home1.net"], RegistrationState.REGISTERED, SCSCF
        )
    assert await store.get("user2") == simple(2)


async def test_set_barred(store: SubscriberStore) -> None:
    sub = full()
    await store.add(sub)
    impu = "sip:user1_public1@home1.net"
    barred = await store.set_barred(impu, True)
    assert barred == sub.with_public(replace(sub.publics[0], barred=True))
    assert await store.get("user1") == barred
    assert await store.set_barred(impu, False) == sub
    assert await store.set_barred(impu, False) == sub
    with pytest.raises(SubscriberNotFound):
        await store.set_barred("sip:user1-42@home1.net", True)
    with pytest.raises(SubscriberNotFound):
        await store.set_barred("sip:nobody@home1.net", True)
    assert await store.get("user1") == sub


async def test_concurrent_writers_never_show_half_a_registration(store_url: str) -> None:
    """Writers on several connections register and deregister an implicit
    set while others bar and read it: every read sees a whole transaction."""
    irs1 = ["sip:user1_public1@home1.net", "tel:+15550001"]
    stores = [open_store(store_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    await stores[0].add(replace(full(), assignment=None))
    # full() provisions the set half registered; start from a whole state, so
    # that a read before the first writer commits is not taken for a torn one.
    await stores[0].set_registration("user1", irs1, RegistrationState.NOT_REGISTERED, None)
    reads = 0

    async def register(store: SubscriberStore, k: int) -> None:
        for j in range(15):
            if (j + k) % 2:
                scscf = ServerAssignment(f"sip:scscf{k}.home1.net", f"scscf{k}.home1.net")
                await store.set_registration("user1", irs1, RegistrationState.REGISTERED, scscf)
            else:
                await store.set_registration("user1", irs1, RegistrationState.NOT_REGISTERED, None)

    async def bar(store: SubscriberStore) -> None:
        for j in range(15):
            await store.set_barred("sip:user1_public2@home1.net", bool(j % 2))

    async def read(store: SubscriberStore) -> None:
        nonlocal reads
        for _ in range(30):
            sub = await store.by_impu("tel:+15550001")
            assert sub is not None
            states = {p.state for p in sub.publics if p.impu in irs1}
            assert len(states) == 1, "half a registration"
            assert (sub.assignment is None) == (states == {RegistrationState.NOT_REGISTERED})
            reads += 1

    try:
        await asyncio.gather(
            register(stores[0], 1),
            register(stores[1], 2),
            bar(stores[2]),
            read(stores[2]),
            read(stores[1]),
        )
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert reads == 60


# -- replace, remove ---------------------------------------------------------------


async def test_replace_swaps_every_field(store: SubscriberStore) -> None:
    old = full()
    await store.add(old)
    new = Subscriber(
        name="user1",
        privates=(
            PrivateIdentity.with_password(
                "user1_new@home1.net", "pw", ("sip:user1_public1@home1.net", "sip:new@home1.net")
            ),
        ),
        publics=(
            PublicIdentity(
                "sip:user1_public1@home1.net",
                "irs9",
                "gold",
                state=RegistrationState.REGISTERED,
                display_name="One",
            ),
            PublicIdentity("sip:new@home1.net", "irs9", "gold", barred=True),
        ),
        profiles=(ServiceProfile("gold", IFC),),
        allowed_waf=("waf9.thirdparty.net",),
        optional_capabilities=(9, 8),
        assignment=ServerAssignment("sip:scscf9.home1.net", "scscf9.home1.net"),
    )
    await store.replace(new)
    assert await store.get("user1") == new
    assert await store.by_impu("tel:+15550001") is None
    assert await store.by_impu("sip:user1-42@home1.net") is None
    assert await store.by_impi("user1_private@home1.net") is None
    assert await store.by_impu("sip:new@home1.net") == new
    # What it gave up is free for another.
    await store.add(simple(2, "tel:+15550001", impi="user1_private@home1.net"))
    assert await store.names() == ["user1", "user2"]


async def test_replace_refuses_an_unknown_subscriber_or_a_taken_identity(
    store: SubscriberStore,
) -> None:
    with pytest.raises(SubscriberNotFound):
        await store.replace(full())
    assert await store.names() == []
    await store.add(full())
    await store.add(simple(2))
    taking = simple(2, "sip:user2@home1.net", "sip:user1_public2@home1.net")
    with pytest.raises(SubscriberExists):
        await store.replace(taking)
    assert await store.get("user1") == full()
    assert await store.get("user2") == simple(2)


async def test_remove(store: SubscriberStore) -> None:
    await store.add(full())
    await store.add(simple(2))
    assert await store.remove("user1") == full()
    assert await store.names() == ["user2"]
    assert await store.get("user1") is None
    await assert_absent(store, full(), but=simple(2))
    with pytest.raises(SubscriberNotFound):
        await store.remove("user1")
    # Its identities can be provisioned again.
    await store.add(full())
    assert await store.get("user1") == full()
    assert await store.get("user2") == simple(2)


# -- life cycle and migrations -------------------------------------------------------


async def test_reopening_keeps_data_and_migrates_nothing(store_url: str) -> None:
    async with open_store(store_url) as store:
        assert await store.schema_version() == LATEST
        await store.add(full())
    for _ in range(2):
        async with open_store(store_url) as store:
            assert await store.schema_version() == LATEST
            assert await store.get("user1") == full()
    assert await _versions(store_url) == list(range(1, LATEST + 1))


async def test_stores_opening_together_migrate_once(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].add(simple(1))
        for s in stores:
            assert await s.get("user1") == simple(1)
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await _versions(store_url) == list(range(1, LATEST + 1))


async def test_an_older_database_is_migrated_with_its_data(store_url: str) -> None:
    assert LATEST >= 2, "this test needs a migration after the first"
    await _create_at_version_1_with_user1(store_url)
    assert await _versions(store_url) == [1]
    assert not await _has_wildcard_index(store_url)
    async with open_store(store_url) as store:
        assert await store.schema_version() == LATEST
        assert await store.get("user1") == simple(1, "sip:user1-!.*!@home1.net")
        assert await store.by_impu("sip:user1-7@home1.net") is None  # a PUBLIC_USER_IDENTITY
    assert await _versions(store_url) == list(range(1, LATEST + 1))
    assert await _has_wildcard_index(store_url)


async def test_a_newer_database_is_refused(store_url: str) -> None:
    async with open_store(store_url):
        pass
    await _execute(store_url, "INSERT INTO schema_version VALUES (999, 'from the future')")
    with pytest.raises(StoreError, match="999"):
        await open_store(store_url).open()


async def test_closed_stores_refuse_work_and_close_twice(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(StoreError):
        await store.get("user1")
    await store.open()
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.add(simple(1))


async def test_both_back_ends_build_the_same_tables(tmp_path: Path, postgres_dsn: str) -> None:
    lite = sqlite3.connect(tmp_path / "hss.sqlite3", isolation_level=None)
    migrate_sqlite(lite)
    lite_tables = {
        table: [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
        for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    lite_indexes = {
        row[0]
        for row in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as pg:
        await migrate_postgres(pg)
        cur = await pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        pg_tables: dict[str, list[str]] = {}
        for table, column in await cur.fetchall():
            pg_tables.setdefault(table, []).append(column)
        cur = await pg.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexdef NOT LIKE 'CREATE UNIQUE INDEX%%'"
        )
        pg_indexes = {row[0] for row in await cur.fetchall()}
    assert lite_tables == pg_tables
    assert lite_indexes == pg_indexes
    assert "public_identity_wildcard" in lite_indexes


def test_open_store_picks_the_back_end(tmp_path: Path) -> None:
    plain = open_store(tmp_path / "a.db")
    assert isinstance(plain, SqliteStore)
    assert plain.path == tmp_path / "a.db"
    assert isinstance(open_store(str(tmp_path / "b.db")), SqliteStore)
    absolute = open_store(f"sqlite://{tmp_path}/c.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "c.db"
    assert absolute.synchronous == "NORMAL"
    relative = open_store("sqlite://data/hss.db?synchronous=full")
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("data/hss.db")
    assert relative.synchronous == "FULL"
    for url in ("postgresql://hss@db1/webims", "postgres://db1/webims"):
        pg = open_store(url)
        assert isinstance(pg, PostgresStore)
        assert pg.dsn == url
    for bad in (
        "mysql://db1/hss",
        "sqlite://",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x?y=1",
    ):
        with pytest.raises(ValueError):
            open_store(bad)
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "d.db", synchronous="OFF")  # type: ignore[arg-type]


# -- helpers reaching under the store, for the migration tests -------------------------


async def _execute(url: str, statement: str) -> list[tuple[object, ...]]:
    if url.startswith("postgresql://"):
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as pg:
            cur = await pg.execute(statement)
            return await cur.fetchall() if cur.description else []
    lite = sqlite3.connect(url, isolation_level=None)
    try:
        return lite.execute(statement).fetchall()
    finally:
        lite.close()


async def _versions(url: str) -> list[int]:
    rows = await _execute(url, "SELECT version FROM schema_version ORDER BY version")
    return [int(str(v)) for (v,) in rows]


async def _has_wildcard_index(url: str) -> bool:
    if url.startswith("postgresql://"):
        query = "SELECT 1 FROM pg_indexes WHERE indexname = 'public_identity_wildcard'"
    else:
        query = "SELECT 1 FROM sqlite_master WHERE name = 'public_identity_wildcard'"
    return bool(await _execute(url, query))


async def _create_at_version_1_with_user1(url: str) -> None:
    """A database at schema version 1 holding ``simple(1, <wildcard text>)``,
    written with the store's own INSERT statements."""
    sub = simple(1, "sip:user1-!.*!@home1.net")
    pub, priv = sub.publics[0], sub.privates[0]
    rows = [
        ("insert_profile", (1, 0, "default", "")),
        ("insert_private", (1, 0, priv.impi, priv.realm, priv.ha1, priv.ha1_sha256)),
        ("insert_public", (1, 0, pub.impu, pub.irs, pub.service_profile, False, 0, None, 0)),
        ("insert_link", (0, priv.impi, pub.impu)),
    ]
    assert MIGRATIONS[0].version == 1
    if url.startswith("postgresql://"):
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as pg:
            await migrate_postgres(pg, upto=1)
            await pg.execute(POSTGRES.insert_subscriber, ("user1", None, None))
            for name, params in rows:
                await pg.execute(getattr(POSTGRES, name), params)
        return
    lite = sqlite3.connect(url, isolation_level=None)
    try:
        migrate_sqlite(lite, upto=1)
        lite.execute(SQLITE.insert_subscriber, ("user1", None, None)).fetchall()
        for name, params in rows:
            lite.execute(getattr(SQLITE, name), params)
    finally:
        lite.close()
