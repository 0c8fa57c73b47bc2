"""Opening a deployment's SQLite files (src/webims/sqlite.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from webims.sqlite import open_wal


def test_a_new_file_is_made_in_its_new_directory_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.sqlite3"
    conn = open_wal(path, busy_timeout=2.5, synchronous="FULL")
    try:
        assert path.is_file()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
        assert conn.isolation_level is None  # autocommit: the stores say BEGIN
    finally:
        conn.close()


def test_a_bad_synchronous_level_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_wal(tmp_path / "x" / "s.sqlite3", synchronous="NORMAL; DROP TABLE t")
    assert not (tmp_path / "x").exists()


def test_a_file_that_is_not_a_database_raises_sqlite_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(sqlite3.DatabaseError):
        open_wal(path)
