"""The WIC in a real browser: Debian's headless Chromium, driven by Playwright
(tests/wic/browser_login.mjs on Node), against ``webims up``.

A person's path: open the WWSF, press "Log in", fill in the WWSF's login form
as user1, come back to the page.  Then the page must show the IMPI and the
IMPU, hold a token that the WAF signed for user1 (checked against the JWKS and
by introspection), never have put a token in a URL, refresh the token before
it expires (with a new refresh token: rotation), and log out so that the
tokens are dead.  The SIP side is the seed flow itself (TS 24.371 Annex
A.3.2): the WIC registers over WSS through the eP-CSCF, the I-CSCF and the
S-CSCF; while the browser holds its registration the test finds it in the
IMS core (the HSS says user1 is registered at the S-CSCF, and an OPTIONS sent
to user1's IMPU at the I-CSCF is routed by LIR, the S-CSCF's binding and the
eP-CSCF's flow to the browser, whose JsSIP answers it).  A screenshot is saved
in tests/wic/artifacts/ (git-ignored) and its path printed.

Chromium or Node missing fails the test: a browser test that skips would pass
unnoticed.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from webims.devca import ensure_dev_ca
from webims.sip import Request, Response, parse_message
from webims.sip.auth import BearerCredentials

from .conftest import (
    INTROSPECT_AUTH,
    TOKEN_TTL,
    USER1,
    WebSystem,
    free_port,
    hold_registered,
    https,
    need_tool,
    running,
    verified_claims,
    web_config,
)
from .sip_peer import SipPeer

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(__file__).with_name("browser_login.mjs")
ARTIFACTS = Path(__file__).with_name("artifacts")


def browser_command(url: str, screenshot: Path, user: str = "user1", modes: str = "") -> list[str]:
    node = need_tool("node")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot.unlink(missing_ok=True)
    command = [node, str(DRIVER), url, user, f"{user}-secret", str(screenshot)]
    return command + ([modes] if modes else [])


def browser_result(returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    assert returncode == 0, f"the browser run failed:\n{stderr}\n{stdout}"
    result: dict[str, Any] = json.loads(stdout)
    # The page runs under the WWSF's Content-Security-Policy without a breach
    # and without an uncaught exception.
    troubles = [
        line
        for line in result["console"]
        if "Content Security Policy" in line or line.startswith("pageerror")
    ]
    assert troubles == []
    return result


def run_browser(system: WebSystem, screenshot: Path, **kwargs: Any) -> dict[str, Any]:
    command = browser_command(system.url, screenshot, **kwargs)
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=100)
    return browser_result(out.returncode, out.stdout, out.stderr)


def run_browser_holding(
    system: WebSystem, screenshot: Path, while_registered: Callable[[], None], modes: str
) -> dict[str, Any]:
    """:func:`run_browser` in mode "hold": ``while_registered`` runs while the
    browser is registered, then the browser goes on (refresh, reload, logout)."""
    command = browser_command(system.url, screenshot, modes=f"{modes},registered,hold")
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        held, errors = hold_registered(proc, while_registered)
        if not held:
            out, _ = proc.communicate(timeout=30)
            pytest.fail(f"the browser never registered:\n{errors}\n{out}")
        out, err = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return browser_result(proc.returncode, out, errors + err)


def system_ports(system: WebSystem) -> dict[str, Any]:
    return tomllib.loads(system.config.read_text())


def hss_view(system: WebSystem, name: str) -> dict[str, Any]:
    api = system_ports(system)["hss"]["api_port"]
    key = (system.data_dir / "hss-api-key").read_text().strip()
    got = httpx.get(f"http://127.0.0.1:{api}/subscribers/{name}", headers={"X-API-Key": key})
    assert got.status_code == 200, got.text
    view: dict[str, Any] = got.json()
    return view


def options_through_the_core(system: WebSystem, impu: str) -> Response:
    """OPTIONS to ``impu`` sent to the I-CSCF over TCP, as another network would."""
    port = system_ports(system)["icscf"]["sip_port"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        local = sock.getsockname()
        sock.sendall(
            (
                f"OPTIONS {impu} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{local[1]};branch=z9hG4bK-probe-{local[1]}\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:probe@example.net>;tag=probe\r\n"
                f"To: <{impu}>\r\n"
                f"Call-ID: probe-{local[1]}@example.net\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed: {data!r}"
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            resp = parse_message(head + b"\r\n\r\n")
            length = resp.content_length or 0
            while len(rest) < length:
                rest += sock.recv(65536)
            data = rest[length:]
            assert isinstance(resp, Response)
            if resp.status >= 200:
                return resp


@pytest.mark.timeout(180)
def test_user1_logs_in_with_chromium_and_the_wic_shows_the_impu_and_holds_a_token(
    web_system: WebSystem,
) -> None:
    screenshot = ARTIFACTS / "wic-user1.png"
    seen: dict[str, Any] = {}

    def in_the_core() -> None:
        seen["hss"] = hss_view(web_system, "user1")
        seen["options"] = options_through_the_core(web_system, USER1["impu"][0])

    page = run_browser_holding(web_system, screenshot, in_the_core, modes="refresh")
    print(f"screenshot: {screenshot}")
    assert screenshot.is_file() and screenshot.stat().st_size > 5_000

    # What a person sees: the identities of the token response, and the expiry.
    assert page["impi"] == USER1["impi"]
    assert page["impus"] == USER1["impu"]
    assert "sip:user1_public1@home1.net" in page["text"]
    assert page["webUser"] == "user1"
    assert "(in " in page["expiry"]
    assert page["error"] == ""
    # Back on the page with the code and state gone from the address bar.
    assert page["url"] == f"{web_system.url}/"

    # What the page holds: a token the WAF signed for user1, in sessionStorage only.
    held = json.loads(page["storage"]["webims.wic.session"])
    assert page["localStorage"] == []
    token, refresh = held["access_token"], held["refresh_token"]
    claims = verified_claims(web_system, token)
    assert held["impi"] == claims["impi"] and held["impu"] == claims["impu"]
    # The page went through code + PKCE S256, and no token ever travelled in a URL.
    authorize = [u for u in page["requested"] if "/authorize?" in u]
    assert authorize and all("code_challenge_method=S256" in u for u in authorize)
    assert any("/callback?code=" in u for u in page["requested"])
    leaked = [u for u in page["requested"] if token in u or refresh in u]
    assert leaked == []

    # The seed flow: registered over WSS through eP-CSCF, I-CSCF and S-CSCF.
    assert page["regState"] == "registered", page["regText"]
    # While it was: the HSS had user1's IMPU registered at this S-CSCF ...
    s_port = system_ports(web_system)["scscf"]["sip_port"]
    (public,) = [p for p in seen["hss"]["publics"] if p["impu"] == USER1["impu"][0]]
    assert public["state"] == "registered"
    assert seen["hss"]["assignment"]["server_name"] == (
        f"sip:scscf.home1.net:{s_port};transport=tcp"
    )
    # ... and the S-CSCF's binding, through the eP-CSCF's flow, reached the
    # browser: its JsSIP answered an OPTIONS for the IMPU.
    options = seen["options"]
    assert options.status == 200, options.status
    # JsSIP's own answer (it lists the DTMF relay it supports), not a proxy's.
    assert "application/dtmf-relay" in (options.headers.get("Accept") or "")

    # Refresh before expiry (80% of TOKEN_TTL), with a rotated refresh token.
    assert page["refreshed"] is not None
    fresh = json.loads(page["refreshed"]["storage"]["webims.wic.session"])
    assert fresh["access_token"] != token and fresh["refresh_token"] != refresh
    fresh_claims = verified_claims(web_system, fresh["access_token"])
    assert fresh_claims["jti"] != claims["jti"]
    assert page["refreshed"]["impus"] == USER1["impu"]
    assert fresh["expires_at"] - held["expires_at"] < TOKEN_TTL * 1000

    # A forged callback (code and state this tab never asked for) is refused.
    assert page["forged"]["error"].startswith("Login failed: invalid_request")
    assert page["forged"]["tokenRequests"] == 0
    assert page["forged"]["url"] == f"{web_system.url}/"
    # A reload keeps the tab's session: the same tokens, no new authorisation.
    again = json.loads(page["reloaded"]["storage"]["webims.wic.session"])
    assert again["access_token"] == fresh["access_token"]
    assert page["reloaded"]["impus"] == USER1["impu"]
    assert not [u for u in page["reloaded"]["requested"] if "/authorize" in u or "/login" in u]
    assert page["reloaded"]["regState"] == "registered"  # again, from the new WebSocket

    # Logout: storage cleared, the login button back, and the tokens dead.
    assert page["afterLogout"]["storage"] == {}
    assert page["afterLogout"]["loginVisible"] is True
    assert page["afterLogout"]["error"] == ""
    with https(web_system) as client:
        reuse = client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": fresh["refresh_token"],
                "client_id": "wic",
            },
        )
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        answer = client.post(
            "/introspect", data={"token": fresh["access_token"]}, auth=INTROSPECT_AUTH
        )
        assert answer.status_code == 200 and answer.json() == {"active": False}
    # The logout unregistered: the S-CSCF told the HSS (SAR USER_DEREGISTRATION).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = hss_view(web_system, "user1")
        (public,) = [p for p in view["publics"] if p["impu"] == USER1["impu"][0]]
        if public["state"] != "registered":
            break
        time.sleep(0.2)
    assert public["state"] != "registered", view


@pytest.mark.timeout(120)
def test_a_guest_gets_a_pool_identity_in_the_wic(web_system: WebSystem) -> None:
    """TS 33.203 X.4: no IMS subscription, the WWSF lends one of its pool's
    IMPI/IMPU pairs; the WIC shows it and holds a token for it."""
    screenshot = ARTIFACTS / "wic-guest.png"
    page = run_browser(web_system, screenshot, user="guest")
    print(f"screenshot: {screenshot}")
    assert re.fullmatch(r"pool\d+_private@home1\.net", page["impi"])
    assert len(page["impus"]) == 1
    assert re.fullmatch(r"sip:pool\d+_public1@home1\.net", page["impus"][0])
    held = json.loads(page["storage"]["webims.wic.session"])
    claims = verified_claims(
        web_system, held["access_token"], {"impi": page["impi"], "impu": page["impus"]}
    )
    assert claims["sub"] != "user1"
    # Logout ends the loan: the token is dead.
    assert page["afterLogout"]["storage"] == {}
    with https(web_system) as client:
        answer = client.post(
            "/introspect", data={"token": held["access_token"]}, auth=INTROSPECT_AUTH
        )
    assert answer.json() == {"active": False}


def bearer_token(request: Request) -> str:
    (credentials,) = request.authorization
    assert isinstance(credentials, BearerCredentials), request.method
    return credentials.token


@pytest.mark.timeout(180)
async def test_s8_6_to_9_the_wic_sends_its_token_in_every_request_and_again_after_a_refresh(
    tmp_path: Path, wic_build: Path
) -> None:
    """SPEC §8 statements 6-9 as the browser sends them: the web element alone
    (``webims run wwsf``) with a SIP peer standing for the eP-CSCF."""
    ca = ensure_dev_ca(tmp_path)
    peer = SipPeer(ca.server_cert, ca.server_key, refuse_first_token=True)
    sip_port = await peer.start()
    web = free_port()
    config = web_config(tmp_path, web, f"wss://127.0.0.1:{sip_port}/")
    seeded = subprocess.run(
        [sys.executable, "-m", "webims", "subscriber", "seed-demo", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    shot = ARTIFACTS / "wic-user1-registered.png"
    try:
        with running("run", "wwsf", "--config", str(config)):
            proc = await asyncio.create_subprocess_exec(
                *browser_command(f"https://127.0.0.1:{web}", shot, modes="registered,refresh"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 100)
            # Statement 9: the Bearer token in every request, each one the WAF's.
            system = WebSystem(f"https://127.0.0.1:{web}", tmp_path, config, sip_port, [])
            tokens = [bearer_token(request) for request in peer.requests]
            claims = [verified_claims(system, token) for token in tokens]
    finally:
        await peer.stop()
    page = browser_result(proc.returncode, out.decode(), err.decode())
    print(f"screenshot: {shot}")
    assert page["regState"] == "registered", page["regText"]

    # Statement 6: wss:// with the sip subprotocol; 7: text frames, one message each.
    assert peer.subprotocols and set(peer.subprotocols) == {"sip"}
    assert peer.binary_frames == 0
    registers = [r for r in peer.requests if r.method == "REGISTER"]
    # Refused token, the fresh one, the refresh at 80%, the logout.
    assert len(registers) >= 4, [r.method for r in peer.requests]
    held = json.loads(page["storage"]["webims.wic.session"])["access_token"]
    fresh = json.loads(page["refreshed"]["storage"]["webims.wic.session"])["access_token"]
    for register in registers:
        # Statement 8: the REGISTER of a WIC with web authentication.
        assert str(register.uri) == "sip:home1.net"
        assert register.top_via.transport == "WSS"
        assert register.top_via.host_bare.endswith(".invalid")
        (contact,) = register.contacts
        assert contact.uri.params.get("transport") == "ws"
        assert contact.params.get("+sip.instance", "").startswith("<urn:uuid:")
        assert contact.params.get("reg-id") == "1"
        assert {"path", "outbound"} <= set(register.supported)
        assert str(register.from_.uri) == str(register.to.uri) == USER1["impu"][0]
    # The first token was refused (401 invalid_token): the page got a new one
    # at once and registered with it; later, the periodic refresh re-registered.
    assert claims[0]["jti"] != claims[1]["jti"] and tokens[1] == held
    assert fresh in tokens[2:] and fresh != held, "no REGISTER with the refreshed token"
    # Logout unregisters: the last REGISTER removes the binding.
    last = registers[-1]
    assert last.expires == 0 or last.contacts[0].params.get("expires") == "0"
