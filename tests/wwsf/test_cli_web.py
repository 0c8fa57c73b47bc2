"""``webims subscriber`` provisions the web account with the subscriber, and
``webims run wwsf`` serves it: a web user added on the command line logs in."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from tests.system import up_config
from webims.cli import app
from webims.wwsf.accounts import AccountStore
from webims.wwsf.db import DATABASE_FILE, open_database

from .conftest import logged_in, login, running_web

runner = CliRunner()

ADD = [
    "subscriber",
    "add",
    "--web-user",
    "alice",
    "--password",
    "alice-secret",
    "--impi",
    "alice_private@home1.net",
    "--impu",
    "sip:alice@home1.net",
    "--barred-impu",
    "sip:alice_hidden@home1.net",
]


def cli(data_dir: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--data-dir", str(data_dir)])


def account(data_dir: Path, name: str) -> Any:
    with open_database(data_dir / DATABASE_FILE) as db:
        return AccountStore(db).get(name)


async def test_subscriber_add_makes_a_web_account_that_logs_in(tmp_path: Path) -> None:
    r = await asyncio.to_thread(cli, tmp_path, *ADD)
    assert r.exit_code == 0, r.output
    acc = account(tmp_path, "alice")
    assert acc is not None
    assert acc.impi == "alice_private@home1.net"
    assert acc.impus == ("sip:alice@home1.net",)  # the barred IMPU is not handed out
    assert b"alice-secret" not in (tmp_path / DATABASE_FILE).read_bytes()

    async with running_web(tmp_path) as web, web.client() as c:
        assert (await login(c, "alice", "wrong")).status_code == 401
        assert (await login(c, "alice", "alice-secret")).status_code == 303
        assert await logged_in(c)

    # Added twice: refused, nothing changes.
    r = await asyncio.to_thread(cli, tmp_path, *ADD)
    assert r.exit_code == 1 and "exists" in r.stderr

    r = await asyncio.to_thread(cli, tmp_path, "subscriber", "remove", "alice")
    assert r.exit_code == 0, r.output
    assert account(tmp_path, "alice") is None
    r = await asyncio.to_thread(cli, tmp_path, "subscriber", "show", "alice")
    assert r.exit_code == 1
    r = await asyncio.to_thread(cli, tmp_path, "subscriber", "remove", "alice")
    assert r.exit_code == 1


def test_web_account_refused_leaves_no_subscriber(tmp_path: Path) -> None:
    # A web account already holds the IMPI: the HSS subscriber is not kept either.
    with open_database(tmp_path / DATABASE_FILE) as db:
        AccountStore(db).add("bob", "bob-secret", "alice_private@home1.net", ["sip:b@home1.net"])
    r = cli(tmp_path, *ADD)
    assert r.exit_code == 1 and "nothing added" in r.stderr
    assert cli(tmp_path, "subscriber", "show", "alice").exit_code == 1
    assert account(tmp_path, "alice") is None


def test_seed_demo_makes_web_accounts_and_pool(tmp_path: Path) -> None:
    r = cli(tmp_path, "subscriber", "seed-demo", "--pool")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[:2] == ["user1: added", "user2: added"]
    assert lines[2:] == [f"pool-{n}: added" for n in range(1, 5)]
    with open_database(tmp_path / DATABASE_FILE) as db:
        store = AccountStore(db)
        assert store.names() == ["user1", "user2"]
        assert store.verify("user1", "user1-secret") is not None
    r = cli(tmp_path, "subscriber", "seed-demo", "--pool")
    assert r.exit_code == 0
    assert "added" not in r.stdout
    r = cli(tmp_path, "subscriber", "show", "pool-1", "--json")
    assert r.exit_code == 0 and "pool1_private@home1.net" in r.stdout
    assert "wwsf.home1.net" in r.stdout  # allowed WWSF: this pool belongs to it


async def test_webims_up_serves_the_web_element(tmp_path: Path) -> None:
    made = up_config(tmp_path)
    config = made.path
    web_port = made.ports["web"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webims",
            "up",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        printed = []
        while True:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, "".join(printed)
            printed.append(line)
            if line.startswith("ready"):
                break
        text = "".join(printed)
        assert (
            f"https://127.0.0.1:{web_port}/  (WWSF + WAF; log in as user1 / user1-secret)" in text
        )
        ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{web_port}", verify=ctx, timeout=10
        ) as c:
            r = await c.get("/api/config")
            assert r.status_code == 200
            assert r.json()["authorize_url"] == f"https://127.0.0.1:{web_port}/authorize"
            assert (await login(c, "user1", "user1-secret")).status_code == 303
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
    assert proc.returncode == 0, out


def test_link_makes_or_updates_the_web_account(tmp_path: Path) -> None:
    assert cli(tmp_path, *ADD, "--impu", "sip:alice2@home1.net").exit_code == 0
    with open_database(tmp_path / DATABASE_FILE) as db:
        AccountStore(db).remove("alice")  # an HSS subscriber with no web account

    r = cli(tmp_path, "subscriber", "link", "alice")
    assert r.exit_code == 2 and "--password" in r.stderr
    assert account(tmp_path, "alice") is None
    r = cli(tmp_path, "subscriber", "link", "alice", "--password", "new-secret")
    assert r.exit_code == 0, r.output
    acc = account(tmp_path, "alice")
    assert acc.impi == "alice_private@home1.net"
    assert acc.impus == ("sip:alice@home1.net", "sip:alice2@home1.net")

    assert cli(tmp_path, "subscriber", "bar", "sip:alice2@home1.net").exit_code == 0
    r = cli(tmp_path, "subscriber", "link", "alice")
    assert r.exit_code == 0, r.output
    assert account(tmp_path, "alice").impus == ("sip:alice@home1.net",)
    with open_database(tmp_path / DATABASE_FILE) as db:
        assert AccountStore(db).verify("alice", "new-secret") is not None

    r = cli(tmp_path, "subscriber", "link", "nobody", "--password", "x")
    assert r.exit_code == 1 and "not found" in r.stderr


async def test_production_element_seeds_no_demo_accounts(tmp_path: Path) -> None:
    from tests.ports import free_port
    from webims.config import load_settings
    from webims.wwsf.element import WebElement

    port = free_port()
    web = {"port": port, "production": True, "public_url": f"https://127.0.0.1:{port}"}
    said: list[str] = []
    element = WebElement(
        load_settings(None, data_dir=tmp_path, web=web), seed=True, say=said.append
    )
    await element.start()
    try:
        assert "web      production: no demo web accounts" in said
        assert any("identity pool: pool-1" in line for line in said)
        assert element.describe()[0] == f"https://127.0.0.1:{port}/  (WWSF + WAF)"
        assert account(tmp_path, "user1") is None
    finally:
        await element.close()
