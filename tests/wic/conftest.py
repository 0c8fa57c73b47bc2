"""Fixtures of the WIC tests: the built browser app and a running system.

``wic_build`` makes sure ``src/webims/wic/static/build/`` holds the JsSIP
bundle (``make wic``: ``npm ci`` + esbuild), as ``make test`` does before
pytest; a missing ``npm`` or ``node`` fails the test, it does not skip it.

``web_system`` is ``webims up`` as a user runs it: a separate process with its
own data directory (so its own dev CA, WAF keys and demo accounts) and free
ports for every listener, taken down with SIGTERM at the end of the module.
Its access tokens live ``TOKEN_TTL`` seconds, so that a browser sees its
WIC refresh them within the test; the eP-CSCF may introspect with
``INTROSPECT_AUTH``.

``netns_system`` is the same inside a loopback-only network namespace
(tests/netns.py), with the way in: for the tests whose browsers do WebRTC.

``pki`` is a dev CA of the module's own, for the WSS stand-ins of the
eP-CSCF (tests of the Python WIC and of the bench's).

``verified_claims`` checks an access token as the eP-CSCF will: signature by
a key of the WAF's JWKS (found through the RFC 8414 metadata), ``typ``
``at+jwt``, ES256, then every claim of a token for ``user1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.netns import Enter, loopback_namespace
from tests.ports import free_port
from tests.system import up_config
from webims.devca import ensure_dev_ca
from webims.sip import parse_message

ROOT = Path(__file__).resolve().parents[2]
WIC_DIR = ROOT / "src" / "webims" / "wic"
BUNDLE = WIC_DIR / "static" / "build" / "jssip.js"

TOKEN_TTL = 12
INTROSPECT_AUTH = ("pcscf", "introspection-secret-of-the-test-pcscf")
USER1 = {
    "sub": "user1",
    "impi": "user1_private@home1.net",
    "impu": ["sip:user1_public1@home1.net"],
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A dev CA of its own: ``(CA certificate, server certificate, server key)``,
    for the WSS stand-ins of the eP-CSCF."""
    ca = ensure_dev_ca(tmp_path_factory.mktemp("pki"))
    return ca.ca_cert, ca.server_cert, ca.server_key


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (the WIC tests need it)", pytrace=False)
    return path


def hold_registered(
    proc: subprocess.Popen[str], while_registered: Callable[[], None]
) -> tuple[bool, str]:
    """For a browser driver in mode "hold": once it writes ``hold: registered`` on
    stderr, ``while_registered`` runs and the driver is told to go on (``go`` on
    its stdin).  Whether it got there, and what it wrote on stderr before (all of
    it when it ended without registering)."""
    assert proc.stdin is not None and proc.stderr is not None
    early: list[str] = []
    for line in proc.stderr:
        if line.startswith("hold: registered"):
            while_registered()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            return True, "".join(early)
        early.append(line)
    return False, "".join(early)


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


def web_config(data: Path, web: int, pcscf_url: str, *, extra: str = "") -> Path:
    """A config file for a system in ``data`` whose web element listens on ``web``."""
    config = data / "webims.toml"
    config.write_text(
        f'data_dir = "{data}"\n'
        f'[web]\nport = {web}\npublic_url = "https://127.0.0.1:{web}"\n'
        f'pcscf_url = "{pcscf_url}"\n'
        f"[waf]\naccess_token_ttl = {TOKEN_TTL}\n"
        f'resource_servers = {{ {INTROSPECT_AUTH[0]} = "{INTROSPECT_AUTH[1]}" }}\n' + extra
    )
    return config


