"""What the SQLite and PostgreSQL stores share: their SQL, the mapping
between rows and model objects, and the logic of every operation.

A back-end supplies three primitives and inherits the rest::

    _fetch(key, value)   one whole subscriber, read in one snapshot
    _query(sql, params)  the rows of one statement
    _writing()           a write transaction (:class:`WriteTx`): committed
                         when the block ends, rolled back if it raises; maps
                         a uniqueness violation to SubscriberExists and any
                         other database error to StoreError

A subscriber is read with five queries (its row, service profiles, private
identities with their linked IMPUs, public identities, lists), keyed by
subscriber id, name, IMPI or IMPU (:data:`Key`); PostgreSQL runs the same
five as subqueries of one statement, each child table folded into a JSON
array, so that a read is one round trip and one snapshot.

Writes lock the subscriber first: SQLite by ``BEGIN IMMEDIATE`` (one writer
at a time), PostgreSQL by a row lock on the subscriber (``FOR UPDATE``, or
the ``UPDATE`` of its assignment) taken before any other row is touched, so
that what a write reads back inside its transaction is consistent and two
writers never wait on each other in opposite orders.  ``replace`` deletes
the subscriber (its rows cascade) and inserts it anew, in one transaction.

The SQL is written with ``?`` parameters; :meth:`Statements.for_postgres`
turns them into psycopg's ``%s`` and adds ``FOR UPDATE`` to the locking reads.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .migrations import CURRENT_VERSION, LIST_KINDS, WILDCARD_CONDITION
from .model import (
    IdentityType,
    InvalidSubscriber,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    ServiceProfile,
    Subscriber,
    wildcard_regex,
)
from .store import SubscriberNotFound, SubscriberStore

__all__ = ["Key", "Reads", "SqlStore", "Statements", "WriteTx", "aggregated", "assemble"]

#: How a subscriber is looked up: by its row id, name, an IMPI or an exact IMPU.
Key = Literal["id", "name", "impi", "impu"]
Row = Sequence[Any]

_SUBSCRIBER_ID: Mapping[Key, str] = {
    "id": "?",
    "name": "(SELECT id FROM subscriber WHERE name = ?)",
    "impi": "(SELECT subscriber_id FROM private_identity WHERE impi = ?)",
    "impu": "(SELECT subscriber_id FROM public_identity WHERE impu = ?)",
}


@dataclass(frozen=True, slots=True)
class _Part:
    """The rows of one child table of a subscriber: which columns, from
    where, which column names the subscriber, in which order."""

    columns: str
    source: str
    owner: str
    order: str

    def select(self, sid: str) -> str:
        return (
            f"SELECT {self.columns} FROM {self.source}"
            f" WHERE {self.owner} = {sid} ORDER BY {self.order}"
        )

    def aggregate(self) -> str:
        """The rows as one JSON array of arrays, for the subscriber ``s`` of
        the enclosing query (NULL when there are none)."""
        return (
            f"(SELECT json_agg(json_build_array({self.columns}) ORDER BY {self.order})"
            f" FROM {self.source} WHERE {self.owner} = s.id)"
        )


_SUBSCRIBER = "s.id, s.name, s.server_name, s.diameter_host"
_PARTS = (
    _Part("name, ifc_xml", "service_profile", "subscriber_id", "seq"),
    _Part(
        "pr.impi, pr.realm, pr.ha1, pr.ha1_sha256, pu.impu",
        "private_identity pr"
        " LEFT JOIN private_public l ON l.private_id = pr.id"
        " LEFT JOIN public_identity pu ON pu.id = l.public_id",
        "pr.subscriber_id",
        "pr.seq, l.seq",
    ),
    _Part(
        "impu, irs, service_profile, barred, identity_type, display_name, state",
        "public_identity",
        "subscriber_id",
        "seq",
    ),
    _Part("kind, value", "subscriber_list", "subscriber_id", "kind, seq"),
)


@dataclass(frozen=True, slots=True)
class Reads:
    """The five queries reading one subscriber, each taking the key once:
    its row, then its profiles, private identities (one row per linked IMPU),
    public identities and list values, in the order of the model's tuples."""

    subscriber: str
    profiles: str
    privates: str
    publics: str
    lists: str

    @classmethod
    def keyed(cls, sid: str) -> Reads:
        """The queries for the subscriber whose id is the SQL expression ``sid``."""
        return cls(
            f"SELECT {_SUBSCRIBER} FROM subscriber s WHERE s.id = {sid}",
            *(part.select(sid) for part in _PARTS),
        )

    def map(self, change: Callable[[str], str]) -> Reads:
        return Reads(*(change(getattr(self, f.name)) for f in fields(self)))


