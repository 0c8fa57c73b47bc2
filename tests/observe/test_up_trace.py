"""The trace of a real registration: ``webims up`` (every element in its own
process, free ports), ``webims register`` as the WIC (login, token, WSS,
REGISTER), then ``webims trace`` in a third process, its pcap read by
tshark, and the WWSF's /trace page."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.system import up_config
from tests.wic.conftest import running

from .test_pcap_cli import tshark

WEBIMS = [sys.executable, "-m", "webims"]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class System:
    config: Path
    data: Path
    web: int
    ports: dict[str, int]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("webims-trace")
    made = up_config(data, extra="[trace]\nflush_interval = 0.1\n")
    config, web, p = made.path, made.ports["web"], made.ports
    ports = {
        "p": p["pcscf"],
        "wss": p["wss"],
        "i": p["icscf"],
        "s": p["scscf"],
        "dia": p["diameter"],
    }
    with running("up", "--config", str(config)):
        yield System(config, data, web, ports)


def webims(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WEBIMS, args[0], "--config", str(system.config), *args[1:]],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def numbered(text: str) -> list[int]:
    return [int(line[:3]) for line in text.splitlines() if line[:3].strip().isdigit()]


def last_trace(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """``webims trace --plain`` once the flow is on disk (written every 0.1 s)."""
    deadline = time.monotonic() + 10
    while True:
        out = webims(system, "trace", "--plain", *args)
        if (out.returncode == 0 and 8 in numbered(out.stdout)) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


@pytest.fixture(scope="module")
def registered(system: System) -> str:
    out = webims(system, "register", "--user", "user1", "--password", "user1-secret")
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_webims_trace_shows_steps_1_to_8_of_a_real_registration(
    system: System, registered: str
) -> None:
    out = last_trace(system)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("REGISTER sip:user1_public1@home1.net"), text
    first = text.splitlines()[0]
    assert ": 200 OK in " in first and " over wss)" in first
    steps = numbered(text)
    assert steps == sorted(steps) and set(steps) == set(range(1, 9)), text
    assert steps.count(5) == 4 and steps.count(6) == 2 and steps.count(7) == 2, text
    for label in (
        "POST /token",
        "200 (access token for user1)",
        "WSS connection",
        "REGISTER sip:home1.net (Bearer)",
        "token valid: IMPI user1_private@home1.net",
        "REGISTER sip:home1.net (auth-done)",
        "UAR REGISTRATION",
        "UAA 2001 DIAMETER_FIRST_REGISTRATION",
        "SAR REGISTRATION",
        "SAA 2001",
    ):
        assert label in text, (label, text)
    # The trace files hold no access token (the WIC sent one in its REGISTER).
    for path in (system.data / "trace").iterdir():
        assert not re.search(rb"Bearer eyJ", path.read_bytes()), path


def test_pcap_of_a_real_registration_decodes_in_tshark(
    system: System, registered: str, tmp_path: Path
) -> None:
    pcap = tmp_path / "up.pcapng"
    out = last_trace(system, "--pcap", str(pcap))
    assert out.returncode == 0, out.stderr
    ports = system.ports
    decode = [f"tcp.port=={ports[k]},sip" for k in ("p", "i", "s", "wss")]
    decode.append(f"tcp.port=={ports['dia']},diameter")
    fields = ("sip.Method", "diameter.cmd.code", "diameter.flags.request", "tcp.dstport")
    rows = [r.split("\t") for r in tshark(pcap, *fields, decode_as=tuple(decode))]
    register_ports = [int(r[3]) for r in rows if r[0] == "REGISTER"]
    assert [ports["wss"], ports["i"], ports["s"]] == register_ports[:3]
    cx = [(r[1], r[2]) for r in rows if r[1]]
    assert ("300", "1") in cx and ("301", "1") in cx and ("301", "0") in cx


async def test_trace_page_shows_the_users_own_last_registration(
    system: System, registered: str
) -> None:
    last_trace(system)
    ctx = ssl.create_default_context(cafile=str(system.data / "pki" / "ca.pem"))
    base = f"https://127.0.0.1:{system.web}"
    async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=10) as c:
        r = await c.get("/trace")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        form = await c.get("/login", params={"next": "/trace"})
        match = CSRF.search(form.text)
        assert match is not None
        r = await c.post(
            "/login",
            data={
                "username": "user2",
                "password": "user2-secret",
                "csrf_token": match.group(1),
                "next": "/trace",
            },
        )
        assert r.status_code == 303
        page = await c.get("/trace")
        assert page.status_code == 200
        # user2 never registered: user1's flow is not theirs to see.
        assert "user1" not in page.text and "No registration of" in page.text

    async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=10) as c:
        form = await c.get("/login", params={"next": "/trace"})
        match = CSRF.search(form.text)
        assert match is not None
        await c.post(
            "/login",
            data={
                "username": "user1",
                "password": "user1-secret",
                "csrf_token": match.group(1),
                "next": "/trace",
            },
        )
        page = await c.get("/trace")
        assert page.status_code == 200
        assert "<pre class=ladder>REGISTER sip:user1_public1@home1.net" in page.text
        assert "UAR REGISTRATION" in page.text and "&lt;" in page.text  # escaped arrows
        assert page.headers["cache-control"] == "no-store"
        assert "content-security-policy" in page.headers