@contextlib.contextmanager
def running(*args: str, enter: Enter | None = None) -> Iterator[list[str]]:
    """``webims ARGS`` in a process until the block ends (inside a network
    namespace when ``enter`` is one's, see tests/netns.py); what it printed up
    to its ``ready`` line.  It must then stop cleanly on SIGTERM."""
    argv = [sys.executable, "-m", "webims", *args]
    proc = subprocess.Popen(
        enter(argv) if enter else argv,
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
        assert printed and printed[-1].startswith("ready"), f"webims did not start:\n{text}"
        yield printed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        printed.append(out)
    assert proc.returncode == 0, "".join(printed)


@pytest.fixture(scope="module")
def web_system(tmp_path_factory: pytest.TempPathFactory, wic_build: Path) -> Iterator[WebSystem]:
    """``webims up``: every element, the eP-CSCF's wss:// listener as pcscf_url."""
    data = tmp_path_factory.mktemp("webims-up")
    web, p_sip, ws, wss, i_sip, s_sip, dia, api = (free_port() for _ in range(8))
    config = web_config(
        data,
        web,
        f"wss://127.0.0.1:{wss}/",
        extra=(
            f"[pcscf]\nsip_port = {p_sip}\nws_port = {ws}\nwss_port = {wss}\n"
            f"[icscf]\nsip_port = {i_sip}\n[scscf]\nsip_port = {s_sip}\n"
            f"[hss]\ndiameter_port = {dia}\napi_port = {api}\n"
        ),
    )
    with running("up", "--config", str(config)) as printed:
        assert f"https://127.0.0.1:{web}" in "".join(printed), "no web element"
        yield WebSystem(f"https://127.0.0.1:{web}", data, config, wss, printed)


@pytest.fixture(scope="module")
def netns_system(
    tmp_path_factory: pytest.TempPathFactory, wic_build: Path
) -> Iterator[tuple[WebSystem, Enter]]:
    """``webims up`` inside a loopback-only network namespace, and the way in."""
    with loopback_namespace() as enter:
        data = tmp_path_factory.mktemp("webims-call")
        made = up_config(data)
        with running("up", "--config", str(made.path), enter=enter) as printed:
            url = f"https://127.0.0.1:{made.ports['web']}"
            yield WebSystem(url, data, made.path, made.ports["wss"], printed), enter


def https(system: WebSystem) -> httpx.Client:
    """A client of the web element that trusts its dev CA."""
    return httpx.Client(base_url=system.url, verify=ssl.create_default_context(cafile=system.ca))


def verified_claims(
    system: WebSystem, token: str, who: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The claims of ``token`` once its signature is checked against the JWKS;
    asserts the header and every claim the WIC's registration will rely on
    (the identities: those of ``who``, by default user1's)."""
    with https(system) as client:
        meta = client.get("/.well-known/oauth-authorization-server").json()
        jwks = client.get(meta["jwks_uri"]).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    header, claims = decoded.header, dict(decoded.claims)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]
    now = time.time()
    for name, value in (USER1 if who is None else who).items():
        assert claims[name] == value, name
    assert claims["iss"] == meta["issuer"] == system.url
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert "home1.net" in aud
    assert claims["client_id"] == "wic"
    assert claims["wwsf"] == "wwsf.home1.net"
    assert claims["authorization_entity"] == "webrtc_authserver1@thirdparty.net"
    assert set(claims["scope"].split()) == {"ims:register", "ims:call"}
    assert claims["exp"] - claims["iat"] == TOKEN_TTL
    assert claims["iat"] <= now + 5 and claims["exp"] > now - 60
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    return claims


def call_report(argv: list[str]) -> dict[str, Any]:
    """The JSON report of a call driver (browser_call.mjs, wic_call.mjs) run as
    ``argv``: each side ("caller", "callee") with its WebSocket frames printed
    and parsed (``messages``: direction and SIP message).  Fails with the
    driver's error and what each side saw when a step did not happen."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
    assert proc.stdout.strip(), f"the driver said nothing (exit {proc.returncode}):\n{proc.stderr}"
    report: dict[str, Any] = json.loads(proc.stdout)
    seen = [f"{report.get('error')}", proc.stderr]
    for name in ("caller", "callee"):
        side = report.get(name) or {"frames": []}
        print(f"===== {name}\n" + "\n".join(f"--- {f['dir']}\n{f['text']}" for f in side["frames"]))
        side["messages"] = [(f["dir"], parse_message(f["text"].encode())) for f in side["frames"]]
        shown = {k: v for k, v in side.items() if k not in ("frames", "messages")}
        seen.append(f"{name}: {shown!r}")
    assert proc.returncode == 0 and "error" not in report, "\n".join(seen)
    for name in ("caller", "callee"):
        assert not [line for line in report[name]["console"] if line.startswith("pageerror")]
    return report
