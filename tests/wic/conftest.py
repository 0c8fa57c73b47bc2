"""Fixtures of the WIC tests: the built browser app and a running system.

``wic_build`` makes sure ``src/webims/wic/static/build/`` holds the JsSIP
bundle (``make wic``: ``npm ci`` + esbuild), as ``make test`` does before
pytest; a missing ``npm`` or ``node`` fails the test, it does not skip it.

``web_system`` is ``webims up`` as a user runs it: a separate process with its
own data directory (so its own dev CA, WAF keys and demo accounts) and free
ports for every listener, taken down with SIGTERM at the end of the module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIC_DIR = ROOT / "src" / "webims" / "wic"
BUNDLE = WIC_DIR / "static" / "build" / "jssip.js"


def free_port() -> int:
    """A port free for both UDP and TCP (SIP listeners take both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no port free for both UDP and TCP")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (the WIC tests need it)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def wic_build() -> Path:
    """The browser app with its JsSIP bundle built."""
    need_tool("node")
    need_tool("npm")
    out = subprocess.run(
        ["make", "-s", "wic"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"make wic failed:\n{out.stdout}\n{out.stderr}"
    assert BUNDLE.is_file() and BUNDLE.stat().st_size > 10_000
    return WIC_DIR / "static"


@dataclass(frozen=True)
class WebSystem:
    """A running ``webims up``: where to reach it and what it made."""

    url: str
    data_dir: Path
    config: Path
    wss_port: int
    output: list[str]

    @property
    def ca(self) -> Path:
        return self.data_dir / "pki" / "ca.pem"


@pytest.fixture(scope="module")
def web_system(tmp_path_factory: pytest.TempPathFactory, wic_build: Path) -> Iterator[WebSystem]:
    data = tmp_path_factory.mktemp("webims-up")
    web, p_sip, ws, wss, i_sip, s_sip, dia, api = (free_port() for _ in range(8))
    config = data / "webims.toml"
    config.write_text(
        f'data_dir = "{data}"\n'
        f'[web]\nport = {web}\npublic_url = "https://127.0.0.1:{web}"\n'
        f'pcscf_url = "wss://127.0.0.1:{wss}/"\n'
        f"[pcscf]\nsip_port = {p_sip}\nws_port = {ws}\nwss_port = {wss}\n"
        f"[icscf]\nsip_port = {i_sip}\n[scscf]\nsip_port = {s_sip}\n"
        f"[hss]\ndiameter_port = {dia}\napi_port = {api}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "webims", "up", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    printed: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("ready"):
                break
        text = "".join(printed)
        assert printed and printed[-1].startswith("ready"), f"webims up did not start:\n{text}"
        assert f"https://127.0.0.1:{web}" in text, f"no web element in:\n{text}"
        yield WebSystem(f"https://127.0.0.1:{web}", data, config, wss, printed)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        printed.append(out)
    assert proc.returncode == 0, "".join(printed)
