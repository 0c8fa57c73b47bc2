"""Interoperability: third-party browser SIP libraries register an IMS identity
with IMS credentials (SIP Digest, TS 24.371 scenario 1, TS 33.203 X.2) through
an eP-CSCF with ``[pcscf] ims_auth = true``, configured as a WebRTC developer
configures them with a password: no Bearer token anywhere.

tests/wic/digest_register.mjs runs SIP.js (the pinned ``sip.js``
devDependency, bundled at test time) or JsSIP (the bundle ``make wic``
builds) in Debian's headless Chromium against a ``webims up`` of each test's
own, and hands back every SIP message of its WebSocket.  The libraries are
given user1's IMPI as the authorization username and ``user1-secret``.

With the right password the library reaches "registered" after the two
challenges of scenario 1: the eP-CSCF's 401 (a Bearer and a Digest challenge,
the eP-CSCF's own ``pcscf-`` nonce, only for learning the username), then the
S-CSCF's (its own nonce, ``stale=true``).  While the library holds the
registration the HSS has user1's IMPU registered at the S-CSCF, and an
OPTIONS sent to the IMPU at the I-CSCF reaches the library, which answers it.
The library then refreshes its registration (a second register(), as its
timer would) and unregisters; after that the IMPU is no longer registered.
With a wrong password the registration fails after the S-CSCF's challenge
and nothing is registered in the core.

SIP.js sends the Authorization of the REGISTER the S-CSCF accepted again,
unchanged, on its refresh and its unregistration (same nonce, nc and cnonce:
a replay by RFC 2617 §3.2.2); the S-CSCF answers that with a new nonce and
``stale=true``, which SIP.js then answers.

A missing Node or Chromium is a failure, not a skip.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from webims.sip import Request, Response, SipURI, parse_message
from webims.sip.auth import BearerCredentials, DigestCredentials, parse_challenge

from ..pcscf.gm_system import core_system
from .conftest import USER1, WIC_DIR, WebSystem, hold_registered, need_tool
from .test_browser import CHROMIUM, options_through_the_core, system_ports
from .test_browser_sipjs import SIPJS_ACCEPT, public_state, registers, wait_unregistered_at_the_hss

DRIVER = Path(__file__).with_name("digest_register.mjs")
IMPU = str(USER1["impu"][0])
IMPI = str(USER1["impi"])
#: The package of each library, as package.json pins it.
PACKAGES = {"sipjs": "sip.js", "jssip": "jssip"}
#: What each library reports of itself, in order, for a registration that
#: succeeds and ends with an unregistration, and for one that fails.
EVENTS = {
    "sipjs": (["Registered", "Unregistered", "Terminated"], ["Unregistered", "Terminated"]),
    "jssip": (
        ["connected", "registered", "unregistered", "disconnected"],
        ["connected", "registrationFailed", "disconnected"],
    ),
}


@pytest.fixture
def digest_system(tmp_path: Path, wic_build: Path) -> Iterator[WebSystem]:
    """``webims up`` with ``[pcscf] ims_auth = true``, one per test: a library
    that fails to unregister leaves nothing behind for the next test."""
    with core_system(tmp_path, pcscf="ims_auth = true\n") as up:
        url = f"https://127.0.0.1:{up.ports['web']}"
        yield WebSystem(url, up.data_dir, up.data_dir / "webims.toml", up.ports["wss"], [])


def pinned(library: str) -> str:
    package = json.loads((WIC_DIR / "package.json").read_text())
    pins = {**package["dependencies"], **package["devDependencies"]}
    version: str = pins[PACKAGES[library]]
    return version


def run_library(
    system: WebSystem,
    library: str,
    password: str,
    while_registered: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The driver's report, with ``messages``: (direction, parsed message).
    With ``while_registered`` (run while the library holds its registration)
    the library then refreshes its registration before unregistering."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    server = f"wss://127.0.0.1:{system.wss_port}/"
    modes = "hold,refresh" if while_registered is not None else ""
    command = [need_tool("node"), str(DRIVER), library, server, IMPU, IMPI, password, modes]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        early = "" if while_registered is None else hold_registered(proc, while_registered)[1]
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = early + err
    assert out.strip(), f"the {library} driver said nothing (exit {proc.returncode}):\n{err}"
    report: dict[str, Any] = json.loads(out)
    for frame in report["frames"]:
        print(f"--- {library} {'->' if frame['dir'] == 'sent' else '<-'} eP-CSCF\n{frame['text']}")
    report["messages"] = [(f["dir"], parse_message(f["text"].encode())) for f in report["frames"]]
    assert proc.returncode == 0 and "error" not in report, f"{report.get('error')}\n{err}"
    assert report["package"] == pinned(library), report["package"]
    assert report["websocket"] == server
    assert not [line for line in report["console"] if line.startswith("pageerror")]
    return report


def digest_of(request: Request) -> DigestCredentials | None:
    """The request's Digest credentials; there is never a Bearer token."""
    found = request.authorization
    assert not [c for c in found if isinstance(c, BearerCredentials)], request
    assert len(found) <= 1, request
    if not found:
        return None
    (credentials,) = found
    assert isinstance(credentials, DigestCredentials), request
    return credentials


def challenges(response: Response) -> list[tuple[str, dict[str, str]]]:
    """The WWW-Authenticate values of ``response``: (scheme, parameters)."""
    parsed = [parse_challenge(v) for v in response.headers.get_all("WWW-Authenticate")]
    return [
        (c.scheme, {k: c.get(k) or "" for k in ("realm", "nonce", "qop", "stale")}) for c in parsed
    ]


