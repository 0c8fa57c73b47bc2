"""Web accounts on real SQLite: argon2id hashes, identities, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from webims.waf.identity import ImsIdentity
from webims.wwsf.accounts import AccountExists, AccountNotFound, AccountStore, InvalidAccount
from webims.wwsf.db import DATABASE_FILE, LATEST, DatabaseError, open_database

IMPI = "user1_private@home1.net"
IMPU = "sip:user1_public1@home1.net"


def test_add_verify_link_remove(tmp_path: Path) -> None:
    with open_database(tmp_path / DATABASE_FILE) as db:
        store = AccountStore(db)
        acc = store.add("user1", "user1-secret", IMPI, [IMPU, "tel:+15550001"])
        assert store.get("user1") == acc
        assert acc.impus == (IMPU, "tel:+15550001")
        stored = store.password_hash("user1")
        assert stored is not None and stored.startswith("$argon2id$")
        assert store.verify("user1", "user1-secret") == acc
        assert store.verify("user1", "wrong") is None
        assert store.verify("nobody", "user1-secret") is None

        with pytest.raises(AccountExists, match="exists"):
            store.add("user1", "x", "other@home1.net", ["sip:o@home1.net"])
        with pytest.raises(AccountExists, match="IMPI"):
            store.add("user9", "x", IMPI, [IMPU])
        assert store.names() == ["user1"]  # the refused adds left nothing

        linked = store.link("user1", None)
        assert linked.impi is None and linked.impus == ()
        store.set_password("user1", "new-secret")
        assert store.verify("user1", "new-secret") is not None
        assert store.verify("user1", "user1-secret") is None

        assert store.remove("user1").name == "user1"
        assert store.get("user1") is None
        with pytest.raises(AccountNotFound):
            store.remove("user1")
        # The IMPUs went with the account.
        assert db.conn.execute("SELECT count(*) FROM web_account_impu").fetchone()[0] == 0
    assert b"user1-secret" not in (tmp_path / DATABASE_FILE).read_bytes()


@pytest.mark.parametrize(
    ("name", "password", "impi", "impus", "why"),
    [
        ("", "p", IMPI, [IMPU], "1 to 255"),
        ("a b", "p", IMPI, [IMPU], "no space"),
        ("a/b", "p", IMPI, [IMPU], "'/'"),
        ("guest-1", "p", IMPI, [IMPU], "guests"),
        ("u", "", IMPI, [IMPU], "password"),
        ("u", "p", IMPI, [], "at least one IMPU"),
        ("u", "p", None, [IMPU], "need an IMPI"),
        ("u", "p", IMPI, [IMPU, IMPU], "twice"),
        ("u", "p", "a b", [IMPU], "IMPI"),
    ],
)
def test_invalid_accounts_are_refused(  # noqa: PLR0917 (the parameters of one case)
    tmp_path: Path, name: str, password: str, impi: str | None, impus: list[str], why: str
) -> None:
    with open_database(tmp_path / DATABASE_FILE) as db:
        store = AccountStore(db)
        with pytest.raises(InvalidAccount, match=why):
            store.add(name, password, impi, impus)
        assert store.names() == []


def test_weak_hash_is_upgraded_on_login(tmp_path: Path) -> None:
    with open_database(tmp_path / DATABASE_FILE) as db:
        weak = AccountStore(db, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        weak.add("user1", "user1-secret", IMPI, [IMPU])
        old = weak.password_hash("user1")
        assert old is not None and "m=8," in old
        store = AccountStore(db)
        assert store.verify("user1", "user1-secret") is not None
        new = store.password_hash("user1")
        assert new != old and new is not None and "m=8," not in new
        assert store.verify("user1", "user1-secret") is not None


async def test_resolve_identity_of_an_account(tmp_path: Path) -> None:
    from .conftest import running_web

    with open_database(tmp_path / DATABASE_FILE) as db:
        store = AccountStore(db)
        store.add("user1", "user1-secret", IMPI, [IMPU])
        store.add("noims", "noims-secret", None)
    async with running_web(tmp_path) as web:
        assert await web.wwsf.resolve_identity("user1") == ImsIdentity(IMPI, (IMPU,))
        assert await web.wwsf.resolve_identity("noims") is None  # statement 5
        assert await web.wwsf.resolve_identity("nobody") is None
        assert await web.wwsf.resolve_identity("guest-0123") is None


def test_migrations_once_and_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    with open_database(path) as db:
        assert db.schema_version() == LATEST
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with open_database(path) as db:  # reopening migrates nothing again
        rows = db.conn.execute("SELECT version FROM schema_version").fetchall()
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 'from the future')", (LATEST + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        open_database(path)