def aggregated(sid: str) -> str:
    """The same reads as one statement: the subscriber's row followed by one
    JSON array per :class:`Reads` child query (PostgreSQL's json_agg)."""
    parts = ", ".join(part.aggregate() for part in _PARTS)
    return f"SELECT {_SUBSCRIBER}, {parts} FROM subscriber s WHERE s.id = {sid}"


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement the stores run, in one dialect.

    SQLite reads a subscriber with ``reads``, PostgreSQL with ``whole``: one
    round trip instead of five.  (SQLite 3.40 cannot order an aggregate, and
    in-process queries cost less than decoding JSON would.)
    """

    reads: Mapping[Key, Reads]
    whole: Mapping[Key, str]
    names: str = "SELECT name FROM subscriber"
    wildcards: str = (
        f"SELECT subscriber_id, impu FROM public_identity WHERE {WILDCARD_CONDITION}"
        " ORDER BY subscriber_id, seq"
    )
    schema_version: str = CURRENT_VERSION
    # Locking reads: plain on SQLite, whose BEGIN IMMEDIATE already excludes
    # other writers; FOR UPDATE on PostgreSQL.
    lock_by_name: str = "SELECT id FROM subscriber WHERE name = ?"
    lock_by_id: str = "SELECT id FROM subscriber WHERE id = ?"
    id_by_impu: str = "SELECT subscriber_id FROM public_identity WHERE impu = ?"
    insert_subscriber: str = (
        "INSERT INTO subscriber (name, server_name, diameter_host) VALUES (?, ?, ?) RETURNING id"
    )
    insert_profile: str = (
        "INSERT INTO service_profile (subscriber_id, seq, name, ifc_xml) VALUES (?, ?, ?, ?)"
    )
    insert_private: str = (
        "INSERT INTO private_identity (subscriber_id, seq, impi, realm, ha1, ha1_sha256)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    insert_public: str = (
        "INSERT INTO public_identity (subscriber_id, seq, impu, irs, service_profile, barred,"
        " identity_type, display_name, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    insert_link: str = (
        "INSERT INTO private_public (private_id, public_id, seq)"
        " SELECT pr.id, pu.id, ? FROM private_identity pr, public_identity pu"
        " WHERE pr.impi = ? AND pu.impu = ?"
    )
    insert_list: str = (
        "INSERT INTO subscriber_list (subscriber_id, kind, seq, value) VALUES (?, ?, ?, ?)"
    )
    delete_subscriber: str = "DELETE FROM subscriber WHERE id = ?"
    set_assignment: str = (
        "UPDATE subscriber SET server_name = ?, diameter_host = ? WHERE name = ? RETURNING id"
    )
    set_state: str = "UPDATE public_identity SET state = ? WHERE subscriber_id = ? AND impu = ?"
    set_barred: str = "UPDATE public_identity SET barred = ? WHERE subscriber_id = ? AND impu = ?"

    def for_postgres(self) -> Statements:
        def convert(sql: str) -> str:
            return sql.replace("?", "%s")

        changed: dict[str, Any] = {
            f.name: convert(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("reads", "whole")
        }
        changed["reads"] = {key: r.map(convert) for key, r in self.reads.items()}
        changed["whole"] = {key: convert(sql) for key, sql in self.whole.items()}
        changed["lock_by_name"] += " FOR UPDATE"
        changed["lock_by_id"] += " FOR UPDATE"
        return replace(self, **changed)


SQLITE = Statements(
    reads={key: Reads.keyed(sid) for key, sid in _SUBSCRIBER_ID.items()},
    whole={key: aggregated(sid) for key, sid in _SUBSCRIBER_ID.items()},
)
POSTGRES = SQLITE.for_postgres()


# -- rows <-> model ------------------------------------------------------------


#: Enum members by value, for the rows (a lookup costs far less than a call).
_IDENTITY_TYPES = tuple(IdentityType)
_STATES = tuple(RegistrationState)
assert all(m.value == i for e in (_IDENTITY_TYPES, _STATES) for i, m in enumerate(e)), "0, 1…"

_INT_LISTS = frozenset({"mandatory_capabilities", "optional_capabilities"})


def assemble(
    subscriber: Row,
    profiles: Iterable[Row],
    privates: Iterable[Row],
    publics: Iterable[Row],
    lists: Iterable[Row],
) -> Subscriber:
    """The :class:`Subscriber` made of the rows of the five :class:`Reads`.

    This runs on every read, so it is written for speed: no enum calls, and
    only the lists a subscription has are built (the rest keep the defaults).
    """
    _, name, server_name, diameter_host = subscriber
    grouped: dict[str, tuple[str, str, str | None, list[str]]] = {}
    for impi, realm, ha1, ha1_sha256, impu in privates:
        entry = grouped.get(impi)
        if entry is None:
            entry = grouped[impi] = (realm, ha1, ha1_sha256, [])
        if impu is not None:
            entry[3].append(impu)
    values: dict[str, list[Any]] = {}
    for kind, value in lists:
        values.setdefault(kind, []).append(int(value) if kind in _INT_LISTS else value)
    return Subscriber(
        name,
        tuple([PrivateIdentity(i, r, h, tuple(u), h256) for i, (r, h, h256, u) in grouped.items()]),
        tuple(
            [
                PublicIdentity(
                    impu, irs, prof, bool(barred), _IDENTITY_TYPES[itype], display, _STATES[state]
                )
                for impu, irs, prof, barred, itype, display, state in publics
            ]
        ),
        tuple([ServiceProfile(pname, ifc_xml) for pname, ifc_xml in profiles]),
        assignment=(None if server_name is None else ServerAssignment(server_name, diameter_host)),
        **{kind: tuple(v) for kind, v in values.items()},
    )


def taken(database_message: str) -> str:
    """What a unique-constraint failure means, in the model's words (the
    database's own message names tables and columns)."""
    # SQLite: "UNIQUE constraint failed: public_identity.impu";
    # PostgreSQL: "Key (impu)=(sip:…) already exists."
    text = database_message.lower()
    for column, meaning in (
        ("impi", "an IMPI of this subscriber is already provisioned"),
        ("impu", "an IMPU of this subscriber is already provisioned"),
        ("name", "a subscriber of this name is already provisioned"),
    ):
        if f".{column}" in text or f"({column})" in text:
            return meaning
    return "already provisioned"


