"""The subscriber store on PostgreSQL, for deployments that share it between
several HSS processes (psycopg 3, asyncio).

Connections come from a small pool (psycopg_pool).  A single connection
behind a lock would serialise every Cx request on one network round trip at
a time; with a pool, the requests of a busy HSS wait on the server in
parallel.  The pool stays small (4 by default) because each connection is a
server process, and an HSS spends most of its time off the database anyway.
Connections are in autocommit mode; every transaction is explicit.

A read is one statement (:func:`~webims.hss.sqlstore.aggregated`): the
subscriber's row with each child table folded into a JSON array by
subqueries, so one round trip, and one snapshot without a transaction
(PostgreSQL takes the snapshot per statement).  On this kind of machine it
costs about twice a bare ``SELECT 1``; the five queries SQLite runs, even
pipelined inside a REPEATABLE READ transaction, cost about twice as much
again.  psycopg prepares a statement on the server once it has run a few
times, so the steady state parses none.

A write is one READ COMMITTED transaction that locks the subscriber's row
before touching anything else (see :mod:`webims.hss.sqlstore`), committed
before the method returns.  PostgreSQL has made the commit durable (its WAL
flushed, with the server's default ``synchronous_commit``) when COMMIT
answers, so a write that returned survives the HSS being killed, and the
server crashing too.  Uniqueness of names, IMPIs and IMPUs is checked by
the server's unique indexes: a conflicting ``add`` gets ``UniqueViolation``,
rolls back, and raises :class:`~webims.hss.store.SubscriberExists`.

The schema is migrated on ``open()`` under a transaction-scoped advisory
lock, so HSS processes starting together migrate it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .migrations import LATEST, RECORD_VERSION, SCHEMA_VERSION_TABLE, pending, statements
from .model import Subscriber
from .sqlstore import POSTGRES, Key, Row, SqlStore, WriteTx, assemble, taken
from .store import StoreError, SubscriberExists

__all__ = ["PostgresStore", "migrate_postgres"]

Connection = AsyncConnection[tuple[Any, ...]]

#: Key of the advisory lock held while migrating (any constant the
#: deployment's other applications do not use; this is "webims" in ASCII).
MIGRATION_LOCK = 0x776562696D73


async def migrate_postgres(conn: Connection, upto: int = LATEST) -> None:
    """Bring the schema to version ``upto`` in one transaction (``conn`` in
    autocommit mode)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(SCHEMA_VERSION_TABLE)
        cur = await conn.execute(POSTGRES.schema_version)
        row = await cur.fetchone()
        current = (row[0] if row else None) or 0
        for migration in pending(current, upto):
            for statement in statements(migration, "postgresql"):
                await conn.execute(statement)
            await conn.execute(
                RECORD_VERSION.replace("?", "%s"), (migration.version, migration.description)
            )


async def _load(conn: Connection, key: Key, value: object) -> Subscriber | None:
    """The subscriber, in one statement (so one snapshot) and one round trip."""
    cur = await conn.execute(POSTGRES.whole[key], (value,))
    row = await cur.fetchone()
    if row is None:
        return None
    return assemble(row[:4], *(rows or () for rows in row[4:]))


class PostgresStore(SqlStore):
    """Subscribers in the PostgreSQL database ``dsn`` (a libpq URL or
    ``key=value`` string)."""

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._sql = POSTGRES
        self._pool: AsyncConnectionPool[Connection] | None = None

    def __repr__(self) -> str:
        # The DSN may carry a password: show the database only.
        try:
            dbname = psycopg.conninfo.conninfo_to_dict(self.dsn).get("dbname", "?")
        except psycopg.ProgrammingError:
            dbname = "?"
        return f"PostgresStore(dbname={dbname!r})"

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="webims-hss",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
            async with pool.connection() as conn:
                await migrate_postgres(conn)
        except (psycopg.Error, PoolTimeout) as err:
            await pool.close()
            raise StoreError(f"cannot open {self!r}: {err}") from err
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _connections(self) -> AsyncConnectionPool[Connection]:
        if self._pool is None:
            raise StoreError(f"{self!r} is not open")
        return self._pool

    # -- the primitives of SqlStore --------------------------------------------

    async def _fetch(self, key: Key, value: object) -> Subscriber | None:
        try:
            async with self._connections().connection() as conn:
                return await _load(conn, key, value)
        except psycopg.Error as err:
            raise StoreError(f"{self!r}: {err}") from err

    async def _query(self, sql: str, params: Sequence[object] = ()) -> Sequence[Row]:
        try:
            async with self._connections().connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()
        except psycopg.Error as err:
            raise StoreError(f"{self!r}: {err}") from err

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[WriteTx]:
        try:
            async with self._connections().connection() as conn, conn.transaction():
                yield _PostgresTx(conn)
        except errors.UniqueViolation as err:
            detail = err.diag.message_detail or str(err)
            raise SubscriberExists(taken(detail)) from err
        except psycopg.Error as err:
            raise StoreError(f"{self!r}: {err}") from err


class _PostgresTx(WriteTx):
    """A write transaction on one pooled connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def one(self, sql: str, params: Sequence[object]) -> Row | None:
        cur = await self._conn.execute(sql, params)
        return await cur.fetchone() if cur.description is not None else None

    async def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        if not rows:
            return 0
        async with self._conn.cursor() as cur:
            await cur.executemany(sql, rows)
            return cur.rowcount

    async def fetch(self, key: Key, value: object) -> Subscriber | None:
        return await _load(self._conn, key, value)
