"""Fixtures for the subscriber store on both back-ends.

``store_url`` names a fresh, empty store, once per back-end: a SQLite file in
``tmp_path``, and a PostgreSQL database created for the test on the server
``WEBIMS_TEST_POSTGRES`` names (by default the local one CI starts, trust
authentication as ``postgres``) and dropped afterwards.  A server that cannot
be reached fails the test: a skipped back-end would pass unnoticed.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from webims.hss import open_store
from webims.hss.store import SubscriberStore

ADMIN_DSN = os.environ.get(
    "WEBIMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres?connect_timeout=5"
)
BACKENDS = ("sqlite", "postgresql")

_RUN = f"webims_test_{os.getpid()}_{secrets.token_hex(3)}"
_count = itertools.count(1)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN}: {err}", pytrace=False)


def _url(dbname: str) -> str:
    """``ADMIN_DSN`` (a postgresql:// URL) with another database."""
    return urlsplit(ADMIN_DSN)._replace(path=f"/{dbname}").geturl()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """The URL of a database created for this test, dropped after it."""
    dbname = f"{_RUN}_{next(_count)}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield _url(dbname)
    finally:
        with _admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh store lives, for each back-end."""
    if request.param == "sqlite":
        return str(tmp_path / "hss.sqlite3")
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SubscriberStore]:
    """An open store at ``store_url``."""
    async with open_store(store_url) as s:
        yield s
