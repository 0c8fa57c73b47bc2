"""Browser sessions of the WWSF: server-side, named by a signed cookie.

The cookie ``webims_session`` carries a random 256-bit session id, signed
with itsdangerous (key in ``<data_dir>/wwsf/session-key``, mode 0600, made on
first start) and time-stamped, so a cookie older than the session lifetime
or altered in any way is ignored without a look-up.  It is ``Secure``,
``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and lives ``lifetime`` seconds.

What a session holds stays on the server (:class:`Session`): the CSRF token
of its forms and, once logged in, the web user.  Keeping it there is what
makes logout real: the session is deleted, and the cookie, even if copied
before, names nothing any more.  A login always starts a new session
(a new id and a new CSRF token): an id planted before the login is of no
use after it (session fixation).

Sessions are kept in memory and lapse ``lifetime`` seconds after they were
made (swept as new ones come); at most ``max_sessions`` anonymous ones and
as many logged-in ones, apart, the oldest going first, so that a flood of
login forms never pushes out a logged-in user.  A restart of the element
logs everyone out, which a short-lived session makes cheap.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from itsdangerous import BadSignature, TimestampSigner

__all__ = ["COOKIE_NAME", "Session", "SessionStore", "load_session_key"]

COOKIE_NAME = "webims_session"
KEY_FILE = "session-key"


@dataclass
class Session:
    sid: str
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: str | None = None

    def csrf_matches(self, given: str | None) -> bool:
        """Constant-time comparison with the session's CSRF token."""
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionStore:
    def __init__(
        self,
        key: bytes,
        lifetime: float,
        *,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = TimestampSigner(key, salt="webims-session")
        self.lifetime = lifetime
        self.max_sessions = max_sessions
        self.clock = clock
        # Anonymous sessions (a login form shown) and logged-in ones apart, so
        # that a flood of login forms never pushes a logged-in user out.  In
        # each, insertion order is creation order, hence expiry order.
        self._anonymous: dict[str, Session] = {}
        self._users: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._anonymous) + len(self._users)

    def new(self, user: str | None = None) -> Session:
        table = self._users if user is not None else self._anonymous
        now = self.clock()
        while table:
            oldest = next(iter(table.values()))
            if oldest.expires > now and len(table) < self.max_sessions:
                break
            del table[oldest.sid]
        session = Session(secrets.token_urlsafe(32), now + self.lifetime, user=user)
        table[session.sid] = session
        return session

    def cookie_value(self, session: Session) -> str:
        return self.signer.sign(session.sid).decode()

    def from_cookie(self, value: str | None) -> Session | None:
        """The live session a cookie names, or None."""
        if not value:
            return None
        try:
            sid = self.signer.unsign(value, max_age=int(self.lifetime)).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        session = self._users.get(sid) or self._anonymous.get(sid)
        if session is None:
            return None
        if session.expires <= self.clock():
            self.end(session)
            return None
        return session

    def end(self, session: Session) -> None:
        self._users.pop(session.sid, None)
        self._anonymous.pop(session.sid, None)

    def end_user(self, user: str) -> int:
        """End every session of ``user``; returns how many."""
        gone = [sid for sid, s in self._users.items() if s.user == user]
        for sid in gone:
            del self._users[sid]
        return len(gone)


def load_session_key(directory: Path) -> bytes:
    """The signing key in ``directory/session-key``, made (mode 0600) if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        made = secrets.token_urlsafe(48).encode()
        with os.fdopen(fd, "wb") as f:
            f.write(made + b"\n")
        return made
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} is open to other users; chmod 600 it")
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no key of at least 32 bytes")
    return key
