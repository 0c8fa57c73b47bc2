"""Interoperability: SIP.js, a third-party SIP library as published on npm,
registers an IMS identity through the eP-CSCF with a Bearer token, as an
outside WebRTC developer would (TS 24.371 Annex A.3.2 with someone else's
WIC).

tests/wic/sipjs_register.mjs bundles the pinned ``sip.js`` devDependency
with esbuild at test time, runs it in Debian's headless Chromium against
``webims up`` (the ``web_system`` fixture) and hands back every SIP message
of its WebSocket.  The token comes from ``webims token``.  With a good token
SIP.js reaches ``Registered`` (with a plain Contact, and with the RFC 5626
reg-id and +sip.instance); the 200 OK carries Service-Route and
P-Associated-URI; while SIP.js holds the registration the HSS has user1's
IMPU registered at the S-CSCF and an OPTIONS sent to the IMPU at the
I-CSCF reaches SIP.js, which answers it; after SIP.js unregisters the IMPU
is no longer registered.  With a token whose signature is altered SIP.js
gets 401 with an RFC 6750 ``invalid_token`` Bearer challenge, stays
unregistered, and nothing reaches the core.

Node or Chromium missing fails the tests: an interoperability test that
skips would pass unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webims.sip import Request, Response, SipURI, parse_message
from webims.sip.auth import BearerCredentials

from .conftest import USER1, WIC_DIR, WebSystem, hold_registered, need_tool
from .test_browser import CHROMIUM, hss_view, options_through_the_core, system_ports
from .test_token_cli import webims_token

DRIVER = Path(__file__).with_name("sipjs_register.mjs")
IMPU = USER1["impu"][0]
#: What SIP.js 0.21 answers an OPTIONS with (its UserAgentCore, RFC 3261 §11.2).
SIPJS_ACCEPT = "application/sdp,application/dtmf-relay"


def pinned_sipjs() -> str:
    package = json.loads((WIC_DIR / "package.json").read_text())
    version: str = package["devDependencies"]["sip.js"]
    return version


def user1_token(system: WebSystem) -> str:
    out = webims_token(system, "--user", "user1", "--password", "user1-secret")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def forged(token: str) -> str:
    """``token`` with the first character of its signature changed."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def run_sipjs(
    system: WebSystem,
    token: str,
    modes: str,
    while_registered: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The driver's report; ``while_registered`` runs while SIP.js holds its
    registration (mode "hold"), before it unregisters."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    server = f"wss://127.0.0.1:{system.wss_port}/"
    if while_registered is not None:
        modes = f"{modes},hold"
    proc = subprocess.Popen(
        [need_tool("node"), str(DRIVER), server, IMPU, token, modes],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = ""
    try:
        if while_registered is not None:
            # Until the driver holds its registration (or ends without one).
            said = hold_registered(proc, while_registered)[1]
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = said + err
    assert out.strip(), f"the SIP.js driver said nothing (exit {proc.returncode}):\n{err}"
    report: dict[str, Any] = json.loads(out)
    report["messages"] = [(f["dir"], parse_message(f["text"].encode())) for f in report["frames"]]
    print(ladder(report))
    assert proc.returncode == 0 and "error" not in report, f"{report.get('error')}\n{err}"
    # The package as pinned.  (sip.js 0.21.2 was published with its
    # LIBRARY_VERSION, and so its User-Agent, still saying 0.21.1.)
    assert report["package"] == pinned_sipjs(), report["package"]
    assert report["version"].startswith("0.")
    assert not [line for line in report["console"] if line.startswith("pageerror")]
    return report


def ladder(report: dict[str, Any]) -> str:
    """The wire, for the test's output: direction and full text of each message."""
    arrows = {"sent": "SIP.js -> eP-CSCF", "received": "SIP.js <- eP-CSCF"}
    return "\n".join(f"--- {arrows[f['dir']]}\n{f['text']}" for f in report["frames"])


def registers(report: dict[str, Any]) -> list[tuple[Request, Response | None]]:
    """Each REGISTER SIP.js sent, with the final answer to it (by CSeq)."""
    pairs: list[tuple[Request, Response | None]] = []
    for direction, msg in report["messages"]:
        if direction == "sent" and isinstance(msg, Request) and msg.method == "REGISTER":
            answers = [
                m
                for d, m in report["messages"]
                if d == "received"
                and isinstance(m, Response)
                and m.status >= 200
                and m.headers.get("CSeq") == msg.headers.get("CSeq")
            ]
            pairs.append((msg, answers[0] if answers else None))
    return pairs


def bearer_of(request: Request) -> str:
    (credentials,) = request.authorization
    assert isinstance(credentials, BearerCredentials)
    return credentials.token


def public_state(system: WebSystem) -> tuple[str, dict[str, Any]]:
    view = hss_view(system, "user1")
    (public,) = [p for p in view["publics"] if p["impu"] == IMPU]
    state: str = public["state"]
    return state, view


def wait_unregistered_at_the_hss(system: WebSystem) -> None:
    deadline = time.monotonic() + 10
    state, view = public_state(system)
    while state == "registered" and time.monotonic() < deadline:
        time.sleep(0.2)
        state, view = public_state(system)
    assert state != "registered", view


@pytest.mark.timeout(150)
@pytest.mark.parametrize("modes", ["plain", "outbound"])
def test_sipjs_registers_user1_through_the_ep_cscf_with_a_bearer_token(
    web_system: WebSystem, modes: str
) -> None:
    seen: dict[str, Any] = {}

    def in_the_core() -> None:
        seen["hss"] = public_state(web_system)
        seen["options"] = options_through_the_core(web_system, IMPU)

    token = user1_token(web_system)
    report = run_sipjs(web_system, token, modes, in_the_core)

    # SIP.js reached Registered on its own terms, then unregistered.
    assert report["register"]["status"] == 200, report["register"]
    assert report["states"] == ["Registered", "Unregistered", "Terminated"], report["states"]
    assert report["unregister"]["status"] == 200, report["unregister"]
    assert report["websocket"] == f"wss://127.0.0.1:{web_system.wss_port}/"

    (register, ok), (unregister, unregistered) = registers(report)
    # What SIP.js sent, unchanged: its own Via, Contact and the token.
    assert bearer_of(register) == bearer_of(unregister) == token
    assert register.top_via.transport == "WSS"
    (contact,) = register.contacts
    assert isinstance(contact.uri, SipURI) and contact.uri.host.endswith(".invalid")
    assert contact.uri.params.get("transport") == "ws"
    if modes == "outbound":
        assert contact.params.get("reg-id") == "1"
        instance = f"<urn:uuid:{report['register']['instanceId']}>"
        assert contact.params.get("+sip.instance") == instance
    else:
        assert "reg-id" not in contact.params and "+sip.instance" not in contact.params

    # The 200 OK of the S-CSCF, through the I-CSCF and the eP-CSCF: the
    # S-CSCF's Service-Route, the IMPU among the associated ones, SIP.js's
    # binding with the expiry granted (and RFC 5626 outbound when asked for).
    s_port = system_ports(web_system)["scscf"]["sip_port"]
    assert ok is not None and ok.status == 200
    (route,) = ok.service_routes
    assert isinstance(route.uri, SipURI)
    assert (route.uri.host, route.uri.port) == ("scscf.home1.net", s_port)
    assert IMPU in [str(a.uri) for a in ok.p_associated_uri]
    (bound,) = [c for c in ok.contacts if str(c.uri) == str(contact.uri)]
    assert 0 < int(bound.params.get("expires") or 0) <= 600
    if modes == "outbound":
        assert bound.params.get("+sip.instance") == contact.params.get("+sip.instance")
        assert "outbound" in ok.require

    # While SIP.js was registered the IMS core held the registration: the HSS
    # has the IMPU registered at this S-CSCF ...
    state, view = seen["hss"]
    assert state == "registered", view
    assert view["assignment"]["server_name"] == f"sip:scscf.home1.net:{s_port};transport=tcp"
    # ... and the S-CSCF's binding routes a request for the IMPU, through the
    # eP-CSCF's flow, to SIP.js, which answered it itself.
    options = seen["options"]
    assert options.status == 200, options.status
    assert options.headers.get("Accept") == SIPJS_ACCEPT
    received = [m for d, m in report["messages"] if d == "received" and isinstance(m, Request)]
    assert [m.method for m in received] == ["OPTIONS"]

    # After the unregistration: the binding is gone, the IMPU is no longer registered.
    assert unregistered is not None and unregistered.status == 200
    (gone,) = unregister.contacts
    assert gone.params.get("expires") == "0"
    wait_unregistered_at_the_hss(web_system)
    assert options_through_the_core(web_system, IMPU).status >= 400


@pytest.mark.timeout(120)
def test_sipjs_with_a_forged_token_gets_401_invalid_token_and_nothing_is_registered(
    web_system: WebSystem,
) -> None:
    wait_unregistered_at_the_hss(web_system)  # whatever an earlier test left
    report = run_sipjs(web_system, forged(user1_token(web_system)), "outbound")

    assert report["register"]["status"] == 401, report["register"]
    assert report["states"] == ["Unregistered", "Terminated"], report["states"]
    assert report["register"]["state"] == "Unregistered"
    assert "unregister" not in report
    # One REGISTER: SIP.js has no Digest answer to a Bearer challenge.
    ((_, refused),) = registers(report)
    assert refused is not None and refused.status == 401
    (challenge,) = refused.headers.get_all("WWW-Authenticate")
    scheme, _, params = challenge.partition(" ")
    assert scheme == "Bearer"
    assert 'error="invalid_token"' in params
    # Nothing reached the core.
    state, view = public_state(web_system)
    assert state != "registered", view
    assert options_through_the_core(web_system, IMPU).status >= 400
