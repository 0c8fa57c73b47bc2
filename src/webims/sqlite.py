"""Opening the SQLite files of a deployment, the same way for every element.

The HSS store, the WWSF's web accounts and the WAF's grants each live in an
SQLite file under the data directory, shared by the processes of a
deployment (``webims up`` or one ``webims run`` per element): write-ahead
logging so readers never wait for the writer, a busy timeout so that two
writers queue rather than fail, foreign keys enforced.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_wal"]

_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def open_wal(
    path: Path, *, busy_timeout: float = 5.0, synchronous: str = "NORMAL"
) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode (its directory made
    if need be), at the given ``PRAGMA synchronous`` level.

    Raises :class:`OSError` or :class:`sqlite3.Error` as they come, including
    when the file cannot be put in WAL mode; the caller says which store.
    """
    if synchronous not in _LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(_LEVELS)}, not {synchronous!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal mode {mode!r}, WAL is needed")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn
