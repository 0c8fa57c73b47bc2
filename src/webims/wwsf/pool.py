"""The identity pool of TS 33.203 X.4: IMS subscriptions the WWSF lends to
guests who have none of their own.

The WWSF holds a pool of IMPI/IMPU pairs, each a subscription the HSS knows
(``webims up`` and ``webims subscriber seed-demo`` provision the demo pool
as subscribers ``pool-1`` … ``pool-4``, with the WWSF as their allowed
WWSF: REQ 3.2, the IMS provider checks that the IMPI belongs to the pool of
*this* WWSF).  A guest gets one pair, for the life of its tokens:

* :meth:`IdentityPool.lend` gives a free pair to a new guest, or raises
  :class:`PoolExhausted`.  The database's unique keys make it impossible for
  one pair to be lent to two holders at once, whatever process writes.
* :meth:`IdentityPool.identity` is what the WAF's ``resolve_identity``
  reaches for a guest: it renews the lease (``lease`` seconds from now) and
  records that tokens may be issued until ``now + token_ttl + ISSUE_MARGIN``.
* :meth:`IdentityPool.give_back` (logout) ends the guest's hold; the pair is
  free again once the last token issued for it has expired, so that a
  token still valid in someone's hands never names an IMPI lent to another
  guest.  A pair no token was issued for is free at once.
* a lease not renewed for ``lease`` seconds lapses: the pair is free.

State (the ``pool_lease`` table of :mod:`.db`): one row per pair in use,
``holder`` NULL once given back; rows past ``expires`` are swept on the
next lend.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..waf.identity import ImsIdentity
from .accounts import GUEST_PREFIX
from .db import WwsfDatabase

__all__ = ["ISSUE_MARGIN", "IdentityPool", "Lease", "PoolExhausted", "PoolPair"]

#: Seconds a token may be issued after the identity was resolved (the life of
#: an authorisation code, and some).
ISSUE_MARGIN = 120.0


class PoolExhausted(Exception):
    """Every pair of the pool is lent."""


@dataclass(frozen=True, slots=True)
class PoolPair:
    impi: str
    impu: str


@dataclass(frozen=True, slots=True)
class Lease:
    impi: str
    impu: str
    holder: str | None
    expires: float
    tokens_until: float


def is_guest(web_user: str) -> bool:
    return web_user.startswith(GUEST_PREFIX)


class IdentityPool:
    """The pool of ``pairs``; leases in the WWSF database."""

    def __init__(
        self,
        db: WwsfDatabase,
        pairs: Sequence[PoolPair],
        *,
        lease: float = 900.0,
        token_ttl: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len({p.impi for p in pairs}) != len(pairs):
            raise ValueError("an IMPI appears twice in the identity pool")
        if lease < token_ttl + ISSUE_MARGIN:
            raise ValueError(
                f"a pool lease ({lease:g} s) must outlast a token"
                f" ({token_ttl:g} s + {ISSUE_MARGIN:g} s)"
            )
        self.db = db
        self.pairs = tuple(pairs)
        self.lease = lease
        self.token_ttl = token_ttl
        self.clock = clock

    @property
    def size(self) -> int:
        return len(self.pairs)

    @staticmethod
    def new_guest_name() -> str:
        return GUEST_PREFIX + secrets.token_hex(8)

    def lend(self, holder: str) -> ImsIdentity:
        """Lend a free pair to ``holder`` (a guest name); its lease starts now."""
        if not is_guest(holder):
            raise ValueError(f"pool holders are guests ({GUEST_PREFIX}…), not {holder!r}")
        now = self.clock()
        with self.db.write() as conn:
            conn.execute("DELETE FROM pool_lease WHERE expires <= ?", (now,))
            held = self._lease_of(conn, holder)
            if held is not None:
                return _identity(held)
            busy = {r[0] for r in conn.execute("SELECT impi FROM pool_lease")}
            free = next((p for p in self.pairs if p.impi not in busy), None)
            if free is None:
                raise PoolExhausted(
                    f"all {self.size} identities of the pool are lent; try again later"
                )
            try:
                conn.execute(
                    "INSERT INTO pool_lease (impi, impu, holder, expires, tokens_until)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (free.impi, free.impu, holder, now + self.lease, now),
                )
            except sqlite3.IntegrityError:  # lent meanwhile by another process
                raise PoolExhausted("the pool is busy; try again") from None
        return ImsIdentity(free.impi, (free.impu,), pool=True)

    def identity(self, holder: str, *, renew: bool = True) -> ImsIdentity | None:
        """The pair ``holder`` holds (None if it holds none, or its lease
        lapsed); with ``renew``, tokens may be issued for it from now on."""
        now = self.clock()
        with self.db.write() as conn:
            held = self._lease_of(conn, holder)
            if held is None or held.expires <= now:
                return None
            if renew:
                conn.execute(
                    "UPDATE pool_lease SET expires = ?, tokens_until = ? WHERE holder = ?",
                    (now + self.lease, now + self.token_ttl + ISSUE_MARGIN, holder),
                )
        return _identity(held)

    def give_back(self, holder: str) -> bool:
        """End ``holder``'s hold; the pair is free once its tokens expired.
        Returns whether it held one."""
        now = self.clock()
        with self.db.write() as conn:
            held = self._lease_of(conn, holder)
            if held is None:
                return False
            if held.tokens_until <= now:
                conn.execute("DELETE FROM pool_lease WHERE impi = ?", (held.impi,))
            else:
                conn.execute(
                    "UPDATE pool_lease SET holder = NULL, expires = ? WHERE impi = ?",
                    (min(held.expires, held.tokens_until), held.impi),
                )
        return True

    def leases(self) -> list[Lease]:
        """The pairs in use now."""
        rows = self.db.conn.execute(
            "SELECT impi, impu, holder, expires, tokens_until FROM pool_lease"
            " WHERE expires > ? ORDER BY impi",
            (self.clock(),),
        ).fetchall()
        return [Lease(*r) for r in rows]

    def available(self) -> int:
        return self.size - sum(1 for lease in self.leases() if lease.impi in self._impis())

    def _impis(self) -> set[str]:
        return {p.impi for p in self.pairs}

    @staticmethod
    def _lease_of(conn: sqlite3.Connection, holder: str) -> Lease | None:
        row = conn.execute(
            "SELECT impi, impu, holder, expires, tokens_until FROM pool_lease WHERE holder = ?",
            (holder,),
        ).fetchone()
        return None if row is None else Lease(*row)


def _identity(lease: Lease) -> ImsIdentity:
    return ImsIdentity(lease.impi, (lease.impu,), pool=True)
