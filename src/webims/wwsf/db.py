"""The WWSF's database: one SQLite file in WAL mode, ``<data_dir>/wwsf.sqlite3``.

It holds what the WWSF itself decides, never the IMS side (that is the HSS
store's): the web accounts (:mod:`.accounts`) and the leases of the identity
pool (:mod:`.pool`).  The tables::

    schema_version   one row per migration applied: version, description
    web_account      name (key), password_hash (argon2id), impi (unique,
                     NULL: no IMS identity linked), created, changed
    web_account_impu name -> web_account (deleted with it), seq, impu
    pool_lease       impi (key), impu, holder (unique; NULL once given back),
                     expires, tokens_until

Migrations run on :func:`open_database`, in one ``BEGIN IMMEDIATE``
transaction, so two processes opening a fresh file at once migrate it once;
a file newer than this code is refused.  Statements run inline: a keyed read
or write costs microseconds, and every caller (the web element's event loop,
the ``webims subscriber`` command) uses the connection from one thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..sqlite import open_wal

__all__ = ["DATABASE_FILE", "LATEST", "DatabaseError", "WwsfDatabase", "open_database"]

DATABASE_FILE = "wwsf.sqlite3"


class DatabaseError(Exception):
    """The database cannot be opened or is of a newer schema than this code."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "web accounts and the IMS identities linked to them",
        (
            """
            CREATE TABLE web_account (
                name TEXT PRIMARY KEY,
                password_hash TEXT NOT NULL,
                impi TEXT UNIQUE,
                created REAL NOT NULL,
                changed REAL NOT NULL
            )""",
            """
            CREATE TABLE web_account_impu (
                name TEXT NOT NULL REFERENCES web_account (name) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                impu TEXT NOT NULL,
                PRIMARY KEY (name, seq),
                UNIQUE (name, impu)
            )""",
        ),
    ),
    Migration(
        2,
        "leases of the identity pool (TS 33.203 X.4)",
        (
            """
            CREATE TABLE pool_lease (
                impi TEXT PRIMARY KEY,
                impu TEXT NOT NULL,
                holder TEXT UNIQUE,
                expires REAL NOT NULL,
                tokens_until REAL NOT NULL
            )""",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)), "versions 1, 2, 3…"


class WwsfDatabase:
    """An open connection to the WWSF's SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> WwsfDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed at the end of the block, rolled
        back if it raises (so a refused change leaves nothing behind)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one snapshot."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, description TEXT NOT NULL)"
        )
        current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if current > LATEST:
            raise DatabaseError(
                f"the WWSF database is at schema version {current}, newer than {LATEST}"
            )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(statement.strip())
            conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                (migration.version, migration.description),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_database(path: Path, *, busy_timeout: float = 5.0) -> WwsfDatabase:
    """Open (creating it and its directory if need be) and migrate ``path``."""
    path = Path(path)
    try:
        conn = open_wal(path, busy_timeout=busy_timeout)
    except (OSError, sqlite3.Error) as err:
        raise DatabaseError(f"cannot open {path}: {err}") from None
    try:
        _migrate(conn)
    except sqlite3.Error as err:
        conn.close()
        raise DatabaseError(f"{path}: {err}") from None
    except BaseException:
        conn.close()
        raise
    return WwsfDatabase(conn, path)
