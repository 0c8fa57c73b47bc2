"""Server-side sessions: signed cookies, lifetime, bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.wwsf.sessions import SessionStore, load_session_key


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_cookie_names_a_live_session_only() -> None:
    clock = Clock()
    store = SessionStore(b"k" * 40, 60, clock=clock)
    session = store.new("user1")
    value = store.cookie_value(session)
    assert store.from_cookie(value) is session
    # Change a character inside the signature (the last one of a base64url
    # text may carry only padding bits, so changing it may change nothing).
    i = len(value) - 5
    assert store.from_cookie(value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]) is None
    other_key = SessionStore(b"j" * 40, 60, clock=clock)
    assert other_key.from_cookie(value) is None  # signed with another key
    clock.now += 61
    assert store.from_cookie(value) is None
    assert len(store) == 0


def test_a_flood_of_login_forms_does_not_push_out_logged_in_users() -> None:
    clock = Clock()
    store = SessionStore(b"k" * 40, 600, max_sessions=10, clock=clock)
    user = store.new("user1")
    first = store.new()
    for _ in range(100):
        store.new()
    assert store.from_cookie(store.cookie_value(user)) is user
    assert store.from_cookie(store.cookie_value(first)) is None  # the oldest anonymous went
    assert len(store) == 11
    store.new("user2")
    assert store.end_user("user1") == 1
    assert store.from_cookie(store.cookie_value(user)) is None


def test_expired_sessions_are_swept() -> None:
    clock = Clock()
    store = SessionStore(b"k" * 40, 60, clock=clock)
    for _ in range(5):
        store.new()
    clock.now += 61
    store.new()
    assert len(store) == 1


def test_session_key_file(tmp_path: Path) -> None:
    key = load_session_key(tmp_path / "wwsf")
    path = tmp_path / "wwsf" / "session-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_session_key(tmp_path / "wwsf") == key
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_session_key(tmp_path / "wwsf")