def assert_scenario_1(report: dict[str, Any]) -> list[tuple[Request, Response | None]]:
    """The first three REGISTERs are scenario 1's: none with credentials, the
    answer to the eP-CSCF's Digest challenge, the answer to the S-CSCF's; every
    Digest response is RFC 2617's for the configured password.  Returns the
    REGISTERs with their final answers."""
    pairs = registers(report)
    assert len(pairs) >= 3, [(r.headers.get("CSeq"), a and a.status) for r, a in pairs]
    (first, by_pcscf), (second, by_scscf), (third, final) = pairs[:3]
    assert digest_of(first) is None

    # The eP-CSCF's 401: Bearer first, then a Digest challenge of its own.
    assert by_pcscf is not None and by_pcscf.status == 401
    (bearer, _), (digest, offered) = challenges(by_pcscf)
    assert (bearer, digest) == ("Bearer", "Digest")
    assert offered["realm"] == "home1.net" and offered["qop"] == "auth"
    assert offered["nonce"].startswith("pcscf-")

    # The library's answer to it, which the eP-CSCF passes to the core.
    answer = digest_of(second)
    assert answer is not None
    assert (answer.username, answer.realm, answer.nonce) == (IMPI, "home1.net", offered["nonce"])
    assert answer.uri == "sip:home1.net" and answer.qop == "auth"

    # The S-CSCF's own challenge, stale=true (the eP-CSCF's nonce is not its own).
    assert by_scscf is not None and by_scscf.status == 401
    ((scheme, scscf),) = challenges(by_scscf)
    assert scheme == "Digest" and scscf["stale"] == "true"
    assert scscf["realm"] == "home1.net" and scscf["nonce"] != offered["nonce"]
    again = digest_of(third)
    assert again is not None and (again.username, again.nonce) == (IMPI, scscf["nonce"])
    assert final is not None

    # The response values (masked in the report) were RFC 2617's for the
    # configured password, in every request that carried one.
    answered = [a for m in report["ladder"] if m["dir"] == "sent" for a in m["authorization"]]
    assert answered and all(a["responseOk"] for a in answered), answered
    assert all('response="<masked>"' in a["value"] for a in answered)
    return pairs


@pytest.mark.timeout(150)
@pytest.mark.parametrize("library", ["jssip", "sipjs"])
def test_a_library_registers_user1_with_its_ims_credentials(
    digest_system: WebSystem, library: str
) -> None:
    seen: dict[str, Any] = {}
    report = run_library(
        digest_system,
        library,
        "user1-secret",
        lambda: seen.update(
            hss=public_state(digest_system),
            options=options_through_the_core(digest_system, IMPU),
        ),
    )
    assert report["register"]["status"] == 200, report["register"]
    assert report["register"]["registered"] is True
    pairs = assert_scenario_1(report)

    # The 200 OK of the S-CSCF: its Service-Route, the IMPU among the
    # associated ones, the library's binding.
    (register, ok) = pairs[2]
    assert ok is not None and ok.status == 200
    s_port = system_ports(digest_system)["scscf"]["sip_port"]
    (route,) = ok.service_routes
    assert isinstance(route.uri, SipURI)
    assert (route.uri.host, route.uri.port) == ("scscf.home1.net", s_port)
    assert IMPU in [str(a.uri) for a in ok.p_associated_uri]
    (contact,) = register.contacts
    assert [c for c in ok.contacts if str(c.uri) == str(contact.uri)]

    # While the library was registered the IMS core held the registration: the
    # HSS has the IMPU registered at this S-CSCF, and the S-CSCF's binding
    # routes a request for the IMPU through the eP-CSCF's flow to the library,
    # which answered it itself.
    state, view = seen["hss"]
    assert state == "registered", view
    assert view["assignment"]["server_name"] == f"sip:scscf.home1.net:{s_port};transport=tcp"
    options = seen["options"]
    assert options.status == 200, options.status
    if library == "sipjs":
        assert options.headers.get("Accept") == SIPJS_ACCEPT
    received = [m for d, m in report["messages"] if d == "received" and isinstance(m, Request)]
    assert [m.method for m in received] == ["OPTIONS"]

    # The refresh of the registration.
    refresh = report["refresh"]
    assert refresh["status"] == 200 and refresh["registered"] is True, refresh

    # The unregistration: the binding is gone, the IMPU no longer registered.
    assert report["unregister"]["status"] == 200, report["unregister"]
    assert report["unregister"]["registered"] is False
    assert report["events"] == EVENTS[library][0], report["events"]
    unregister, unregistered = registers(report)[-1]
    assert unregistered is not None and unregistered.status == 200
    assert "0" in (
        unregister.headers.get("Expires"),
        *(c.params.get("expires") for c in unregister.contacts),
    )
    wait_unregistered_at_the_hss(digest_system)
    assert options_through_the_core(digest_system, IMPU).status >= 400


@pytest.mark.timeout(120)
@pytest.mark.parametrize("library", ["jssip", "sipjs"])
def test_with_a_wrong_password_the_registration_fails_and_nothing_is_registered(
    digest_system: WebSystem, library: str
) -> None:
    report = run_library(digest_system, library, "not-user1-secret")

    assert report["register"]["status"] in (401, 403), report["register"]
    assert report["register"]["registered"] is False
    assert "refresh" not in report and "unregister" not in report
    assert report["events"] == EVENTS[library][1], report["events"]
    # Scenario 1's three REGISTERs, the last refused for good: no more tries.
    pairs = assert_scenario_1(report)
    assert len(pairs) == 3
    refused = pairs[2][1]
    assert refused is not None and refused.status == report["register"]["status"]
    # Nothing is registered in the core.
    state, view = public_state(digest_system)
    assert state != "registered", view
    assert options_through_the_core(digest_system, IMPU).status >= 400