def _assignment(assignment: ServerAssignment | None) -> tuple[str | None, str | None]:
    if assignment is None:
        return None, None
    return assignment.server_name, assignment.diameter_host


def _validate(subscriber: Subscriber) -> None:
    """The model's rules, and the two the tables add: the service profile
    names of a subscriber and the IMPUs one IMPI lists are distinct."""
    subscriber.validate()
    names = [p.name for p in subscriber.profiles]
    if len(set(names)) != len(names):
        raise InvalidSubscriber(f"subscriber {subscriber.name!r} names a service profile twice")
    for priv in subscriber.privates:
        if len(set(priv.impus)) != len(priv.impus):
            raise InvalidSubscriber(f"IMPI {priv.impi!r} lists an IMPU twice")


@functools.lru_cache(maxsize=1024)
def _wildcard(impu: str) -> re.Pattern[str] | None:
    try:
        return wildcard_regex(impu)
    except re.error:
        return None


# -- the operations --------------------------------------------------------------


class WriteTx(ABC):
    """A write transaction, as a back-end runs it."""

    @abstractmethod
    async def one(self, sql: str, params: Sequence[object]) -> Row | None:
        """Run one statement; its first row, if any."""

    @abstractmethod
    async def many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run one statement once per row; the number of rows changed in all."""

    @abstractmethod
    async def fetch(self, key: Key, value: object) -> Subscriber | None:
        """The whole subscriber, as this transaction sees it."""


class SqlStore(SubscriberStore):
    """The store's operations over the primitives of a SQL back-end."""

    _sql: Statements

    @abstractmethod
    async def _fetch(self, key: Key, value: object) -> Subscriber | None:
        """One whole subscriber, read in one snapshot."""

    @abstractmethod
    async def _query(self, sql: str, params: Sequence[object] = ()) -> Sequence[Row]:
        """The rows of one read-only statement."""

    @abstractmethod
    def _writing(self) -> AbstractAsyncContextManager[WriteTx]:
        """A write transaction; see the module docstring."""

    # -- reads ---------------------------------------------------------------

    async def schema_version(self) -> int:
        rows = await self._query(self._sql.schema_version)
        return int(rows[0][0] or 0)

    async def by_impu(self, impu: str) -> Subscriber | None:
        found = await self._fetch("impu", impu)
        if found is not None:
            return found
        # No exact IMPU: the first wildcarded identity whose range holds it,
        # by subscriber row id (the order of adding, or of the last replace).
        for sid, wildcard in await self._query(self._sql.wildcards):
            pattern = _wildcard(wildcard)
            if pattern is not None and pattern.fullmatch(impu):
                return await self._fetch("id", sid)
        return None

    async def by_impi(self, impi: str) -> Subscriber | None:
        return await self._fetch("impi", impi)

    async def get(self, name: str) -> Subscriber | None:
        return await self._fetch("name", name)

    async def names(self) -> list[str]:
        # Sorted here: a PostgreSQL collation may order text unlike Python.
        return sorted(row[0] for row in await self._query(self._sql.names))

    # -- writes --------------------------------------------------------------

    async def set_registration(
        self,
        name: str,
        impus: Sequence[str],
        state: RegistrationState,
        assignment: ServerAssignment | None,
    ) -> None:
        sql = self._sql
        async with self._writing() as tx:
            row = await tx.one(sql.set_assignment, (*_assignment(assignment), name))
            if row is None:
                raise SubscriberNotFound(f"no subscriber {name!r}")
            sid = row[0]
            changed = await tx.many(sql.set_state, [(int(state), sid, impu) for impu in impus])
            if changed != len(impus):
                # Raising rolls the assignment and every state back.
                raise SubscriberNotFound(f"subscriber {name!r} does not hold all of {impus}")

    async def add(self, subscriber: Subscriber) -> None:
        _validate(subscriber)
        async with self._writing() as tx:
            await self._insert(tx, subscriber)

    async def replace(self, subscriber: Subscriber) -> None:
        _validate(subscriber)
        async with self._writing() as tx:
            row = await tx.one(self._sql.lock_by_name, (subscriber.name,))
            if row is None:
                raise SubscriberNotFound(f"no subscriber {subscriber.name!r}")
            await tx.one(self._sql.delete_subscriber, (row[0],))
            await self._insert(tx, subscriber)

    async def remove(self, name: str) -> Subscriber:
        async with self._writing() as tx:
            row = await tx.one(self._sql.lock_by_name, (name,))
            found = None if row is None else await tx.fetch("id", row[0])
            if row is None or found is None:
                raise SubscriberNotFound(f"no subscriber {name!r}")
            await tx.one(self._sql.delete_subscriber, (row[0],))
            return found

    async def set_barred(self, impu: str, barred: bool) -> Subscriber:
        sql = self._sql
        async with self._writing() as tx:
            row = await tx.one(sql.id_by_impu, (impu,))
            if row is not None:
                await tx.one(sql.lock_by_id, (row[0],))
                if await tx.many(sql.set_barred, [(barred, row[0], impu)]) == 1:
                    found = await tx.fetch("id", row[0])
                    if found is not None:
                        return found
            raise SubscriberNotFound(f"no public identity {impu!r}")

    async def _insert(self, tx: WriteTx, sub: Subscriber) -> None:
        sql = self._sql
        row = await tx.one(sql.insert_subscriber, (sub.name, *_assignment(sub.assignment)))
        assert row is not None, "INSERT … RETURNING returns the row"
        sid = row[0]
        await tx.many(
            sql.insert_profile, [(sid, i, p.name, p.ifc_xml) for i, p in enumerate(sub.profiles)]
        )
        await tx.many(
            sql.insert_private,
            [(sid, i, p.impi, p.realm, p.ha1, p.ha1_sha256) for i, p in enumerate(sub.privates)],
        )
        await tx.many(
            sql.insert_public,
            [
                (
                    sid,
                    i,
                    p.impu,
                    p.irs,
                    p.service_profile,
                    p.barred,
                    int(p.identity_type),
                    p.display_name,
                    int(p.state),
                )
                for i, p in enumerate(sub.publics)
            ],
        )
        await tx.many(
            sql.insert_link,
            [(i, p.impi, impu) for p in sub.privates for i, impu in enumerate(p.impus)],
        )
        lists = [
            (sid, kind, i, str(value))
            for kind in LIST_KINDS
            for i, value in enumerate(getattr(sub, kind))
        ]
        if lists:
            await tx.many(sql.insert_list, lists)
