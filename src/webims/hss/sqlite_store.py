"""The embedded subscriber store: one SQLite file in WAL mode, stdlib sqlite3.

The methods are coroutines to fit :class:`~webims.hss.store.SubscriberStore`,
but they run their statements inline, on the event loop's thread: an indexed
read costs a few microseconds, far less than handing it to a thread (or to
aiosqlite, ~70x) would.  A read is ``BEGIN``, the five queries of
:class:`~webims.hss.sqlstore.Reads` and ``COMMIT``, so it sees one snapshot
even while another process (the provisioning CLI) writes.  sqlite3 keeps the
prepared statements of a connection in a cache keyed by their text, and every
statement here is a constant, so each is compiled once.

Checkpoints (moving the WAL's pages into the database file, with an fsync)
run every second in a thread with its own connection, never inside a
commit on the event loop.

Reads are cached: a subscriber read once is kept (immutable) until it may
have changed.  ``PRAGMA data_version`` (about a microsecond) tells whether
another connection committed since the last read, and if so the cache is
emptied; this connection's own writes evict the subscriber they touch, except a
registration change, which updates the cached subscriber as it commits.  A
repeated read costs a few microseconds instead of ~45.

A write is one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, committed before
the method returns.  ``BEGIN IMMEDIATE`` takes the database's write lock at
once; a writer in another process makes it wait up to ``busy_timeout``
(blocking the loop meanwhile: writes take well under a millisecond, so the
wait is short).  Readers never wait for writers in WAL mode.

Durability (``synchronous``):

* ``NORMAL`` (the default).  A commit appends the transaction's pages and a
  commit record to the ``-wal`` file with ``write()``, and returns; ``fsync``
  happens at checkpoints only.  Once ``write()`` returned, the data is in the
  kernel's page cache, which belongs to the operating system, not to the
  process: a process that crashes or is SIGKILLed right after the commit
  loses nothing, and the next open replays the WAL up to its last commit
  record (frames after it, from a transaction cut short, are ignored).  A
  power loss or kernel crash, however, can lose the commits not yet synced
  to disk, the last ones before the failure; the database stays consistent
  (WAL frames carry checksums), it just steps back in time.
* ``FULL``.  Every commit also fsyncs the WAL before returning, so a commit
  survives power loss too, at the cost of one fsync per write (from tens of
  microseconds to milliseconds, depending on the disk).  ``EXTRA`` adds an
  fsync of the directory as well.

``OFF`` is refused: without any fsync, a power loss during a checkpoint can
corrupt the file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from ..sqlite import open_wal
from .migrations import LATEST, RECORD_VERSION, SCHEMA_VERSION_TABLE, pending, statements
from .model import PublicIdentity, RegistrationState, ServerAssignment, Subscriber
from .sqlstore import SQLITE, Key, Row, SqlStore, WriteTx, assemble, taken
from .store import StoreError, SubscriberExists, SubscriberNotFound

__all__ = ["SqliteStore", "Synchronous", "migrate_sqlite"]

log = logging.getLogger(__name__)

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]

_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def migrate_sqlite(conn: sqlite3.Connection, upto: int = LATEST) -> None:
    """Bring the schema of ``conn`` (opened with ``isolation_level=None``) to
    version ``upto``, in one transaction under the write lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA_VERSION_TABLE)
        current = conn.execute(SQLITE.schema_version).fetchone()[0] or 0
        for migration in pending(current, upto):
            for statement in statements(migration, "sqlite"):
                conn.execute(statement)
            conn.execute(RECORD_VERSION, (migration.version, migration.description))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


#: Seconds between WAL checkpoints.
CHECKPOINT_INTERVAL = 1.0

#: Subscribers kept in the read cache before it is emptied and refilled.
_CACHE_SIZE = 100_000


