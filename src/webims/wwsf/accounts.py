"""Web accounts: the web user, its password (argon2id) and the IMS identities
it is mapped to (TS 24.371 Annex A.3.2 step 1).

The IMS side of a subscription (IMPI, IMPUs, Digest HA1s, registration
state) lives in the HSS store; the WWSF keeps only what it needs to log a
web user in and to answer the WAF's ``resolve_identity``: the name, an
argon2id hash of the password, and the linked IMPI and IMPUs.  The password
itself is never stored.

Verification (:meth:`AccountStore.check_password`) costs tens of
milliseconds of CPU by design; the web app runs it in a worker thread.  An
unknown name is checked against a fixed dummy hash, so that it takes as long
as a wrong password: the time of an answer tells nothing about which names
exist.  A hash made with weaker parameters than the current ones is
re-hashed on the next successful login.

Errors::

    AccountError
     ├── AccountExists      the name (or the IMPI) is taken
     ├── AccountNotFound    no such web user
     └── InvalidAccount     a name, password or identity that is not acceptable

Names beginning with ``guest-`` are reserved for the guests of the identity
pool (:mod:`.pool`).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .db import WwsfDatabase

__all__ = [
    "GUEST_PREFIX",
    "AccountError",
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "InvalidAccount",
    "PasswordCheck",
    "WebAccount",
]

#: Web user names of pool guests start with this; no account may.
GUEST_PREFIX = "guest-"

_NAME = re.compile(r"^[^\s/]{1,255}$")
_IDENTITY = re.compile(r"^\S{1,255}$")
MAX_PASSWORD = 1024


class AccountError(Exception):
    """A web-account operation was refused."""


class AccountExists(AccountError):
    pass


class AccountNotFound(AccountError):
    pass


class InvalidAccount(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class WebAccount:
    """A web user and the IMS identities it is mapped to (none: ``impi`` None)."""

    name: str
    impi: str | None
    impus: tuple[str, ...]
    created: float
    changed: float


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """The outcome of :meth:`AccountStore.check_password`."""

    ok: bool
    #: Set on success when the stored hash should be replaced (weaker parameters).
    rehash: str | None = None


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidAccount(f"web user {name!r}: 1 to 255 characters, no space and no '/'")
    if name.startswith(GUEST_PREFIX):
        raise InvalidAccount(f"web user {name!r}: names starting {GUEST_PREFIX!r} are for guests")


def _check_password(password: str) -> None:
    if not 1 <= len(password) <= MAX_PASSWORD:
        raise InvalidAccount(f"a password has 1 to {MAX_PASSWORD} characters")


def _check_identities(impi: str | None, impus: Sequence[str]) -> tuple[str, ...]:
    if impi is None:
        if impus:
            raise InvalidAccount("IMPUs need an IMPI")
        return ()
    for value, what in [(impi, "IMPI"), *((u, "IMPU") for u in impus)]:
        if not _IDENTITY.match(value):
            raise InvalidAccount(f"{what} {value!r}: 1 to 255 characters, no space")
    if not impus:
        raise InvalidAccount(f"IMPI {impi!r} needs at least one IMPU")
    if len(set(impus)) != len(impus):
        raise InvalidAccount("an IMPU is given twice")
    return tuple(impus)


class AccountStore:
    """The web accounts in the WWSF database."""

    def __init__(
        self,
        db: WwsfDatabase,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        # What an unknown name is checked against (same cost as a real hash).
        self._dummy = self.hasher.hash("no such web user")

    # -- changes ------------------------------------------------------------------

    def add(
        self, name: str, password: str, impi: str | None, impus: Sequence[str] = ()
    ) -> WebAccount:
        """Create ``name`` with ``password`` (hashed here) linked to ``impi``/``impus``."""
        check_name(name)
        _check_password(password)
        publics = _check_identities(impi, impus)
        digest = self.hasher.hash(password)
        now = self.clock()
        try:
            with self.db.write() as conn:
                conn.execute(
                    "INSERT INTO web_account (name, password_hash, impi, created, changed)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, digest, impi, now, now),
                )
                self._write_impus(conn, name, publics)
        except sqlite3.IntegrityError:
            if self.get(name) is not None:
                raise AccountExists(f"web user {name!r} exists") from None
            raise AccountExists(f"IMPI {impi!r} is linked to another web user") from None
        return WebAccount(name, impi, publics, now, now)

    def link(self, name: str, impi: str | None, impus: Sequence[str] = ()) -> WebAccount:
        """Map ``name`` to other IMS identities (``None``: to none)."""
        publics = _check_identities(impi, impus)
        now = self.clock()
        try:
            with self.db.write() as conn:
                cur = conn.execute(
                    "UPDATE web_account SET impi = ?, changed = ? WHERE name = ?",
                    (impi, now, name),
                )
                if cur.rowcount == 0:
                    raise AccountNotFound(f"no web user {name!r}")
                conn.execute("DELETE FROM web_account_impu WHERE name = ?", (name,))
                self._write_impus(conn, name, publics)
        except sqlite3.IntegrityError:
            raise AccountExists(f"IMPI {impi!r} is linked to another web user") from None
        account = self.get(name)
        assert account is not None
        return account

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        self._store_hash(name, self.hasher.hash(password))

    def remove(self, name: str) -> WebAccount:
        """Delete ``name``; returns what it was."""
        with self.db.write() as conn:
            before = self._get(conn, name)
            if before is None:
                raise AccountNotFound(f"no web user {name!r}")
            conn.execute("DELETE FROM web_account WHERE name = ?", (name,))
        return before

    def _store_hash(self, name: str, digest: str) -> None:
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE web_account SET password_hash = ?, changed = ? WHERE name = ?",
                (digest, self.clock(), name),
            )
            if cur.rowcount == 0:
                raise AccountNotFound(f"no web user {name!r}")

    @staticmethod
    def _write_impus(conn: sqlite3.Connection, name: str, impus: tuple[str, ...]) -> None:
        conn.executemany(
            "INSERT INTO web_account_impu (name, seq, impu) VALUES (?, ?, ?)",
            [(name, seq, impu) for seq, impu in enumerate(impus)],
        )

    # -- reads --------------------------------------------------------------------

    def get(self, name: str) -> WebAccount | None:
        with self.db.read() as conn:
            return self._get(conn, name)

    def names(self) -> list[str]:
        rows = self.db.conn.execute("SELECT name FROM web_account ORDER BY name").fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _get(conn: sqlite3.Connection, name: str) -> WebAccount | None:
        row = conn.execute(
            "SELECT impi, created, changed FROM web_account WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        impus = conn.execute(
            "SELECT impu FROM web_account_impu WHERE name = ? ORDER BY seq", (name,)
        ).fetchall()
        return WebAccount(name, row[0], tuple(r[0] for r in impus), row[1], row[2])

    def password_hash(self, name: str) -> str | None:
        """The stored hash of ``name``, or None if there is no such user."""
        row = self.db.conn.execute(
            "SELECT password_hash FROM web_account WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    # -- login --------------------------------------------------------------------

    def check_password(self, stored: str | None, password: str) -> PasswordCheck:
        """Whether ``password`` matches ``stored`` (a :meth:`password_hash`;
        None for an unknown user, which never matches but costs the same).
        Pure CPU, no database access: safe to run in a worker thread."""
        if stored is None:
            # Same work as for a real user, and the answer is always no.
            self._verify(self._dummy, password)
            return PasswordCheck(False)
        if len(password) > MAX_PASSWORD or not self._verify(stored, password):
            return PasswordCheck(False)
        if self.hasher.check_needs_rehash(stored):
            return PasswordCheck(True, self.hasher.hash(password))
        return PasswordCheck(True)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def update_hash(self, name: str, digest: str) -> None:
        """Store a re-hash made by :meth:`check_password` (ignored if the
        user is gone meanwhile)."""
        with contextlib.suppress(AccountNotFound):
            self._store_hash(name, digest)

    def verify(self, name: str, password: str) -> WebAccount | None:
        """The account if ``password`` is right, else None (same cost either way)."""
        outcome = self.check_password(self.password_hash(name), password)
        if not outcome.ok:
            return None
        if outcome.rehash is not None:
            self.update_hash(name, outcome.rehash)
        return self.get(name)
