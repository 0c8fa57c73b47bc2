"""``webims token`` against a running ``webims up``: the code + PKCE flow
through the real login form, the token alone on stdout, errors on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from webims.devca import ensure_dev_ca
from webims.wwsf.accounts import AccountStore
from webims.wwsf.db import DATABASE_FILE, open_database

from .conftest import INTROSPECT_AUTH, WebSystem, https, verified_claims


def webims_token(system: WebSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webims", "token", "--config", str(system.config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_prints_one_access_token_whose_claims_are_user1s(web_system: WebSystem) -> None:
    out = webims_token(web_system, "--user", "user1", "--password", "user1-secret")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0] == out.stdout.strip()
    claims = verified_claims(web_system, lines[0])
    # The eP-CSCF's other way to check it: RFC 7662 introspection.
    with https(web_system) as client:
        answer = client.post("/introspect", data={"token": lines[0]}, auth=INTROSPECT_AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["sub"] == "user1" and body["jti"] == claims["jti"]


def test_each_run_is_a_new_token(web_system: WebSystem) -> None:
    tokens = [
        webims_token(web_system, "--user", "user1", "--password", "user1-secret").stdout.strip()
        for _ in range(2)
    ]
    jtis = {verified_claims(web_system, t)["jti"] for t in tokens}
    assert len(jtis) == 2


def test_a_wrong_password_prints_no_token_and_exits_1(web_system: WebSystem) -> None:
    out = webims_token(web_system, "--user", "user1", "--password", "not-the-password")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "login refused" in out.stderr and "Wrong web user or password" in out.stderr


def test_an_unknown_user_gets_the_same_answer(web_system: WebSystem) -> None:
    out = webims_token(web_system, "--user", "nobody", "--password", "whatever-secret")
    assert out.returncode == 1 and out.stdout == ""
    assert "Wrong web user or password" in out.stderr


def test_a_web_user_without_ims_identity_gets_no_token(web_system: WebSystem) -> None:
    with open_database(web_system.data_dir / DATABASE_FILE) as db:
        AccountStore(db).add("webonly", "webonly-secret", None)
    out = webims_token(web_system, "--user", "webonly", "--password", "webonly-secret")
    assert out.returncode == 1 and out.stdout == ""
    assert "access_denied" in out.stderr


def test_an_untrusted_certificate_is_refused(web_system: WebSystem, tmp_path: Path) -> None:
    other = ensure_dev_ca(tmp_path).ca_cert  # another CA: not the one of the web element
    out = webims_token(
        web_system, "--user", "user1", "--password", "user1-secret", "--ca", str(other)
    )
    assert out.returncode == 1 and out.stdout == ""
    assert "certificate verify failed" in out.stderr


def test_nothing_listening_is_a_clear_error(web_system: WebSystem) -> None:
    out = webims_token(
        web_system, "--user", "user1", "--password", "user1-secret", "--url", "https://127.0.0.1:9"
    )
    assert out.returncode == 1 and out.stdout == ""
    assert "cannot connect to https://127.0.0.1:9" in out.stderr