class SqliteStore(SqlStore):
    """Subscribers in the SQLite file ``path`` (created with its directory)."""

    def __init__(
        self, path: Path, *, synchronous: Synchronous = "NORMAL", busy_timeout: float = 5.0
    ) -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._sql = SQLITE
        self._conn: sqlite3.Connection | None = None
        self._tx = _SqliteTx(self)
        # Read cache: (key, value) -> subscriber, and the cache keys per name.
        self._cache: dict[tuple[Key, object], Subscriber] = {}
        self._cached_names: dict[str, list[tuple[Key, object]]] = {}
        self._data_version = -1
        self._checkpointer: _Checkpointer | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            conn = open_wal(self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open {self.path}: {err}") from err
        try:
            # Checkpoints (copying the WAL back into the database, with an
            # fsync) run in a thread of their own, not inside a commit on
            # the event loop.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            migrate_sqlite(conn)
        except sqlite3.Error as err:
            conn.close()
            raise StoreError(f"cannot open {self.path}: {err}") from err
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._checkpointer = _Checkpointer(self.path, self.busy_timeout)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self!r} is not open")
        return self._conn

    # -- the primitives of SqlStore --------------------------------------------

    def _load(self, key: Key, value: object) -> Subscriber | None:
        """The subscriber, read inside the caller's transaction."""
        conn = self._connection()
        row = conn.execute(self._sql.reads[key].subscriber, (value,)).fetchone()
        if row is None:
            return None
        by_id = self._sql.reads["id"]
        sid = (row[0],)
        return assemble(
            row,
            conn.execute(by_id.profiles, sid),
            conn.execute(by_id.privates, sid),
            conn.execute(by_id.publics, sid),
            conn.execute(by_id.lists, sid),
        )

    async def _fetch(self, key: Key, value: object) -> Subscriber | None:
        conn = self._connection()
        try:
            # PRAGMA data_version changes when another connection (another
            # process: `webims subscriber` while the HSS runs) commits; this
            # connection's own writes evict what they change (below).
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._forget_all()
                self._data_version = version
            hit = self._cache.get((key, value))
            if hit is not None:
                return hit
            conn.execute("BEGIN")
            try:
                found = self._load(key, value)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: {err}") from err
        if found is not None:
            if len(self._cache) >= _CACHE_SIZE:
                self._forget_all()
            self._cache[(key, value)] = found
            self._cached_names.setdefault(found.name, []).append((key, value))
        return found

    def _forget(self, name: str) -> None:
        for cache_key in self._cached_names.pop(name, ()):
            self._cache.pop(cache_key, None)

    def _forget_all(self) -> None:
        self._cache.clear()
        self._cached_names.clear()

    # Every write evicts the subscriber it touches, whether it succeeded or
    # not (a failed one changed nothing, and evicting costs one re-read).

    async def set_registration(
        self,
        name: str,
        impus: Sequence[str],
        state: RegistrationState,
        assignment: ServerAssignment | None,
    ) -> None:
        # The Cx hot path (every SAR that changes something): the statements
        # of SqlStore.set_registration, run straight on the connection.
        conn = self._connection()
        sql = self._sql
        server = (assignment.server_name, assignment.diameter_host) if assignment else (None, None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(sql.set_assignment, (*server, name)).fetchone()
                if row is None:
                    raise SubscriberNotFound(f"no subscriber {name!r}")
                changed = conn.executemany(
                    sql.set_state, [(int(state), row[0], impu) for impu in impus]
                ).rowcount
                if changed != len(impus):
                    raise SubscriberNotFound(
                        f"subscriber {name!r} does not hold all of {list(impus)}"
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            self._forget(name)
            raise StoreError(f"{self.path}: {err}") from err
        except BaseException:
            self._forget(name)
            raise
        # Committed: what is cached for this subscriber becomes what was written.
        keys = self._cached_names.get(name)
        if keys:
            before = self._cache.get(keys[0])
            if before is None:
                self._forget(name)
                return
            after = _registered(before, frozenset(impus), state, assignment)
            for key in keys:
                self._cache[key] = after

    async def add(self, subscriber: Subscriber) -> None:
        try:
            await super().add(subscriber)
        finally:
            # A new exact IMPU may now take precedence over a cached wildcard.
            self._forget_all()

    async def replace(self, subscriber: Subscriber) -> None:
        try:
            await super().replace(subscriber)
        finally:
            self._forget_all()

    async def remove(self, name: str) -> Subscriber:
        try:
            return await super().remove(name)
        finally:
            self._forget(name)

    async def set_barred(self, impu: str, barred: bool) -> Subscriber:
        try:
            after = await super().set_barred(impu, barred)
        except BaseException:
            self._forget_all()
            raise
        self._forget(after.name)
        return after

    async def _query(self, sql: str, params: Sequence[object] = ()) -> Sequence[Row]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: {err}") from err

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[WriteTx]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as err:
            if err.sqlite_errorname in _UNIQUE:
                raise SubscriberExists(taken(str(err))) from err
            raise StoreError(f"{self.path}: {err}") from err
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: {err}") from err


def _registered(
    sub: Subscriber,
    impus: frozenset[str],
    state: RegistrationState,
    assignment: ServerAssignment | None,
) -> Subscriber:
    """``sub`` after set_registration (built field by field: dataclasses.replace
    costs ~10 µs a call)."""
    publics = tuple(
        PublicIdentity(
            p.impu, p.irs, p.service_profile, p.barred, p.identity_type, p.display_name, state
        )
        if p.impu in impus
        else p
        for p in sub.publics
    )
    return Subscriber(
        sub.name,
        sub.privates,
        publics,
        sub.profiles,
        sub.allowed_waf,
        sub.allowed_wwsf,
        sub.barred_auth_entities,
        sub.mandatory_capabilities,
        sub.optional_capabilities,
        sub.roaming_networks,
        sub.ccf,
        sub.ecf,
        assignment,
    )


class _Checkpointer(threading.Thread):
    """Checkpoints the WAL every ``CHECKPOINT_INTERVAL`` seconds, on its own
    connection, so that the fsync of a checkpoint never stalls the loop.

    PASSIVE checkpoints copy what no reader still needs and never wait for
    readers or writers; a last TRUNCATE checkpoint on stop leaves a short WAL.
    """

    def __init__(self, path: Path, busy_timeout: float) -> None:
        super().__init__(name=f"sqlite-checkpoint {path.name}", daemon=True)
        self._path = path
        self._busy_timeout = busy_timeout
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout)
        except sqlite3.Error as err:
            log.warning("no WAL checkpoints for %s: %s", self._path, err)
            return
        try:
            while not self._stop_event.wait(CHECKPOINT_INTERVAL):
                self._checkpoint(conn, "PASSIVE")
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> None:
        try:
            conn.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as err:
            log.warning("WAL checkpoint of %s failed: %s", self._path, err)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class _SqliteTx(WriteTx):
    """The write transaction of a SqliteStore: its connection, inside
    ``BEGIN IMMEDIATE``."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def one(self, sql: str, params: Sequence[object]) -> Row | None:
        # fetchall: a statement with RETURNING completes before COMMIT.
        rows = self._store._connection().execute(sql, params).fetchall()
        return rows[0] if rows else None

    async def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        if not rows:
            return 0
        return self._store._connection().executemany(sql, rows).rowcount

    async def fetch(self, key: Key, value: object) -> Subscriber | None:
        return self._store._load(key, value)
