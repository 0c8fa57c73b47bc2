"""``webims register`` and ``webims bench register`` against a running
``webims up`` (its own process, data directory and free ports): the login,
the WSS connection to the eP-CSCF, the REGISTER through the I-CSCF and the
S-CSCF (UAR, SAR on the real HSS), what is printed and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.system import up_config
from tests.wic.conftest import running

IMPU1 = "sip:user1_public1@home1.net"


@dataclass(frozen=True)
class System:
    config: Path
    web_port: int


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("webims-register")
    made = up_config(data)
    config, web = made.path, made.ports["web"]
    with running("up", "--config", str(config)):
        yield System(config, web)


def webims(system: System, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    command, rest = args[0], args[1:]
    prefix = [command] if command != "bench" else [command, rest[0]]
    rest = rest if command != "bench" else rest[1:]
    return subprocess.run(
        [sys.executable, "-m", "webims", *prefix, "--config", str(system.config), *rest],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_register_prints_the_outcome_and_the_ladder_and_exits_0(system: System) -> None:
    out = webims(system, "register", "--user", "user1", "--password", "user1-secret")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("200 OK")
    assert f"IMPU           {IMPU1}  (default)" in out.stdout
    assert "Service-Route  <sip:orig@" in out.stdout
    assert "expires        3600 s" in out.stdout
    ladder = [line for line in lines if "─ REGISTER sip:home1.net" in line or "200 OK ─" in line]
    assert len(ladder) == 2
    # The deployment's ladder of this very flow, from its trace: through UAR and SAR.
    (title,) = [line for line in lines if line.startswith(f"REGISTER {IMPU1}: 200 OK in")]
    assert "CSeq 1," in title and "over wss" in title
    assert "UAR REGISTRATION" in out.stdout
    assert "SAR REGISTRATION" in out.stdout or "SAR RE_REGISTRATION" in out.stdout


def test_register_expires_is_asked_for_and_deregister_sends_expires_0(system: System) -> None:
    out = webims(
        system,
        "register",
        "--user",
        "user2",
        "--password",
        "user2-secret",
        "--expires",
        "600",
        "--deregister",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "expires        600 s" in out.stdout
    assert out.stdout.count("─ REGISTER sip:home1.net") == 2  # REGISTER, then Expires: 0
    assert out.stdout.count(" 200 OK ─") == 2


def test_s9_16_register_subscribe_gets_the_full_reg_event_notify(system: System) -> None:
    out = webims(system, "register", "--user", "user1", "--password", "user1-secret", "--subscribe")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reg event      SUBSCRIBE: 200 OK" in out.stdout
    # 24.229 5.4.2.1 / RFC 3680: an immediate NOTIFY, full state, version 0,
    # relayed by the eP-CSCF over the WIC's connection (SPEC §9.5 16, 19).
    assert "NOTIFY version 0 (full), active;expires=" in out.stdout
    assert f": {IMPU1} active" in out.stdout


def test_register_with_a_wrong_password_exits_1(system: System) -> None:
    out = webims(system, "register", "--user", "user1", "--password", "not-the-password")
    assert out.returncode == 1
    assert "login" in out.stderr and "Wrong web user or password" in out.stderr


def test_register_refused_by_the_registrar_exits_1(system: System) -> None:
    # Below the S-CSCF's min_expires (60): 423 Interval Too Brief (RFC 3261 §10.3 step 7).
    out = webims(
        system, "register", "--user", "user1", "--password", "user1-secret", "--expires", "10"
    )
    assert out.returncode == 1, out.stdout
    assert out.stdout.startswith("423 ")
    assert "registration refused: 423" in out.stderr


def test_s8_6_register_to_a_server_that_is_no_sip_websocket_exits_1(system: System) -> None:
    # The web element's HTTPS port: no WebSocket upgrade with subprotocol sip there.
    out = webims(
        system,
        "register",
        "--user",
        "user1",
        "--password",
        "user1-secret",
        "--url",
        f"wss://127.0.0.1:{system.web_port}/",
    )
    assert out.returncode == 1
    assert "WebSocket handshake refused" in out.stderr or "subprotocol sip" in out.stderr


def test_register_when_nothing_listens_exits_1(system: System) -> None:
    out = webims(
        system,
        "register",
        "--user",
        "user1",
        "--password",
        "user1-secret",
        "--url",
        f"wss://127.0.0.1:{free_port()}/",
    )
    assert out.returncode == 1
    assert "cannot connect to wss://127.0.0.1:" in out.stderr


def test_bench_register_json_line(system: System) -> None:
    out = webims(system, "bench", "register", "--json", "--clients", "4", "--duration", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["ok"] > 0 and figures["failed"] == 0, figures
    assert figures["rate"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert " ok " in out.stderr  # progress while running
    assert "  logged in 4/4" in out.stderr  # and while preparing
    # Every connection a full TLS handshake unless told otherwise.
    assert figures["tls_resume"] is False and figures["tls_resumed"] == 0
    assert "(full TLS handshakes)" in out.stdout


def test_bench_register_resumes_tls_sessions_when_asked(system: System) -> None:
    out = webims(
        system, "bench", "register", "--json", "--clients", "2", "--duration", "1", "--tls-resume"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["ok"] > 0 and figures["failed"] == 0, figures
    assert figures["tls_resume"] is True
    # Each client's first connection is a full handshake, the next ones resume.
    assert 0 < figures["tls_resumed"] <= figures["ok"]
    assert "TLS sessions resumed" in out.stdout


def test_bench_register_with_minted_tokens(system: System) -> None:
    out = webims(
        system,
        "bench",
        "register",
        "--json",
        "--clients",
        "2",
        "--duration",
        "1",
        "--users",
        "3",
        "--mint-tokens",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["ok"] > 0 and figures["failed"] == 0, figures
