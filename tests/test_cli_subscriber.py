"""``webims subscriber …`` against a data directory of its own: what each
command prints and exits with, and what it leaves in the SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from webims.cli import app
from webims.hss.model import digest_ha1
from webims.hss.sqlite_store import SqliteStore

runner = CliRunner()

ADD_USER1 = [
    "subscriber",
    "add",
    "--web-user",
    "user1",
    "--password",
    "user1-secret",
    "--impi",
    "user1_private@home1.net",
    "--impu",
    "sip:user1_public1@home1.net",
    "--impu",
    "tel:+15550001",
    "--barred-impu",
    "sip:user1_hidden@home1.net",
    "--allowed-waf",
    "webrtc_authserver1@thirdparty.net",
    "--allowed-wwsf",
    "wwsf.home1.net",
]


def cli(data_dir: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--data-dir", str(data_dir)])


def show(data_dir: Path, name: str) -> dict[str, Any]:
    r = cli(data_dir, "subscriber", "show", name, "--json")
    assert r.exit_code == 0, r.output
    view: dict[str, Any] = json.loads(r.stdout)
    return view


def secret_free(data_dir: Path, *secrets: str) -> bool:
    """Whether no file of the store holds one of ``secrets``."""
    blobs = [p.read_bytes() for p in data_dir.iterdir() if p.is_file()]
    return not any(s.encode() in b for s in secrets for b in blobs)


def test_add_show_list(tmp_path: Path) -> None:
    r = cli(tmp_path, *ADD_USER1)
    assert r.exit_code == 0, r.output
    assert "added user1" in r.stdout
    assert (tmp_path / "hss.sqlite3").exists()

    view = show(tmp_path, "user1")
    assert view["privates"][0]["impi"] == "user1_private@home1.net"
    assert view["privates"][0]["realm"] == "home1.net"
    assert {p["impu"]: p["barred"] for p in view["publics"]} == {
        "sip:user1_public1@home1.net": False,
        "tel:+15550001": False,
        "sip:user1_hidden@home1.net": True,
    }
    assert view["allowed_waf"] == ["webrtc_authserver1@thirdparty.net"]
    assert view["allowed_wwsf"] == ["wwsf.home1.net"]
    ha1 = digest_ha1("user1_private@home1.net", "home1.net", "user1-secret")
    dumped = json.dumps(view)
    assert ha1 not in dumped and "user1-secret" not in dumped
    assert secret_free(tmp_path, "user1-secret")

    r = cli(tmp_path, "subscriber", "show", "user1")
    assert r.exit_code == 0
    assert "sip:user1_hidden@home1.net (barred" in r.stdout
    assert ha1 not in r.stdout

    r = cli(tmp_path, "subscriber", "list")
    assert r.exit_code == 0
    assert "user1" in r.stdout and "user1_private@home1.net" in r.stdout
    r = cli(tmp_path, "subscriber", "list", "--json")
    assert r.exit_code == 0
    assert [v["name"] for v in json.loads(r.stdout)] == ["user1"]


def test_the_password_becomes_the_ha1(tmp_path: Path) -> None:
    assert cli(tmp_path, *ADD_USER1, "--realm", "other.realm").exit_code == 0

    async def read() -> tuple[str, str]:
        async with SqliteStore(tmp_path / "hss.sqlite3") as store:
            sub = await store.get("user1")
        assert sub is not None
        return sub.privates[0].realm, sub.privates[0].ha1

    realm, ha1 = asyncio.run(read())
    assert realm == "other.realm"
    assert ha1 == digest_ha1("user1_private@home1.net", "other.realm", "user1-secret")


def test_duplicate_add_fails_with_exit_1_and_changes_nothing(tmp_path: Path) -> None:
    assert cli(tmp_path, *ADD_USER1).exit_code == 0
    before = show(tmp_path, "user1")
    again = [a if a != "user1-secret" else "changed" for a in ADD_USER1]
    r = cli(tmp_path, *again)
    assert r.exit_code == 1
    assert "subscriber exists" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # An IMPU of user1 under another name.
    r = cli(
        tmp_path,
        *["subscriber", "add", "--web-user", "user9", "--password", "p"],
        *["--impi", "user9@home1.net", "--impu", "tel:+15550001"],
    )
    assert r.exit_code == 1
    assert show(tmp_path, "user1") == before
    r = cli(tmp_path, "subscriber", "list", "--json")
    assert [v["name"] for v in json.loads(r.stdout)] == ["user1"]


@pytest.mark.parametrize(
    "args",
    [
        ["--web-user", "u", "--password", "p", "--impi", "u@home1.net"],  # no --impu
        ["--web-user", "u", "--password", "p", "--impi", "u@h", "--impu", "mailto:u@h"],
        ["--web-user", "u", "--password", "p", "--impi", "no-realm", "--impu", "sip:u@h"],
        ["--web-user", "u v", "--password", "p", "--impi", "u@h", "--impu", "sip:u@h"],
        ["--web-user", "u", "--password", "", "--impi", "u@h", "--impu", "sip:u@h"],
        ["--web-user", "u", "--password", "p", "--impi", "u@h", "--impu", "sip:u@h", "--bogus"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    r = cli(tmp_path, "subscriber", "add", *args)
    assert r.exit_code == 2, r.output
    r = cli(tmp_path, "subscriber", "list", "--json")
    assert json.loads(r.stdout) == []


def test_bar_unbar_remove(tmp_path: Path) -> None:
    assert cli(tmp_path, *ADD_USER1).exit_code == 0
    r = cli(tmp_path, "subscriber", "bar", "tel:+15550001")
    assert r.exit_code == 0, r.output
    assert "barred tel:+15550001 (subscriber user1)" in r.stdout
    barred = {p["impu"] for p in show(tmp_path, "user1")["publics"] if p["barred"]}
    assert barred == {"tel:+15550001", "sip:user1_hidden@home1.net"}

    r = cli(tmp_path, "subscriber", "unbar", "sip:user1_hidden@home1.net")
    assert r.exit_code == 0
    barred = {p["impu"] for p in show(tmp_path, "user1")["publics"] if p["barred"]}
    assert barred == {"tel:+15550001"}

    for args in (["bar", "sip:nobody@home1.net"], ["unbar", "sip:nobody@home1.net"]):
        r = cli(tmp_path, "subscriber", *args)
        assert r.exit_code == 1
        assert "not found" in r.stderr

    r = cli(tmp_path, "subscriber", "remove", "user1")
    assert r.exit_code == 0
    assert "removed user1" in r.stdout
    r = cli(tmp_path, "subscriber", "show", "user1")
    assert r.exit_code == 1
    assert "not found" in r.stderr
    assert cli(tmp_path, "subscriber", "remove", "user1").exit_code == 1


def test_seed_demo_twice(tmp_path: Path) -> None:
    r = cli(tmp_path, "subscriber", "seed-demo")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["user1: added", "user2: added"]
    first = [show(tmp_path, n) for n in ("user1", "user2")]
    r = cli(tmp_path, "subscriber", "seed-demo")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["user1: already provisioned", "user2: already provisioned"]
    assert [show(tmp_path, n) for n in ("user1", "user2")] == first

    for n, view in enumerate(first, 1):
        assert view["privates"][0]["impi"] == f"user{n}_private@home1.net"
        assert view["privates"][0]["realm"] == "home1.net"
        assert [p["impu"] for p in view["publics"]] == [f"sip:user{n}_public1@home1.net"]
        assert view["allowed_waf"] == ["webrtc_authserver1@thirdparty.net"]

    async def ha1s() -> list[str]:
        async with SqliteStore(tmp_path / "hss.sqlite3") as store:
            subs = [await store.get(n) for n in ("user1", "user2")]
        return [s.privates[0].ha1 for s in subs if s is not None]

    assert asyncio.run(ha1s()) == [
        digest_ha1(f"user{n}_private@home1.net", "home1.net", f"user{n}-secret") for n in (1, 2)
    ]
    assert secret_free(tmp_path, "user1-secret", "user2-secret")


def test_config_selects_the_store(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    config = tmp_path / "webims.toml"
    # data_dir too: the web accounts still live there (never in the working tree).
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[hss]\nstore = "{elsewhere}"\n')
    r = runner.invoke(app, ["subscriber", "seed-demo", "--config", str(config)])
    assert r.exit_code == 0, r.output
    assert elsewhere.exists()
    r = runner.invoke(app, ["subscriber", "list", "--json", "--config", str(config)])
    assert [v["name"] for v in json.loads(r.stdout)] == ["user1", "user2"]


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "webims.toml"
    config.write_text("[hss]\nno_such_key = 1\n")
    r = runner.invoke(app, ["subscriber", "list", "--config", str(config)])
    assert r.exit_code == 2
    assert "configuration error" in r.stderr
