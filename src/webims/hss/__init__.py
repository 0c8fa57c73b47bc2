"""The HSS: subscriber data (TS 29.228) in a store, served over Diameter Cx.

:func:`open_store` picks the store a deployment names::

    open_store("/var/lib/webims/hss.db")          SqliteStore (a plain path)
    open_store("sqlite:///var/lib/webims/hss.db") SqliteStore, absolute path
    open_store("sqlite://data/hss.db?synchronous=FULL")  relative path, fsync per commit
    open_store("postgresql://hss@db1/webims")     PostgresStore (also postgres://)

The store is returned closed; ``async with open_store(url) as store:`` opens
it (connects, migrates the schema) and closes it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .sqlite_store import SqliteStore, Synchronous
from .store import SubscriberStore

__all__ = ["open_store"]


def open_store(url_or_path: str | Path) -> SubscriberStore:
    """The store ``url_or_path`` names, not yet opened.

    Raises ValueError for a URL of another scheme or a malformed one.
    """
    if isinstance(url_or_path, Path):
        return SqliteStore(url_or_path)
    scheme, sep, _ = url_or_path.partition("://")
    if not sep:
        return SqliteStore(Path(url_or_path))
    if scheme in ("postgresql", "postgres"):
        # Imported here: psycopg takes ~0.3 s to import, which a deployment
        # on SQLite (and every CLI command) need not pay.
        from .postgres_store import PostgresStore  # noqa: PLC0415

        return PostgresStore(url_or_path)
    if scheme == "sqlite":
        parts = urlsplit(url_or_path)
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ValueError(f"{url_or_path!r} names no file")
        options = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
        levels: dict[str, Synchronous] = {"NORMAL": "NORMAL", "FULL": "FULL", "EXTRA": "EXTRA"}
        synchronous = levels.get(options.pop("synchronous", "NORMAL").upper())
        if synchronous is None:
            raise ValueError(f"{url_or_path!r}: synchronous must be NORMAL, FULL or EXTRA")
        if options:
            raise ValueError(f"{url_or_path!r}: unknown options {sorted(options)}")
        return SqliteStore(Path(path), synchronous=synchronous)
    raise ValueError(f"{url_or_path!r}: a store is a path, sqlite://… or postgresql://…")
