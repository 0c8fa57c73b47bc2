"""The WAF's state in SQLite (WAL): authorisation codes, refresh-token families, and the
access tokens it issued (to revoke them by user or by family).

Tables::

    codes           code_hash PK, client_id, redirect_uri, scope, web_user,
                    challenge, challenge_method, expires_at
    refresh_tokens  token_hash PK, family, client_id, web_user, scope, expires_at,
                    state ('active' | 'used' | 'revoked')
    access_tokens   jti PK, family, web_user, expires_at, revoked (0 | 1)

Codes and refresh tokens are stored as SHA-256 hashes: a copy of the database hands out no
usable credential.  An authorisation code lives 60 s and is deleted on use.  A refresh
token is used once: exchanging it marks it ``used`` and adds its successor to the same
family; presenting a ``used`` token again is reuse, and revokes the whole family with the
access tokens issued from it.  ``access_tokens`` is the revocation list: an access token
whose ``jti`` is revoked, or unknown, is not active; rows go once the token has expired.

The connection belongs to the event loop's thread; every statement is a few microseconds,
so it runs inline.  ``transaction()`` takes SQLite's write lock (``BEGIN IMMEDIATE``) so
a grant reads and writes as one step even with several processes on the same file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..sqlite import open_wal

__all__ = ["AuthorizationCode", "RefreshToken", "WafStore", "credential_hash"]

#: Seconds an authorisation code can be exchanged.
CODE_TTL = 60.0
#: Expired rows are purged at most this often (seconds).
_PURGE_INTERVAL = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    web_user TEXT NOT NULL,
    challenge TEXT NOT NULL,
    challenge_method TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL,
    web_user TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'used', 'revoked'))
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (web_user);
CREATE TABLE IF NOT EXISTS access_tokens (
    jti TEXT PRIMARY KEY,
    family TEXT,
    web_user TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS access_tokens_family ON access_tokens (family);
CREATE INDEX IF NOT EXISTS access_tokens_user ON access_tokens (web_user);
"""


def credential_hash(value: str) -> str:
    """What is stored of a code or refresh token: its SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """A code as issued at /authorize; Authlib reads it through the two getters."""

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    web_user: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token's row: which family, whose, and its state."""

    token_hash: str
    family: str
    client_id: str
    web_user: str
    scope: str
    expires_at: float
    state: str


class WafStore:
    """The SQLite file ``path``; ``clock`` gives the time (seconds since the epoch)."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._db = open_wal(path)
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)
        self._next_purge = 0.0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic step under SQLite's write lock; committed even when the step ends
        in an OAuth error (refresh-token reuse must stay revoked), rolled back on a crash."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- authorisation codes --------------------------------------------------------

    def save_code(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        web_user: str,
        challenge: str,
        challenge_method: str,
    ) -> None:
        now = self._clock()
        self._purge(now)
        self._db.execute(
            "INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                credential_hash(code),
                client_id,
                redirect_uri,
                scope,
                web_user,
                challenge,
                challenge_method,
                now + CODE_TTL,
            ),
        )

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The live code issued to ``client_id``, or None (unknown, used, expired, other
        client)."""
        row = self._db.execute(
            "SELECT * FROM codes WHERE code_hash = ? AND client_id = ? AND expires_at > ?",
            (credential_hash(code), client_id, self._clock()),
        ).fetchone()
        return AuthorizationCode(*row) if row else None

    def delete_code(self, code: AuthorizationCode) -> None:
        self._db.execute("DELETE FROM codes WHERE code_hash = ?", (code.code_hash,))

    # -- refresh tokens -------------------------------------------------------------

    def save_refresh_token(
        self, token: str, *, family: str, client_id: str, web_user: str, scope: str, ttl: float
    ) -> None:
        self._db.execute(
            "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?, 'active')",
            (credential_hash(token), family, client_id, web_user, scope, self._clock() + ttl),
        )

    def find_refresh_token(self, token: str) -> RefreshToken | None:
        """The row of ``token`` whatever its state, or None (unknown or expired)."""
        row = self._db.execute(
            "SELECT * FROM refresh_tokens WHERE token_hash = ? AND expires_at > ?",
            (credential_hash(token), self._clock()),
        ).fetchone()
        return RefreshToken(*row) if row else None

    def mark_refresh_token_used(self, token: RefreshToken) -> bool:
        """Consume ``token``; False when it was not active any more (a concurrent use)."""
        cur = self._db.execute(
            "UPDATE refresh_tokens SET state = 'used' WHERE token_hash = ? AND state = 'active'",
            (token.token_hash,),
        )
        return cur.rowcount == 1

    def revoke_family(self, family: str) -> int:
        """Revoke every refresh token and access token of ``family``; how many were live."""
        now = self._clock()
        n = self._db.execute(
            "UPDATE refresh_tokens SET state = 'revoked' WHERE family = ? AND state != 'revoked'",
            (family,),
        ).rowcount
        n += self._db.execute(
            "UPDATE access_tokens SET revoked = 1 WHERE family = ? AND revoked = 0"
            " AND expires_at > ?",
            (family, now),
        ).rowcount
        return n

    def revoke_user(self, web_user: str) -> int:
        """Revoke every live token of ``web_user``; how many there were."""
        now = self._clock()
        n = self._db.execute(
            "UPDATE refresh_tokens SET state = 'revoked'"
            " WHERE web_user = ? AND state = 'active' AND expires_at > ?",
            (web_user, now),
        ).rowcount
        n += self._db.execute(
            "UPDATE access_tokens SET revoked = 1"
            " WHERE web_user = ? AND revoked = 0 AND expires_at > ?",
            (web_user, now),
        ).rowcount
        return n

    # -- access tokens --------------------------------------------------------------

    def save_access_token(
        self, jti: str, *, family: str | None, web_user: str, expires_at: float
    ) -> None:
        self._db.execute(
            "INSERT INTO access_tokens (jti, family, web_user, expires_at) VALUES (?, ?, ?, ?)",
            (jti, family, web_user, expires_at),
        )

    def access_token_live(self, jti: str) -> bool:
        """True when ``jti`` was issued here and is not revoked (expiry is the caller's)."""
        row = self._db.execute("SELECT revoked FROM access_tokens WHERE jti = ?", (jti,)).fetchone()
        return row is not None and row[0] == 0

    def revoke_access_token(self, jti: str) -> bool:
        cur = self._db.execute(
            "UPDATE access_tokens SET revoked = 1 WHERE jti = ? AND revoked = 0", (jti,)
        )
        return cur.rowcount == 1

    # -- housekeeping ---------------------------------------------------------------

    def _purge(self, now: float) -> None:
        """Drop rows nothing can use any more: expired codes, tokens past their expiry."""
        if now < self._next_purge:
            return
        self._next_purge = now + _PURGE_INTERVAL
        self._db.execute("DELETE FROM codes WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM access_tokens WHERE expires_at <= ?", (now,))
